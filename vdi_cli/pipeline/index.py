"""`vdi index` as a library: a video library's proposals, computed once, in a FAISS index.

    from vdi_cli.pipeline.index import build_index, add_videos, remove_videos
    report = build_index(db, "talks", expand_inputs("talks/"), checkpoint="runs/.../epoch-006")

An index is bound to one model (a checkpoint, or the training-free head on a backbone): the
frame features come from the extract stage (cached by content hash, so an extracted video costs
nothing here), each video's windows go through the head's `encode_proposals` once (for MMN the
2D-conv stack runs here and never at query time), and the proposal vectors go to

- `<index dir>/videos/<slot>-rows.npy`: the exact vectors, a record a proposal holding every
  space (`vector_rows.write_rows`: a candidate is one page read), whose candidates' rows are
  read at search time (`vector_rows`: advised, then gathered) to rescore them with the head's
  own score; `<slot>-times.npy` the frame times, read only for a plot or timeline. (Indexes
  written before the rows file hold `<slot>-<space>.npy`, one file a space: still read.)
- the FAISS index (`vectors-<generation>.faiss`), holding the head's `search_vectors`.

Adding and removing videos updates both without a rebuild. A change is written as a new FAISS
file, then committed in one database transaction (rows, counts, the current file), then the
previous file is deleted: a command killed at any point leaves the index as it was before, or
as it is after.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vdi_cli.errors import VdiError
from vdi_cli.pipeline.vector_rows import ROWS_SUFFIX, write_atomically, write_rows
from vdi_cli.store.indexes import (
    commit_changes,
    create_index_row,
    delete_index_rows,
    find_index,
    get_index,
    index_dir,
    index_videos,
)
from vdi_cli.vector_index import REBUILD_HINT, VectorIndex, options_for, proposal_ids

INDEX_CALLS = ("encode_proposals", "encode_queries", "score_proposals", "search_vectors",
               "search_query", "score_bound")


@dataclass
class IndexReport:
    name: str
    kind: str
    model: dict[str, Any]
    added: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # already in the index
    removed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[Any] = field(default_factory=list)
    videos: int = 0
    proposals: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.name, "kind": self.kind, "model": self.model,
            "added": [{k: v for k, v in a.items() if k != "windows"} for a in self.added],
            "skipped": self.skipped, "removed": self.removed, "failed": self.failed,
            "videos": self.videos, "proposals": self.proposals, "seconds": round(self.seconds, 3),
        }


def check_indexable(head: Any, head_id: str) -> None:
    missing = [name for name in INDEX_CALLS if not callable(getattr(head, name, None))]
    if missing:
        raise VdiError(
            f"the head '{head_id}' cannot be indexed: it has no {', '.join(missing)}",
            hint="index with a head that has the index contract (`vdi heads`; see the "
            "register_heads hook), or use `vdi retrieve FOLDER` to score every window")


def model_record(retriever: Any) -> tuple[dict[str, Any], str]:
    """What the index is bound to (enough to load the same model again) and its key."""
    d = retriever.describe()
    record = {k: d[k] for k in ("source", "checkpoint", "train_run", "backbone", "weights",
                                "head", "head_config", "sampling", "window", "overlap")}
    if record["checkpoint"]:
        record["checkpoint"] = str(Path(record["checkpoint"]).resolve())
        weights = Path(record["checkpoint"]) / "model.safetensors"
        if weights.is_file():
            from vdi_cli.store.hashes import hash_file

            record["checkpoint_sha256"] = hash_file(weights)
    given = retriever._load_args.get("weights")  # a local file or local-dir:FOLDER, if any
    if given and not str(given).startswith("local-dir:") and Path(given).exists():
        given = str(Path(given).resolve())
    record["weights_path"] = given
    key_fields = {k: v for k, v in record.items()
                  if k not in ("source", "train_run", "weights_path")}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    return record, key


def open_retriever(db: Any, model: dict[str, Any], *, device: str = "cpu",
                   notify: Callable[[str], None] | None = None, text_only: bool = False) -> Any:
    """The Retriever of the model an index is bound to (`text_only`: for searching, which
    never encodes a frame)."""
    from vdi_cli.pipeline.retrieve import Retriever

    if model.get("checkpoint"):
        ckpt = Path(model["checkpoint"])
        if not ckpt.exists():
            raise VdiError(f"the index's checkpoint '{ckpt}' is gone",
                           hint="rebuild the index with a checkpoint that exists: vdi index "
                           "build NAME SOURCES... --checkpoint PATH --force")
        sha = model.get("checkpoint_sha256")
        if sha:
            from vdi_cli.store.hashes import hash_file

            if hash_file(ckpt / "model.safetensors") != sha:
                raise VdiError(f"the index's checkpoint '{ckpt}' has changed since the index "
                               "was built (its weights hash differs)",
                               hint=REBUILD_HINT)
        return Retriever(db, checkpoint=str(ckpt), window=model.get("window"),
                         overlap=float(model.get("overlap", 0.5)), device=device, notify=notify,
                         text_only=text_only)
    return Retriever(db, training_free=True, backbone=model["backbone"],
                     weights=model.get("weights_path"),
                     fps=model["sampling"].get("fps"), window=model.get("window"),
                     overlap=float(model.get("overlap", 0.5)),
                     head_options=model.get("head_config") or None, device=device,
                     notify=notify, text_only=text_only)


def build_index(db: Any, name: str, videos: Sequence[Any], *, kind: str = "flat",
                options: dict[str, Any] | None = None, force: bool = False,
                checkpoint: str | None = None, run: int | None = None,
                training_free: bool = False, backbone: str | None = None,
                weights: str | None = None, fps: float | None = None,
                window: float | None = None, overlap: float = 0.5,
                head_options: dict[str, Any] | None = None, device: str = "cpu",
                show_progress: bool = False, run_id: int | None = None, batch_size: int = 32,
                notify: Callable[[str], None] | None = None) -> IndexReport:
    """Make the index NAME over `videos` (VideoInput list); `force` replaces an existing one."""
    from vdi_cli.pipeline.retrieve import Retriever

    _check_name(name)
    opts = options_for(kind, options)
    existing = find_index(db, name)
    if existing is not None and not force:
        raise VdiError(f"an index named '{name}' exists ({existing['videos']} videos)",
                       hint=f"add to it: vdi index add {name} SOURCES...; or replace it: "
                       "--force")
    retriever = Retriever(db, checkpoint=checkpoint, run=run, training_free=training_free,
                          backbone=backbone, weights=weights, fps=fps, window=window,
                          overlap=overlap, head_options=head_options, device=device,
                          notify=notify)
    head = retriever.loaded.model.head
    check_indexable(head, retriever.loaded.head_id)
    if existing is not None:
        remove_index(db, name)
    record, key = model_record(retriever)
    dim = _search_dim(retriever)
    index = create_index_row(db, name, kind, opts, record, key, dim)
    report = IndexReport(name, kind, record)
    try:
        _add(db, index, retriever, videos, report, show_progress, run_id, batch_size)
    except BaseException:
        if not get_index(db, name)["path"]:  # nothing committed: leave no empty index behind
            remove_index(db, name)
        raise
    return report


def add_videos(db: Any, name: str, videos: Sequence[Any], *, device: str = "cpu",
               show_progress: bool = False, run_id: int | None = None, batch_size: int = 32,
               notify: Callable[[str], None] | None = None) -> IndexReport:
    """Add `videos` to the index NAME with the model it is bound to (indexed ones are skipped)."""
    index = get_index(db, name)
    retriever = open_retriever(db, index["model"], device=device, notify=notify)
    _, key = model_record(retriever)
    if key != index["model_key"]:
        raise VdiError(f"the model of index '{name}' no longer loads as it was built",
                       hint=f"rebuild it: vdi index build {name} SOURCES... --force")
    report = IndexReport(name, index["kind"], index["model"])
    _add(db, index, retriever, videos, report, show_progress, run_id, batch_size)
    return report


def remove_videos(db: Any, name: str, which: Sequence[str]) -> IndexReport:
    """Remove videos from the index NAME by file path, video name or content hash."""
    index = get_index(db, name)
    rows = index_videos(db, index["id"])
    chosen, unknown = [], []
    for item in which:
        resolved = str(Path(item).resolve()) if Path(item).exists() else None
        match = [r for r in rows if item in (r["vid"], r["sha256"], r["path"])
                 or (resolved and r["path"] == resolved)]
        (chosen.extend(match) if match else unknown.append(item))
    if unknown:
        raise VdiError(f"not in index '{name}': {', '.join(unknown[:5])}",
                       hint=f"`vdi index show {name}` lists its videos")
    chosen = list({r["slot"]: r for r in chosen}.values())
    vindex = load_vectors(db, index)
    for row in chosen:
        vindex.remove_slot(row["slot"])
    report = IndexReport(name, index["kind"], index["model"])
    _commit(db, index, vindex, [], [r["slot"] for r in chosen], report)
    for row in chosen:
        for f in Path(row["vectors_path"]).parent.glob(f"{row['slot']}-*.npy"):
            f.unlink(missing_ok=True)
    report.removed = [{"vid": r["vid"], "path": r["path"], "sha256": r["sha256"]}
                      for r in chosen]
    return report


def remove_index(db: Any, name: str) -> None:
    index = get_index(db, name)
    delete_index_rows(db, index["id"])
    shutil.rmtree(index_dir(db, name), ignore_errors=True)


def load_vectors(db: Any, index: dict[str, Any]) -> VectorIndex:
    if not index["path"]:
        from vdi_cli.vector_index import VectorIndex as _VI

        return _VI.create(index["kind"], int(index["dim"]), index["options"])
    return VectorIndex.load(index["path"], index["kind"], int(index["dim"]), index["options"])


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name or ""):
        raise VdiError(f"'{name}' is not a valid index name",
                       hint="use letters, digits, '.', '_' and '-' (e.g. talks-2026)")


def _search_dim(retriever: Any) -> int:
    """The search vectors' dimension: the head applied to one made-up sentence."""
    import torch

    head = retriever.loaded.model.head
    with torch.no_grad():
        sent = torch.zeros(1, int(retriever.loaded.model.backbone.embed_dim))
        return int(head.search_query(head.encode_queries(sent)).shape[-1])


