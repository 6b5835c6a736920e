"""`vdi retrieve FOLDER` kept warm: a folder's videos searched without an index, for a server.

`vdi retrieve QUERY FOLDER` answers one query in a fresh process: it loads the model, reads
every video's features and runs the head's query-independent half (`encode_proposals`, the 2D
convolutions) on every window each time. A server answers many queries over the same folder,
so `FolderSearcher` loads the model once, encodes every video's proposals once (at the first
search, or at start with `prepare`) and keeps them in memory; a search then costs the text
tower, one `score_proposals` per video and the ranking (`rank_pruned`, the index search's). Its
top K equals `vdi retrieve FOLDER`'s with the same model (tested).

It reads the store only (`vdi serve` opens the database read-only): a video whose features
are not cached for the model is listed in `missing` and left out, never extracted here; `vdi
extract FOLDER` (or one `vdi retrieve` over it) caches them. The searcher has the attributes
the server's timeline and search code read from a `LibrarySearcher` (`index`, `videos`,
`head`, `retriever`, `exact_scores`, `search`), so a served folder is one more search source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vdi_cli.errors import VdiError, param
from vdi_cli.pipeline.retrieve import RetrieveResult, check_queries, expand_inputs
from vdi_cli.pipeline.retrieve_windows import VideoProposals, video_proposals
from vdi_cli.pipeline.search import fill_result, rank_pruned


class FolderSearcher:
    """One or more folders (or globs) of videos and a loaded model; `search` can be called many
    times. `name` is how the source is called (a server lists it beside its indexes)."""

    def __init__(self, db: Any, sources: Sequence[str | Path], *, name: str,
                 checkpoint: str | None = None, run: int | None = None,
                 training_free: bool = False, backbone: str | None = None,
                 weights: str | None = None, fps: float | None = None,
                 window: float | None = None, overlap: float = 0.5, device: str = "cpu",
                 notify: Callable[[str], None] | None = None, retriever: Any = None) -> None:
        """The model is `vdi retrieve`'s choice for these options, or `retriever` (a loaded
        Retriever shared with another source: several folders, one model in memory)."""
        from vdi_cli.pipeline.retrieve import Retriever

        if not sources:
            raise VdiError("no folder to search", hint="give a folder of videos or a glob")
        inputs = []
        for spec in sources:
            inputs += expand_inputs(spec)
        self.db = db
        self.sources = [str(s) for s in sources]
        self.retriever = retriever or Retriever(
            db, checkpoint=checkpoint, run=run, training_free=training_free, backbone=backbone,
            weights=weights, fps=fps, window=window, overlap=overlap, device=device,
            notify=notify, text_only=True)
        self.head = self.retriever.loaded.model.head
        self.index = {"name": name, "kind": "folder", "id": None, "path": None,
                      "sources": self.sources}
        self.videos: dict[int, dict[str, Any]] = {}
        self.files: set[Path] = set()  # the searched videos' files, resolved (what may be served)
        self.missing: list[dict[str, str]] = []
        self._find_features(inputs)
        if not self.videos:
            bb = self.retriever.loaded.backbone
            raise VdiError(f"none of the {len(inputs)} videos of {', '.join(self.sources)} has "
                           f"cached features for this model (backbone {bb.id}, sampling "
                           f"{self.retriever.loaded.sampling})",
                           hint=f"extract them first (serving never writes the store): vdi "
                           f"retrieve \"a query\" {self.sources[0]} with the same model, or "
                           f"vdi index build NAME {self.sources[0]}")
        self._cache: dict[int, tuple[VideoProposals, dict[str, np.ndarray]]] = {}

    def _find_features(self, inputs: Sequence[Any]) -> None:
        """Which videos have features for the loaded model (by content hash: the store's
        hash cache when the file is unchanged, else the file is hashed, not recorded)."""
        from vdi_cli.features import find_feature_row
        from vdi_cli.store.hashes import hash_file, known_sha256

        bb = self.retriever.loaded.backbone
        sampling = self.retriever.loaded.sampling
        for slot, v in enumerate(inputs):
            try:
                sha = known_sha256(self.db, v.path) or hash_file(v.path)
            except OSError as exc:
                self.missing.append({"vid": v.vid, "path": str(v.path),
                                     "reason": f"cannot be read: {exc.strerror or exc}"})
                continue
            row = find_feature_row(self.db, sha, bb.id, bb.weights_id, sampling)
            if row is None or not Path(row["path"]).is_file():
                self.missing.append({"vid": v.vid, "path": str(v.path),
                                     "reason": "no cached features for this model"})
                continue
            self.videos[slot] = {"vid": v.vid, "path": str(v.path), "sha256": sha}
            self.files.add(Path(v.path).resolve())

    def prepare(self) -> None:
        """Encode every video's proposals now (a server's first search is then warm)."""
        for slot in self.videos:
            self._video(slot)

    def _video(self, slot: int, *, times: bool = False
               ) -> tuple[VideoProposals, dict[str, np.ndarray]]:
        """The video's proposals, encoded once, and their vectors ({space: [W, C, J]}), as an
        index searcher's `_video` gives a video's (proposals, stored vectors); its frame times
        are always there (`times`, which the index searcher reads only when asked, is moot)."""
        if slot not in self._cache:
            row = self.videos[slot]
            feats, times, duration = self.retriever.video_features(row["sha256"])
            vp = video_proposals(self.head, feats, times, duration,
                                 span=self.retriever.loaded.span,
                                 overlap=self.retriever.overlap)
            self._cache[slot] = (vp, vp.vectors)
        return self._cache[slot]

    def exact_scores(self, slot: int, qvec: dict[str, Any]) -> np.ndarray:
        """The head's exact scores [Q, W, C] of every window of a video for the sentences
        `qvec` (`encode_queries`), from its proposals in memory."""
        vp, _ = self._video(slot)
        return vp.head.score_proposals(vp.vectors, qvec)

    def search(self, queries: Sequence[str], *, top_k: int = 5, keep_maps: bool = False,
               candidates: int | None = None, run_id: int | None = None) -> RetrieveResult:
        """Moments of every query ranked across the folder's videos, exactly as `vdi retrieve
        FOLDER` ranks them (`candidates` is accepted for the index searcher's signature and
        ignored: every proposal is scored)."""
        import time

        import torch

        if top_k < 1:
            raise VdiError(f"{param('top_k')} must be at least 1, got {top_k}",
                           hint=f"e.g. {param('top_k', 5)}")
        queries = check_queries(queries)
        t0 = time.perf_counter()
        with torch.no_grad():
            qvec = self.head.encode_queries(self.retriever.encode(queries))
        t1 = time.perf_counter()
        model = {**self.retriever.describe(), "index": self.index["name"],
                 "index_kind": "folder", "index_videos": len(self.videos)}
        result = RetrieveResult(list(queries), model, run_id=run_id)
        scored = {}  # slot -> (proposals, exact scores [Q, W, C] of every window)
        for slot in self.videos:
            scored[slot] = (self._video(slot)[0], self.exact_scores(slot, qvec))
        pools = [rank_pruned([(slot, vp, s[qi : qi + 1]) for slot, (vp, s) in scored.items()],
                             top_k) for qi in range(len(queries))]
        t2 = time.perf_counter()
        fill_result(result, pools, self.videos, lambda slot: scored[slot][0],
                    lambda slot: scored[slot][1], top_k=top_k, keep_maps=keep_maps,
                    status="memory")
        result.timings = {"text": t1 - t0, "search": t2 - t1,
                          "total": time.perf_counter() - t0}
        return result
