"""Rows of an index's .npy vector files, read with positioned reads from a pool of threads.

`vdi search` rescores its candidates from the exact vectors on disk. Reading them through a
memory map costs one page fault each, taken one after another on the searching thread: on a
library larger than the page cache that is one disk round trip per row (measured at 1,000
hours: 16,000 faults, 2.7 s a query). Here the rows a query needs are grouped into runs (rows
close enough that one read of the span between them costs less than two reads), and the runs
are read with `os.pread`, which releases the GIL, by several threads at once: the disk serves
many requests at a time (measured on this machine's disk: 13,000 4-KiB reads a second one at a
time, 50,000 with 16 in flight). The pages read are the kernel's page cache, not the process's
memory: nothing is mapped, so the searching process stays small.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vdi_cli.errors import VdiError

REBUILD = "rebuild the index: vdi index build NAME SOURCES... --force"
READ_THREADS = 16  # reads in flight (the disk's sweet spot here; more did not help)
MERGE_BYTES = 16 << 10  # read across a gap of up to this many bytes rather than issue two reads
OPEN_FILES = 256  # files open at once while a query's rows are read


@dataclass(frozen=True)
class NpyRows:
    """A 2-D .npy file as rows: where its data starts, its shape and dtype (C order)."""

    path: str
    offset: int
    shape: tuple[int, int]
    dtype: np.dtype

    @classmethod
    def open(cls, path: str | Path) -> NpyRows:
        try:
            return cls._open(path)
        except (OSError, ValueError) as exc:
            raise VdiError(f"the index's vector file '{path}' cannot be read ({exc})",
                           hint=REBUILD) from exc

    @classmethod
    def _open(cls, path: str | Path) -> NpyRows:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        if fortran and len(shape) > 1 and shape[0] > 1 and shape[1] > 1:
            raise ValueError(f"{path}: Fortran-ordered arrays are not row-addressable")
        rows = int(shape[0]) if shape else 1
        width = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return cls(str(path), offset, (rows, width), np.dtype(dtype))

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * self.dtype.itemsize

    def read_all(self) -> np.ndarray:
        data = np.fromfile(self.path, dtype=self.dtype, offset=self.offset,
                           count=self.shape[0] * self.shape[1])
        return data.reshape(self.shape)


def row_runs(positions: np.ndarray, row_bytes: int, merge_bytes: int = MERGE_BYTES
             ) -> list[tuple[int, int]]:
    """[(first, last + 1)] spans covering sorted `positions`: neighbours whose gap is at most
    `merge_bytes` of rows share one span."""
    pos = np.asarray(positions, dtype=np.int64)
    if not len(pos):
        return []
    gap = max(1, merge_bytes // max(1, row_bytes))
    breaks = np.flatnonzero(np.diff(pos) > gap)
    firsts = np.r_[pos[0], pos[breaks + 1]]
    lasts = np.r_[pos[breaks], pos[-1]]
    return [(int(a), int(b) + 1) for a, b in zip(firsts, lasts, strict=True)]


class RowReader:
    """Reads the rows of many .npy files at once; the thread pool is made on first use."""

    def __init__(self, threads: int = READ_THREADS) -> None:
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def gather(self, jobs: Sequence[tuple[NpyRows, np.ndarray]]) -> list[np.ndarray]:
        """For each (file, sorted positions): its rows at those positions, [n, width]."""
        out: list[np.ndarray] = [np.zeros((0, f.shape[1]), f.dtype) for f, _ in jobs]
        for a in range(0, len(jobs), OPEN_FILES):
            self._gather_some(jobs, range(a, min(len(jobs), a + OPEN_FILES)), out)
        return out

    def _gather_some(self, jobs: Sequence[tuple[NpyRows, np.ndarray]], which: range,
                     out: list[np.ndarray]) -> None:
        fds: dict[int, int] = {}
        try:
            tasks = []
            for j in which:
                rows, pos = jobs[j]
                if not len(pos):
                    continue
                fds[j] = os.open(rows.path, os.O_RDONLY)
                tasks += [(j, a, b) for a, b in row_runs(pos, rows.row_bytes)]

            def read(task: tuple[int, int, int]) -> tuple[int, int, bytes]:
                j, a, b = task
                rows = jobs[j][0]
                size = (b - a) * rows.row_bytes
                data = os.pread(fds[j], size, rows.offset + a * rows.row_bytes)
                if len(data) != size:
                    raise VdiError(f"the index's vector file '{rows.path}' is shorter than "
                                   f"its header says (read {len(data)} of {size} bytes at "
                                   f"row {a}): it was truncated", hint=REBUILD)
                return j, a, data

            if len(tasks) > 1 and self.threads > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, "vdi-rows")
                results = list(self._pool.map(read, tasks))
            else:
                results = [read(t) for t in tasks]
        finally:
            for fd in fds.values():
                os.close(fd)
        spans: dict[int, list[tuple[int, np.ndarray]]] = {}
        for j, a, data in results:
            rows = jobs[j][0]
            spans.setdefault(j, []).append(
                (a, np.frombuffer(data, dtype=rows.dtype).reshape(-1, rows.shape[1])))
        for j, parts in spans.items():
            pos = np.asarray(jobs[j][1], dtype=np.int64)
            firsts = np.array([a for a, _ in parts], np.int64)
            block = np.concatenate([p for _, p in parts])
            # each position's row in `block`: its span's start in block + its offset in the span
            starts = np.cumsum([0] + [len(p) for _, p in parts[:-1]])
            k = np.searchsorted(firsts, pos, side="right") - 1
            out[j] = block[starts[k] + pos - firsts[k]]
