"""Benchmark of stage 2's row gather: the candidates' exact vectors read from .npy files.

Two ways, in one run, on the same files and candidates: plain memory-map faults (what `vdi
search` did before) and `RowReader` (every row's pages advised with MADV_WILLNEED first, then
the same gather). Each is measured cold (the files' pages dropped from the page cache with
posix_fadvise DONTNEED first: a library larger than memory) and warm (pages cached: a library
that fits). Files: `--files` videos x 2 spaces, 16,184 rows of 256 float32 (a 30-minute video
with the Charades preset), candidates clustered as a search's are (random windows of 136 rows,
a random cell in each).

Then the two file layouts through what `vdi search` calls (`RowReader.gather_spaces`), cold
and warm: one plain file a space (indexes written before the rows file) against one rows file
a video (`write_rows`: a record a proposal holding both spaces, page-aligned), the same
candidates.

Then, warm, what stage 2 hands the head (float64 rows, one array a space): gathered as float32
per video, joined and cast (before), or copied straight into float64 (`gather_spaces`, runs of
consecutive rows as slices), for scattered candidates and for whole windows.

Run: .venv/bin/python benchmarks/bench_vector_rows.py [--files 50] [--candidates 2048,4096,8192]
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vdi_cli.pipeline.vector_rows import NpyRows, RowReader, VideoRows, write_rows

ROWS, WIDTH, CELLS = 16184, 256, 136


def drop_cache(files: list[NpyRows]) -> None:
    for rows in files:
        fd = os.open(rows.path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def plain(jobs: list[tuple[NpyRows, np.ndarray]]) -> list[np.ndarray]:
    out = []
    for rows, pos in jobs:
        array = np.load(rows.path, mmap_mode="r")
        array._mmap.madvise(mmap.MADV_RANDOM)
        out.append(np.asarray(array[pos]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50, help="videos (2 files each)")
    parser.add_argument("--candidates", default="2048,4096,8192")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vdi-bench-rows-"))
    try:
        rng = np.random.default_rng(0)
        files, records = {}, {}
        for i in range(args.files):
            spaces = {}
            for space in ("iou", "con"):
                path = tmp / f"{i}-{space}.npy"
                spaces[space] = rng.standard_normal((ROWS, WIDTH), np.float32)
                np.save(path, spaces[space])
                files[i, space] = NpyRows.open(path)
            write_rows(tmp / f"{i}-rows.npy", spaces)
            records[i] = NpyRows.open(tmp / f"{i}-rows.npy")
        os.sync()
        print(f"{args.files} videos x 2 spaces x {ROWS} rows of {WIDTH * 4} bytes "
              f"({len(files) * ROWS * WIDTH * 4 / 1e9:.2f} GB); load average "
              f"{os.getloadavg()[0]:.1f}; medians of {args.repeats}, ms")
        print(f"{'candidates':>10s} {'plain cold':>10s} {'advised cold':>12s} {'ratio':>6s} "
              f"{'plain warm':>10s} {'advised warm':>12s} {'ratio':>6s}")
        for m in [int(x) for x in args.candidates.split(",")]:
            times: dict[str, list[float]] = {}
            for _ in range(args.repeats):
                per = candidates(rng, args.files, m)
                jobs = [(files[v, s], p) for s in ("iou", "con") for v, p in per.items()]
                for name, fn in (("plain", plain), ("advised", RowReader().gather)):
                    for state in ("cold", "warm"):
                        if state == "cold":
                            drop_cache(list(files.values()))
                        t0 = time.perf_counter()
                        got = fn(jobs)
                        times.setdefault(f"{name} {state}", []).append(time.perf_counter() - t0)
                        assert sum(len(g) for g in got) == sum(len(p) for _, p in jobs)
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            print(f"{m:10d} {med['plain cold']:10.1f} {med['advised cold']:12.1f} "
                  f"{med['plain cold'] / med['advised cold']:6.1f} {med['plain warm']:10.1f} "
                  f"{med['advised warm']:12.1f} {med['plain warm'] / med['advised warm']:6.2f}")
        layouts(files, records, args, rng)
        to_float64(files, args, rng)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def candidates(rng: np.random.Generator, videos: int, m: int) -> dict[int, np.ndarray]:
    """`m` candidates clustered as a search's are (random windows, a random cell in each):
    {video: sorted positions}."""
    video = rng.integers(videos, size=m)
    pos = rng.integers(ROWS // CELLS, size=m) * CELLS + rng.integers(CELLS, size=m)
    per: dict[int, set[int]] = {}
    for v, p in zip(video.tolist(), pos.tolist(), strict=True):
        per.setdefault(v, set()).add(p)
    return {v: np.array(sorted(p)) for v, p in sorted(per.items())}


def layouts(files: dict[tuple[int, str], NpyRows], records: dict[int, NpyRows],
            args: argparse.Namespace, rng: np.random.Generator) -> None:
    """A file a space against one rows file a video, through `gather_spaces`."""
    print(f"\nstage 2's gather_spaces, two layouts: {'candidates':>10s} "
          f"{'a file a space':>14s} {'rows file':>9s} {'ratio':>6s}  (cold; warm)")
    every = [*files.values(), *records.values()]
    for m in [int(x) for x in args.candidates.split(",")]:
        times: dict[str, list[float]] = {}
        for r in range(args.repeats):
            per = candidates(rng, args.files, m)
            jobs = {"spaces": [(VideoRows((files[v, "iou"], files[v, "con"])), p)
                               for v, p in per.items()],
                    "rows": [(VideoRows((records[v],)), p) for v, p in per.items()]}
            got = {}
            for state in ("cold", "warm"):
                for name in (("spaces", "rows") if r % 2 else ("rows", "spaces")):
                    if state == "cold":
                        drop_cache(every)
                    t0 = time.perf_counter()
                    got[name] = RowReader().gather_spaces(jobs[name])
                    times.setdefault(f"{name} {state}", []).append(time.perf_counter() - t0)
                assert all(np.array_equal(got["rows"][k], got["spaces"][k]) for k in got["rows"])
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"{'':37s} {m:10d} {med['spaces cold']:14.1f} {med['rows cold']:9.1f} "
              f"{med['spaces cold'] / med['rows cold']:6.2f}; {med['spaces warm']:.1f} "
              f"{med['rows warm']:.1f} {med['spaces warm'] / med['rows warm']:.2f}")


def joined_then_cast(reader: RowReader, jobs: dict[str, list[tuple[NpyRows, np.ndarray]]]
                     ) -> dict[str, np.ndarray]:
    flat = [job for k in jobs for job in jobs[k]]
    rows, out, at = reader.gather(flat), {}, 0
    for k in jobs:
        out[k] = np.concatenate(rows[at : at + len(jobs[k])]).astype(np.float64)
        at += len(jobs[k])
    return out


def into_float64(reader: RowReader, jobs: dict[str, list[tuple[NpyRows, np.ndarray]]]
                 ) -> dict[str, np.ndarray]:
    videos = [(VideoRows((a, b)), p) for (a, p), (b, _) in
              zip(jobs["iou"], jobs["con"], strict=True)]
    return reader.gather_spaces(videos)


def to_float64(files: dict[tuple[int, str], NpyRows], args: argparse.Namespace,
               rng: np.random.Generator) -> None:
    print(f"\nwarm, float64 rows for the head: {'rows':>6s} {'join + cast':>11s} "
          f"{'into float64':>12s} {'ratio':>6s}")
    shapes = [(f"{m} scattered", m, 1) for m in [int(x) for x in args.candidates.split(",")]]
    shapes += [("128 windows", 128, CELLS), ("256 windows", 256, CELLS)]
    for label, count, run in shapes:
        video = rng.integers(args.files, size=count)
        first = rng.integers(ROWS // CELLS, size=count) * CELLS
        if run == 1:
            first += rng.integers(CELLS, size=count)
        per: dict[int, set[int]] = {}
        for v, a in zip(video.tolist(), first.tolist(), strict=True):
            per.setdefault(v, set()).update(range(a, a + run))
        jobs = {s: [(files[v, s], np.array(sorted(p))) for v, p in sorted(per.items())]
                for s in ("iou", "con")}
        times: dict[str, list[float]] = {"join": [], "into": []}
        reader = RowReader()
        for _ in range(args.repeats + 1):  # the first round warms the pages and the maps
            for name, fn in (("join", joined_then_cast), ("into", into_float64)):
                t0 = time.perf_counter()
                fn(reader, jobs)
                times[name].append(time.perf_counter() - t0)
        a, b = joined_then_cast(reader, jobs), into_float64(reader, jobs)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        med = {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}
        rows = sum(len(p) for _, p in jobs["iou"])
        print(f"{label:>32s} {rows:6d} {med['join']:11.1f} {med['into']:12.1f} "
              f"{med['join'] / med['into']:6.2f}")


if __name__ == "__main__":
    main()
