"""How well product codes rank proposals: ivfpq's codes against winpq's (window centre + coded
residual), on the simulated vectors of `bench_search.py`, in memory, without the index or disk.

A query's best proposals come from videos of its own topic (the simulated mixture's top level:
other topics' proposals score near 0 and never compete), so a library of `--videos` videos is
stood in for by the videos of one topic (every 32nd slot, as `bench_search.simulated_video`
deals them out): at 2,000 videos (1,000 hours) that is 63 videos, 1 M proposals. For each of
`--queries` queries a topic (drawn as `bench_search.write_library` draws them): the exhaustive
top 10 and top 50 proposals by the head's fused score (MMN's, score_pow 0.5), and the share of
them among the M best by each kind of codes (M in `--candidates`):

- ivfpq: FAISS IndexIVFPQ, 128 lists (the topic's share of 4,096), m = 64, every list probed,
  trained on the topic's first 2 videos (as the real index trains on the first videos);
- winpq: each proposal's inner product is its window centre's (exact) plus its residual's
  from product codes (m = 64, trained on the first 2 videos' residuals).

This is the recall of stage 1 only (the exact rescoring of stage 2 then finds the true order);
`bench_search.py` measures the moments after NMS, which reach deeper than the top 10 proposals.
Run: .venv/bin/python benchmarks/bench_code_recall.py [--videos 2000] [--topics 0,1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import _noise, _unit, simulated_video  # noqa: E402

WINDOWS, CELLS, JOINT = 119, 136, 256  # a 30-min video: the Charades preset's windows and cells


def fused(cos_iou: np.ndarray, cos_con: np.ndarray, score_pow: float = 0.5) -> np.ndarray:
    return 1 / (1 + np.exp(-10 * cos_iou)) * np.maximum(0.5 * cos_con + 0.5, 0) ** score_pow


def topic_library(videos: int, topic: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(iou [n, J], con [n, J], slots) of the topic's videos, windows in order."""
    slots = list(range(topic, videos, 32))
    iou, con = [], []
    for slot in slots:
        vecs, _ = simulated_video(0, slot, WINDOWS, CELLS, JOINT)
        iou.append(vecs["iou"].reshape(-1, JOINT))
        con.append(vecs["con"].reshape(-1, JOINT))
    return np.concatenate(iou), np.concatenate(con), slots


def topic_queries(slots: list[int], topic: int, count: int) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng([0, 2, topic])
    out = []
    for _ in range(count):
        slot, win = slots[int(rng.integers(len(slots)))], int(rng.integers(WINDOWS))
        _, centres = simulated_video(0, slot, WINDOWS, 1, JOINT)
        out.append(tuple(_unit(centres[s][win] + _noise(rng, (JOINT,), 0.8))
                         for s in ("iou", "con")))
    return out


def ranked(kind: str, x: np.ndarray, queries: np.ndarray, deepest: int) -> np.ndarray:
    """[Q, deepest] proposal rows, best first by the kind's coded inner products."""
    import faiss

    train = x[: 2 * WINDOWS * CELLS]
    if kind == "ivfpq":
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(x.shape[1]), x.shape[1], 128, 64, 8,
                                 faiss.METRIC_INNER_PRODUCT)
        index.train(train)
        index.add(x)
        index.nprobe = 128
        return index.search(queries, deepest)[1]
    centres = x.reshape(-1, CELLS, x.shape[1]).mean(1)
    residual = x - np.repeat(centres, CELLS, 0)
    pq = faiss.IndexPQ(x.shape[1], 64, 8, faiss.METRIC_INNER_PRODUCT)
    pq.train(residual[: len(train)])
    coded = pq.sa_decode(pq.sa_encode(residual))
    scores = np.repeat(queries @ centres.T, CELLS, 1) + queries @ coded.T
    return np.argsort(-scores, 1)[:, :deepest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000, help="library size (30-min videos)")
    parser.add_argument("--topics", default="0,1")
    parser.add_argument("--queries", type=int, default=8, help="queries a topic")
    parser.add_argument("--candidates", default="512,1024,2048,4096,8192,16384")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(2)
    ms = [int(m) for m in args.candidates.split(",")]
    found: dict[tuple[str, int], list[np.ndarray]] = {}
    for topic in (int(t) for t in args.topics.split(",")):
        t0 = time.perf_counter()
        iou, con, slots = topic_library(args.videos, topic)
        x = np.concatenate([iou, con], 1) / np.float32(np.sqrt(2))
        qs = topic_queries(slots, topic, args.queries)
        qmat = np.stack([np.r_[a, b] / np.sqrt(2) for a, b in qs]).astype(np.float32)
        exact = [fused(iou @ a, con @ b) for a, b in qs]
        truth = {k: [np.argsort(-e)[:k] for e in exact] for k in (10, 50)}
        print(f"topic {topic}: {len(slots)} videos, {len(x)} proposals "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        for kind in ("ivfpq", "winpq"):
            order = ranked(kind, x, qmat, max(ms))
            for k, tops in truth.items():
                found.setdefault((kind, k), []).append(np.array(
                    [[len(set(order[q, :m]) & set(tops[q])) / k for m in ms]
                     for q in range(len(qs))]))
    print(f"\nshare of the exhaustive top proposals among the M best by codes "
          f"({args.videos} videos; M = {', '.join(map(str, ms))})")
    for (kind, k), parts in found.items():
        mean = np.concatenate(parts).mean(0)
        print(f"  {kind:6s} top {k:2d}: " + "  ".join(f"{r:.3f}" for r in mean))


if __name__ == "__main__":
    main()