def _add(db: Any, index: dict[str, Any], retriever: Any, videos: Sequence[Any],
         report: IndexReport, show_progress: bool, run_id: int | None, batch_size: int) -> None:
    import time

    from vdi_cli.pipeline.retrieve_windows import video_proposals
    from vdi_cli.progress import progress_bar

    start = time.perf_counter()
    have = {r["sha256"]: r for r in index_videos(db, index["id"])}
    ready, prepared = retriever.prepare(videos, show_progress=show_progress, run_id=run_id,
                                        batch_size=batch_size)
    report.failed, report.damaged = prepared.failed, prepared.damaged
    vindex = load_vectors(db, index)
    folder = index_dir(db, index["name"]) / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    head = retriever.loaded.model.head
    slot = int(index["next_slot"])
    added, seen = [], set()
    bar = progress_bar(total=len(ready), desc="index", unit="video",
                       enabled=show_progress and len(ready) >= 2)
    try:
        for video, sha, _status in ready:
            if sha in have or sha in seen:
                report.skipped.append({"vid": video.vid, "path": str(video.path),
                                       "sha256": sha})
                bar.update(1)
                continue
            seen.add(sha)
            feats, times, duration = retriever.video_features(sha)
            vp = video_proposals(head, feats, times, duration, span=retriever.loaded.span,
                                 overlap=retriever.overlap)
            flat = {k: v.reshape(-1, v.shape[-1]) for k, v in vp.vectors.items()}
            count = len(next(iter(flat.values())))
            write_rows(folder / f"{slot}-{ROWS_SUFFIX}.npy", flat)
            _save_npy(folder / f"{slot}-times.npy", np.asarray(vp.times, np.float64))
            vindex.add(head.search_vectors(flat), proposal_ids(slot, count),
                       group=count // max(1, len(vp.windows)))
            added.append({"slot": slot, "sha256": sha, "vid": video.vid,
                          "path": str(Path(video.path).resolve()), "duration": vp.duration,
                          "num_clips": vp.num_clips, "windows": [list(w) for w in vp.windows],
                          "proposals": count, "vectors_path": str(folder / f"{slot}-")})
            slot += 1
            bar.update(1)
    finally:
        bar.close()
    report.added = added
    _commit(db, index, vindex, added, [], report)
    report.seconds = time.perf_counter() - start


def _commit(db: Any, index: dict[str, Any], vindex: VectorIndex, added: list[dict[str, Any]],
            removed: list[int], report: IndexReport) -> None:
    folder = index_dir(db, index["name"])
    old = index["path"]
    generation = int(time_ns())
    path = folder / f"vectors-{generation}.faiss"
    vindex.save(path)
    try:
        current = commit_changes(db, index, added=added, removed=removed, path=str(path),
                                 options=vindex.options)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if old and old != str(path):
        Path(old).unlink(missing_ok=True)
    report.videos, report.proposals = current["videos"], current["proposals"]


def time_ns() -> int:
    import time

    return time.time_ns()


def _save_npy(path: Path, array: np.ndarray) -> None:
    write_atomically(path, lambda f: np.save(f, np.ascontiguousarray(array)))
