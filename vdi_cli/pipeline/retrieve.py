"""`vdi retrieve` as a library: raw videos + sentences -> ranked moments, on any video length.

    from vdi_cli.pipeline.retrieve import Retriever, expand_inputs
    r = Retriever(db)                                   # latest training run, or training-free
    result = r.search(expand_inputs("talk.mp4"), ["person opens the door"], top_k=5)
    result.videos[0].moments[0]                         # [Moment(start, end, score), ...]

Steps: choose and load the model once (`retrieve_model`); frame features through the extract
stage with the checkpoint's backbone and sampling (streamed decoding, cached by content hash,
so a repeat query on the same video costs only the text tower and the head); sentence features
from the (adapted) text tower; per video, the head on overlapping windows of its trained span,
merged with NMS (`retrieve_windows`); with several videos, moments ranked across all of them
(video corpus moment retrieval). A `Retriever` also keeps the last videos' features and the
sentences' features in memory for repeated searches in one process.
"""

from __future__ import annotations

import glob
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError, param
from vdi_cli.pipeline.retrieve_model import choose_model, load_retrieval_model, model_warnings
from vdi_cli.pipeline.retrieve_windows import VideoRanking, rank_video
from vdi_cli.types import Moment
from vdi_cli.video import MISSING, VIDEO_EXTENSIONS, VideoError, find_videos, is_video_name

FEATURE_MEMORY = 8  # videos whose features a Retriever keeps in memory
FEW_TEXTS = 8  # at most this many new sentences: the text tower runs on one thread
_GLOB = set("*?[")


@dataclass
class VideoInput:
    vid: str  # the name moments are reported under (file stem, made unique)
    path: Path


@dataclass
class VideoResult:
    vid: str
    path: str
    sha256: str
    duration: float
    status: str  # extracted | cached | memory
    ranking: VideoRanking

    @property
    def moments(self) -> list[list[Moment]]:
        return self.ranking.moments

    @property
    def windows(self) -> list[tuple[float, float]]:
        return self.ranking.windows


