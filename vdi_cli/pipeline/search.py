"""`vdi search` as a library: moments across an indexed library, in two stages.

1. Nearest neighbours: the sentence's `search_query` against the FAISS index of the proposals'
   `search_vectors` gives the M best candidates by inner product.
2. Exact rescoring: each candidate's stored proposal vectors get the head's own
   `score_proposals`, then per video the same cell NMS and window merge as `vdi retrieve`
   (`rank_scores`, the proposals not retrieved left out), then the moments are ranked across
   the library.

With the exact (flat) index the search proves its answer: the head's `score_bound` of the M-th
inner product (plus the fp16 codes' largest error times the query's norm: the scan reads codes,
`VectorIndex.code_error`) bounds the score of every proposal not retrieved; once that bound is
below the K-th moment's score, no proposal left out could enter the top K or suppress one in it
(NMS only lets a higher score suppress a lower one), so the top K equals scoring every window
of every video, as `vdi retrieve FOLDER` does. Otherwise M grows fourfold and the search is
repeated. A flat index of at most WHOLE_SCAN proposals is scored whole in one round. An
approximate index (ivfpq, winpq, hnsw) searches once with M = `candidates` and is
measured by its recall (benchmarks/bench_search.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vdi_cli.errors import VdiError, param
from vdi_cli.pipeline.index import load_vectors, open_retriever
from vdi_cli.pipeline.retrieve import RetrieveResult, VideoResult, check_queries
from vdi_cli.pipeline.retrieve_windows import (
    VideoProposals,
    rank_many,
    rank_scores,
    window_frames,
)
from vdi_cli.pipeline.vector_rows import (
    ROWS_SUFFIX,
    NpyRows,
    RowReader,
    VideoRows,
    prefetch_headers,
)
from vdi_cli.store.indexes import get_index, index_videos
from vdi_cli.types import Moment
from vdi_cli.vector_index import REBUILD_HINT, search_threads, split_ids

FIRST_CANDIDATES = 256  # M of the first round: at least this, or 64 per requested moment
APPROX_CANDIDATES = {"ivfpq": 8192, "hnsw": 2048, "winpq": 3072}  # (benchmarks/bench_search)
# an exact search of a flat index of at most this many proposals scores them all in one round:
# there one exhaustive round costs less than the rounds that prove a top K (100 videos, 13,600
# proposals: 3 rounds 411 ms, the whole scan of a served folder 36 ms; benchmarks/bench_serve)
WHOLE_SCAN = 65_536
# stage 2 decodes the best 16 x K candidates first (exact, see `rank_pruned`); at 1,000 hours
# (2048 candidates over 35 videos, top 10) 64 x K cost 19.9 ms a query, 16 x K 11.0, 8 x K 7.6,
# none of them falling back to the whole pass on the benchmark's 20 queries
PRUNE_KEEP = 16


@dataclass
class SearchStats:
    rounds: list[int] = field(default_factory=list)  # M of each round, per query
    proven: list[bool] = field(default_factory=list)  # the exact bound closed the search


class LibrarySearcher:
    """An opened index and the model it is bound to; `search` can be called many times."""

    def __init__(self, db: Any, name: str, *, device: str = "cpu",
                 notify: Callable[[str], None] | None = None) -> None:
        self.db = db
        search_threads()  # a bad VDI_SEARCH_THREADS is refused before the model loads
        self.index = get_index(db, name)
        if not self.index["path"]:
            raise VdiError(f"index '{name}' holds no video yet",
                           hint=f"vdi index add {name} SOURCES...")
        self.retriever = open_retriever(db, self.index["model"], device=device, notify=notify,
                                        text_only=True)
        self.head = self.retriever.loaded.model.head
        self.vectors = load_vectors(db, self.index)
        self.videos = {r["slot"]: r for r in index_videos(db, self.index["id"])}
        self._cache: dict[int, tuple[VideoProposals, VideoRows]] = {}
        self.rows = RowReader()
        self._listings: dict[str, dict[str, list[str]]] = {}
        self._timed: set[int] = set()  # videos whose frame times are read

    def _video(self, slot: int, *, times: bool = False) -> tuple[VideoProposals, VideoRows]:
        """A video's ranking frame (windows, cells, the head as applied to it) and where its
        exact vectors lie on disk (`VideoRows`, read by `self.rows`). Ranking needs no frame
        times, so its `times` file is read only with `times` (a plot, a timeline): opening it
        for every video a query touched cost a synchronous disk read each on a cold library."""
        if slot not in self._cache:
            row = self.videos[slot]
            head = self.head
            adapt = getattr(head, "adapt", None)
            if adapt is not None:
                head = adapt(int(row["num_clips"]))
            files = tuple(NpyRows.open(p) for p in self._vector_files(slot))
            if not files:
                raise VdiError(f"the vector files of video '{row['vid']}' in index "
                               f"'{self.index['name']}' are missing "
                               f"({row['vectors_path']}{ROWS_SUFFIX}.npy)", hint=REBUILD_HINT)
            cells = np.argwhere(head.mask2d.cpu().numpy()).astype(np.int64)
            vp = VideoProposals(head, float(row["duration"]), np.zeros(0, np.float64),
                                [tuple(w) for w in row["windows"]], [], cells, {})
            self._cache[slot] = (vp, VideoRows(files))
        vp, files = self._cache[slot]
        if times and slot not in self._timed:
            stamps = NpyRows.open(f"{self.videos[slot]['vectors_path']}times.npy")
            stamps = stamps.read_all().reshape(-1)
            ranges = window_frames(stamps, vp.windows) if len(stamps) else []
            vp = replace(vp, times=stamps, ranges=ranges)
            self._cache[slot] = (vp, files)
            self._timed.add(slot)
        return vp, files

    def _prefetch(self, slots: Sequence[int]) -> None:
        """The vector files' headers of the videos in `slots` not opened yet, their reads all
        started before `_video` opens the first (`prefetch_headers`)."""
        prefetch_headers([p for slot in slots if slot not in self._cache
                          for p in self._vector_files(slot)])

    def _vector_files(self, slot: int) -> list[str]:
        """The paths of a video's vector files (its rows file, or one a space in an older
        index), its frame times left out."""
        prefix = self.videos[slot]["vectors_path"]
        return [f"{prefix}{s}.npy" for s in self._spaces(prefix) if s != "times"]

    def _spaces(self, prefix: str) -> list[str]:
        """The suffixes of a video's files `<prefix><suffix>.npy` (`rows`, or one a space in
        an older index, and `times`), from one listing of the folder per searcher: globbing
        it for each video cost 2.9 ms a video at 1,000 hours (6,000 files), 0.3 s for a query
        that touches a hundred new videos."""
        folder, name = os.path.split(prefix)
        listing = self._listings.get(folder)
        if listing is None or name not in listing:  # a video added since: list again
            listing = {}
            for entry in os.listdir(folder):
                if entry.endswith(".npy"):
                    stem, dash, space = entry[:-4].partition("-")
                    listing.setdefault(stem + dash, []).append(space)
            self._listings[folder] = listing
        return sorted(listing.get(name, []))

    def search(self, queries: Sequence[str], *, top_k: int = 5, keep_maps: bool = False,
               candidates: int | None = None, run_id: int | None = None) -> RetrieveResult:
        import time

        import torch

        if top_k < 1:
            raise VdiError(f"{param('top_k')} must be at least 1, got {top_k}",
                           hint=f"e.g. {param('top_k', 5)}")
        queries = check_queries(queries)
        t0 = time.perf_counter()
        with torch.no_grad():
            sent = self.retriever.encode(queries)
            qvec = self.head.encode_queries(sent)
        search_q = self.head.search_query(qvec)
        t1 = time.perf_counter()
        model = {**self.retriever.describe(), "index": self.index["name"],
                 "index_kind": self.index["kind"], "index_videos": len(self.videos)}
        result = RetrieveResult(list(queries), model, run_id=run_id)
        stats = SearchStats()
        pools = []
        for qi in range(len(queries)):
            one = {k: v[qi : qi + 1] for k, v in qvec.items()}
            pool, rounds, proven = self._one(search_q[qi : qi + 1], one, top_k, candidates)
            stats.rounds.append(rounds)
            stats.proven.append(proven)
            pools.append(pool)
        t2 = time.perf_counter()

        fill_result(result, pools, self.videos,
                    lambda slot: self._video(slot, times=keep_maps)[0],
                    lambda slot: self.exact_scores(slot, qvec), top_k=top_k,
                    keep_maps=keep_maps, status="index")
        result.timings = {"text": t1 - t0, "search": t2 - t1,
                          "total": time.perf_counter() - t0}
        self.stats = stats
        return result

    def exact_scores(self, slot: int, qvec: dict[str, Any]) -> np.ndarray:
        """The head's exact scores [Q, W, C] of every window of a video (its stored vectors)
        for the sentences `qvec` (`encode_queries`): what a plot or a timeline draws."""
        vp, files = self._video(slot)
        return self.head.score_proposals(
            {k: v.reshape(len(vp.windows), len(vp.cells), -1)
             for k, v in files.read_all().items()}, qvec)

    def _one(self, qv: np.ndarray, one: dict[str, Any], top_k: int, candidates: int | None
             ) -> tuple[list[tuple[int, Moment]], int, bool]:
        total = self.vectors.size
        exact = self.index["kind"] == "flat" and candidates is None
        default = APPROX_CANDIDATES.get(self.index["kind"], APPROX_CANDIDATES["ivfpq"])
        m = min(total, candidates or (max(FIRST_CANDIDATES, 64 * top_k) if exact
                                      else max(default, 64 * top_k)))
        if exact and total <= WHOLE_SCAN:
            m = total
        while True:
            ips, ids = self.vectors.search(qv, m)
            pool = self._rank(ips[0], ids[0], one, top_k)
            if not exact or m >= total:
                return pool, m, exact
            kth = pool[top_k - 1][1].score if len(pool) >= top_k else -np.inf
            # a proposal not retrieved scans at most ips[0, -1]; its exact inner product is
            # within the codes' error of that (0 for a float32 scan)
            last = ips[0, -1] + self.vectors.code_error * float(np.linalg.norm(qv))
            if float(self.head.score_bound(np.array([last]))[0]) < kth:
                return pool, m, True
            m = min(total, m * 4)

    def _rank(self, ips: np.ndarray, ids: np.ndarray, one: dict[str, Any], top_k: int
              ) -> list[tuple[int, Moment]]:
        """The best top_k moments among the candidates: their exact scores (read from the
        vector files, advised ahead: `RowReader`), then `rank_pruned` over the touched videos."""
        keep = ids >= 0
        slots, positions = split_ids(ids[keep])
        known = np.isin(slots, np.fromiter(self.videos, np.int64, len(self.videos)))
        slots, positions = slots[known], positions[known]  # hnsw: removed videos left out
        order = np.lexsort((positions, slots))
        slots, positions = slots[order], positions[order]
        starts = np.flatnonzero(np.r_[True, np.diff(slots) != 0]) if len(slots) else []
        parts = np.split(np.arange(len(slots)), starts[1:]) if len(slots) else []
        self._prefetch([int(slots[p[0]]) for p in parts])
        exact = self._exact_many(slots, positions, parts, one)
        items = []
        for p in parts:
            slot = int(slots[p[0]])
            vp, _ = self._video(slot)
            scores = np.full((1, len(vp.windows) * len(vp.cells)), -np.inf, np.float32)
            scores[0, positions[p]] = exact[p]
            items.append((slot, vp, scores.reshape(1, len(vp.windows), len(vp.cells))))
        return rank_pruned(items, top_k)

    def _exact_many(self, slots: np.ndarray, positions: np.ndarray, parts: list[np.ndarray],
                    one: dict[str, Any]) -> np.ndarray:
        """Exact scores of every candidate (sorted by video, then position): each video's
        rows read from its vector files (`RowReader.gather_spaces`: every row's pages advised,
        then copied into one float64 array a space), then one `score_proposals` call."""
        if not parts:
            return np.zeros(0, np.float32)
        jobs = [(self._video(int(slots[p[0]]))[1], positions[p]) for p in parts]
        return self.head.score_proposals(self.rows.gather_spaces(jobs), one)[0]


def fill_result(result: RetrieveResult, pools: Sequence[list[tuple[int, Moment]]],
                videos: dict[int, dict[str, Any]], proposals: Callable[[int], VideoProposals],
                exact: Callable[[int], np.ndarray], *, top_k: int, keep_maps: bool,
                status: str) -> None:
    """Put a library search's answer into `result`: per query its ranked moments across the
    videos (`pools[qi]`: (slot, moment), best first), and each found video with the moments
    of it that made a top K; with `keep_maps`, also its per-frame timeline and 2D map from
    `exact(slot)`, the exact scores [Q, W, C] of all its windows (only then computed). Shared
    by the index search and the warm folder search."""
    from vdi_cli.pipeline.retrieve_windows import VideoRanking

    per_video: dict[int, list[list[Moment]]] = {}
    for qi, pool in enumerate(pools):
        result.corpus.append([(videos[slot]["vid"], m) for slot, m in pool])
        for slot, m in pool:
            per_video.setdefault(slot, [[] for _ in pools])[qi].append(m)
    for slot, moments in per_video.items():
        row, vp = videos[slot], proposals(slot)
        ranking = (rank_scores(vp, exact(slot), top_k=top_k, keep_maps=True) if keep_maps
                   else VideoRanking(vp.duration, vp.windows, []))
        ranking.moments = moments
        result.videos.append(VideoResult(row["vid"], row["path"], row["sha256"], vp.duration,
                                         status, ranking))


def rank_pruned(items: Sequence[tuple[int, VideoProposals, np.ndarray]], top_k: int
                ) -> list[tuple[int, Moment]]:
    """The best top_k moments across videos: `items` are (slot, the video's proposals, the
    exact scores [1, W, C] of one query, -inf for a proposal left out). The cell NMS and merge
    of `rank_scores` (`rank_many`: one batched call) run first only on the candidates scoring
    at least the PRUNE_KEEP * K-th best score, then, if that found fewer than K moments, on all.

    Exact for any floor at or below the final K-th moment's score: a candidate scoring
    less is ranked after every one that does in both NMS stages, so it can neither
    suppress one of them nor enter the top K. When the pruned ranking holds K moments their
    K-th score is at least the floor, so the floor was low enough (no candidate left out
    could have changed it). Shared by the index search and the warm folder search."""
    finite = [s[np.isfinite(s)] for _, _, s in items]
    floor = _prune_floor(np.concatenate(finite) if finite else np.zeros(0, np.float32),
                         PRUNE_KEEP * top_k)
    if floor > -np.inf:
        pool = _rank_at(items, floor, top_k)
        if len(pool) >= top_k:
            return pool
    return _rank_at(items, -np.inf, top_k)


def _rank_at(items: Sequence[tuple[int, VideoProposals, np.ndarray]], floor: float,
             top_k: int) -> list[tuple[int, Moment]]:
    """Rank the candidates scoring at least `floor` (the others left out, -inf)."""
    chosen = []
    for slot, vp, scores in items:
        live = scores >= floor
        if live.any():
            chosen.append((slot, vp, np.where(live, scores, -np.inf).astype(np.float32)))
    rankings = rank_many([(vp, s) for _, vp, s in chosen], top_k=top_k)
    pool = [(slot, m) for (slot, _, _), ranking in zip(chosen, rankings, strict=True)
            for m in ranking.moments[0]]
    pool.sort(key=lambda p: -p[1].score)
    return pool[:top_k]


def _prune_floor(scores: np.ndarray, keep: int) -> float:
    """The keep-th best score (-inf when there are no more than `keep`)."""
    if len(scores) <= keep:
        return -np.inf
    return float(np.partition(scores, len(scores) - keep)[len(scores) - keep])