@dataclass
class RetrieveResult:
    queries: list[str]
    model: dict[str, Any]
    videos: list[VideoResult] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[Any] = field(default_factory=list)  # extract's VideoOutcome of damaged files
    corpus: list[list[tuple[str, Moment]]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    run_id: int | None = None

    def summary(self) -> dict[str, Any]:
        """What the run row records."""
        return {
            "model": self.model, "queries": self.queries,
            "videos": [{"vid": v.vid, "path": v.path, "sha256": v.sha256,
                        "duration": v.duration, "windows": len(v.windows), "status": v.status}
                       for v in self.videos],
            "failed": self.failed,
            "damaged": [{"vid": v.name, "path": v.path, **v.damage} for v in self.damaged],
            "timings": {k: round(t, 4) for k, t in self.timings.items()},
        }

    def to_json(self) -> dict[str, Any]:
        from vdi_cli.pipeline.retrieve_output import corpus_records, prediction_records

        m = self.model
        return {
            "run_id": self.run_id, "backbone": m["backbone"], "weights": m["weights"],
            "head": m["head"], "source": m["source"], "checkpoint": m["checkpoint"],
            "sampling": m["sampling"], "window": m["window"],
            "predictions": prediction_records(self.queries, self.videos),
            "corpus": corpus_records(self.queries, self.corpus),
            "failed": self.failed,
        }


def _probe(path: Path, test: str) -> bool:
    """`path.is_dir()` / `is_file()` / `exists()` that answers False for a string no file
    system could hold (a name too long, a NUL byte) instead of raising: a long query given
    where a video may stand is not a path."""
    try:
        return bool(getattr(path, test)())
    except (OSError, ValueError):
        return False


def expand_inputs(spec: str | Path, more: Sequence[str | Path] = ()) -> list[VideoInput]:
    """A video file, a folder (its videos) or a quoted glob ('clips/*.mp4'), plus `more` files
    (an unquoted glob the shell expanded). Raises VideoError(missing) / VdiError."""
    text = str(spec)
    path = Path(text).expanduser()
    if _probe(path, "is_dir"):
        files = find_videos(path)
        if not files:
            raise VdiError(f"no video files in folder '{path}'",
                           hint=f"looked for {', '.join(VIDEO_EXTENSIONS)} files")
    elif _GLOB & set(text) and not _probe(path, "exists"):
        files = sorted(Path(f) for f in glob.glob(str(path), recursive=True)
                       if is_video_name(f) and Path(f).is_file())
        if not files:
            raise VdiError(f"no video file matches '{text}'",
                           hint="check the pattern (quote it so the shell leaves it to vdi)")
    elif _probe(path, "is_file"):
        files = [path]
    else:
        raise VideoError(path, MISSING, "no such video file",
                         hint="check the path; a folder or a quoted glob ('clips/*.mp4') "
                         "searches many videos at once")
    files += [Path(f) for f in more]
    out: list[VideoInput] = []
    seen: set[str] = set()
    for f in files:
        vid, k = f.stem, 2
        while vid in seen:
            vid, k = f"{f.stem}-{k}", k + 1
        seen.add(vid)
        out.append(VideoInput(vid, f))
    return out


def split_arguments(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(video specs, queries): the first argument is always a video spec; the ones after it that
    are existing video files are more videos (a shell-expanded glob); the rest are queries."""
    if not args:
        return [], []
    videos = [args[0]]
    k = 1
    while k < len(args) and Path(args[k]).suffix.lower() in VIDEO_EXTENSIONS and \
            _probe(Path(args[k]), "is_file"):
        videos.append(args[k])
        k += 1
    return videos, list(args[k:])


def check_queries(queries: Sequence[str]) -> list[str]:
    example = 'e.g. vdi retrieve video.mp4 "person opens the door"'
    if not queries:
        raise VdiError("no query given", hint=f"give one or more sentences to find, {example}")
    out = []
    for i, q in enumerate(queries, 1):
        text = " ".join(str(q).split())
        if not text:
            raise VdiError(f"query {i} is empty", hint=f"give a sentence to find, {example}")
        out.append(text)
    return out


class Retriever:
    """A loaded model plus in-memory caches; `search` can be called many times."""

    def __init__(self, db: Any, *, checkpoint: str | None = None, run: int | None = None,
                 training_free: bool = False, backbone: str | None = None,
                 weights: str | None = None, fps: float | None = None,
                 window: float | None = None, overlap: float = 0.5,
                 head_options: dict[str, Any] | None = None, device: str = "cpu",
                 loaded_backbone: Any = None, notify: Callable[[str], None] | None = None,
                 videos: Sequence[VideoInput] | None = None, text_only: bool | None = None
                 ) -> None:
        """`videos` (the ones the first search will read) or `text_only=True` lets the model
        load without its image tower when no frame needs encoding: a cold start then costs the
        text tower and the head only. A later search that needs extraction loads it in full."""
        self.db = db
        self.overlap = overlap
        if not 0 <= overlap < 1:
            raise VdiError(f"{param('overlap')} must be in [0, 1), got {overlap}",
                           hint=f"e.g. {param('overlap', 0.5)}")
        self.choice = choose_model(db, checkpoint=checkpoint, run=run,
                                   training_free=training_free, backbone=backbone)
        self.notice = self.choice.notice
        if self.notice and notify is not None:  # before loading: the load itself may fail
            notify(self.notice)
        self._load_args = {"backbone": backbone, "weights": weights, "fps": fps,
                           "window": window, "head_options": head_options, "device": device}
        if text_only is None:
            text_only = loaded_backbone is None and videos is not None and \
                self._all_cached(videos, backbone, weights, fps)
        self.loaded = load_retrieval_model(self.choice, loaded=loaded_backbone,
                                           text_only=bool(text_only), **self._load_args)
        self.warnings = model_warnings(self.loaded)
        for line in self.warnings if notify is not None else []:
            notify(line)
        self._features: OrderedDict[str, tuple[Any, Any, float]] = OrderedDict()
        self._texts: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {**self.loaded.describe(), "overlap": self.overlap}

    def _all_cached(self, videos: Sequence[VideoInput], backbone: str | None,
                    weights: str | None, fps: float | None) -> bool:
        """True when every video already has features for the model that will load (its
        backbone, weights and sampling known without loading it)."""
        from vdi_cli.features import find_feature_row
        from vdi_cli.pipeline.retrieve_model import free_backbone
        from vdi_cli.store.hashes import cached_sha256
        from vdi_cli.video import Sampling

        try:
            if self.choice.training_free:
                from vdi_cli.backbones import resolve_backbone

                spec = resolve_backbone(backbone or free_backbone(), weights)
                bb_id, weights_id, sampling = spec.id, spec.weights_id, Sampling(fps=fps)
            else:
                trained = (self.choice.config or {}).get("backbone") or {}
                bb_id, weights_id = trained.get("id"), trained.get("weights")
                sampling = Sampling.from_any((self.choice.config or {}).get("sampling"))
            for v in videos:
                row = find_feature_row(self.db, cached_sha256(self.db, v.path), bb_id,
                                       weights_id, sampling)
                if row is None or not Path(row["path"]).is_file():
                    return False
        except (OSError, VdiError):
            return False  # the full load path reports what is wrong
        return True

    def _full_backbone(self) -> None:
        """Load the image tower after all (a search met a video without features)."""
        if getattr(self.loaded.backbone, "text_only", False):
            self.loaded = load_retrieval_model(self.choice, **self._load_args)

    def encode(self, queries: Sequence[str]) -> Any:
        import torch

        from vdi_cli.pipeline.retrieve_windows import torch_threads

        todo = [q for q in dict.fromkeys(queries) if q not in self._texts]
        if todo:
            # a few sentences are tens of tokens: on two busy cores one thread took 0.21 s
            # for ViT-B/32's first sentence where two took 3.5 s (every op waits on the other)
            with torch.no_grad(), torch_threads(1 if len(todo) <= FEW_TEXTS else None):
                feats = self.loaded.model.encode_texts(todo)
            self._texts.update(zip(todo, feats, strict=True))
        return torch.stack([self._texts[q] for q in queries])

    def search(self, videos: Sequence[VideoInput], queries: Sequence[str], *,
               top_k: int | None = 5,
               keep_maps: bool = False, show_progress: bool = False, run_id: int | None = None,
               batch_size: int = 32) -> RetrieveResult:
        """Ranked moments of every query in every video (and across videos); top_k None: all
        the merged moments."""
        if top_k is not None and top_k < 1:
            raise VdiError(f"{param('top_k')} must be at least 1, got {top_k}",
                           hint=f"e.g. {param('top_k', 5)}")
        queries = check_queries(queries)
        clock = time.perf_counter
        t0 = clock()
        result = RetrieveResult(list(queries), self.describe(), run_id=run_id)
        ready = self._features_for(videos, result, show_progress, run_id, batch_size)
        t1 = clock()
        sent = self.encode(queries)
        t2 = clock()
        from vdi_cli.progress import progress_bar

        bar = progress_bar(total=len(ready), desc="retrieve", unit="video",
                           enabled=show_progress and len(ready) >= 2)
        try:
            for video, sha, status in ready:
                feats, times, duration = self.video_features(sha)
                ranking = rank_video(self.loaded.model.head, feats, times, duration, sent,
                                     span=self.loaded.span, overlap=self.overlap, top_k=top_k,
                                     keep_maps=keep_maps)
                result.videos.append(VideoResult(video.vid, str(video.path), sha,
                                                 ranking.duration, status, ranking))
                bar.update(1)
        finally:
            bar.close()
        t3 = clock()
        for qi in range(len(queries)):
            pool = [(v.vid, m) for v in result.videos for m in v.moments[qi]]
            pool.sort(key=lambda p: -p[1].score)
            result.corpus.append(pool[:top_k])
        result.timings = {"features": t1 - t0, "text": t2 - t1, "head": t3 - t2,
                          "total": t3 - t0}
        return result

    def video_features(self, sha: str) -> tuple[Any, Any, float]:
        """(global features on the device, times, duration) of one extracted video, from the
        in-memory cache or from disk. Called once per video while scoring, so a search over any
        number of videos holds at most FEATURE_MEMORY of them (an earlier version loaded them all
        first and evicted ones the same search still had to score: KeyError past 8 videos)."""
        import torch

        from vdi_cli.features import load_features

        if sha in self._features:
            self._features.move_to_end(sha)
            return self._features[sha]
        bb = self.loaded.backbone
        g, _, meta = load_features(self.db, sha, bb.id, bb.weights_id, self.loaded.sampling,
                                   patches=False, dtype=torch.float32)
        entry = (g.to(bb.device), meta["times"], float(meta["duration"] or 0.0))
        self._features[sha] = entry
        while len(self._features) > FEATURE_MEMORY:
            self._features.popitem(last=False)
        return entry

    def prepare(self, videos: Sequence[VideoInput], *, show_progress: bool = False,
                run_id: int | None = None, batch_size: int = 32
                ) -> tuple[list[tuple[VideoInput, str, str]], RetrieveResult]:
        """Extract or find the features of `videos` with this model's backbone and sampling:
        ((input, sha256, status) of the usable ones, a result holding `failed` / `damaged`)."""
        result = RetrieveResult([], self.describe(), run_id=run_id)
        return self._features_for(videos, result, show_progress, run_id, batch_size), result

    def _features_for(self, videos: Sequence[VideoInput], result: RetrieveResult,
                      show_progress: bool, run_id: int | None, batch_size: int
                      ) -> list[tuple[VideoInput, str, str]]:
        """Extract (or find cached) features; (input, sha256, status) of the usable videos."""
        from vdi_cli.pipeline.extract import extract_features

        if getattr(self.loaded.backbone, "text_only", False) and \
                not self._all_cached(videos, self._load_args["backbone"],
                                     self._load_args["weights"], self._load_args["fps"]):
            self._full_backbone()
            self._texts.clear()
        bb = self.loaded.backbone
        report = extract_features(self.db, [(v.vid, v.path) for v in videos], loaded=bb,
                                  sampling=self.loaded.sampling, show_progress=show_progress,
                                  run_id=run_id, batch_size=batch_size)
        result.damaged = report.damaged()
        ready = []
        for video, out in zip(videos, report.videos, strict=True):
            if out.status == "failed" or not out.sha256:
                if len(videos) == 1:
                    raise VideoError(video.path, out.reason or "corrupt",
                                     out.error or "the video cannot be read",
                                     hint=out.hint or "check the file with ffprobe; "
                                     "re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
                result.failed.append({"vid": video.vid, "path": str(video.path),
                                      "reason": out.reason, "error": out.error})
                continue
            status = out.status
            if out.sha256 in self._features and status == "cached":
                status = "memory"
            ready.append((video, out.sha256, status))
        if not ready:
            listed = ", ".join(f"{f['vid']} ({f['reason']})" for f in result.failed[:5])
            raise VdiError(f"none of the {len(videos)} videos could be read: {listed}",
                           hint="check the files with ffprobe; re-encode them if needed")
        return ready


def ranked_moments(result: RetrieveResult) -> list[tuple[str, str, int, float, float, float]]:
    """The rows `vdi_cli.store.predictions.store_predictions` writes: one (video, query, rank,
    start, end, score) per (query, video, rank)."""
    return [(v.vid, q, r, m.start, m.end, m.score)
            for qi, q in enumerate(result.queries) for v in result.videos
            for r, m in enumerate(v.moments[qi], 1)]
