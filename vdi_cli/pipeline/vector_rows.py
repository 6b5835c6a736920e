"""Rows of an index's .npy vector files for a query's candidates: advised ahead, then gathered.

`vdi search` rescores its candidates from the exact vectors on disk. Gathering them through a
memory map alone costs one page fault each, taken one after another on the searching thread:
on a library larger than the page cache that is one disk round trip per row (measured at
1,000 hours: 16,000 faults, 2.7 s a query). Here every row a query needs is first advised
(`madvise(MADV_WILLNEED)` on its pages, rows close together in one call): the kernel starts all
those reads at once, without waiting, and the disk serves many at a time; the gather that
follows then mostly finds its pages in memory (figures: benchmarks/bench_vector_rows.py and
docs/benchmarks.md; positioned reads from a pool of 16 threads were tried too: faster than plain
faults when cold, 3-7x slower than either when the pages are cached, from the GIL handed back
and forth once a row). The maps are `MADV_RANDOM` (no readahead beyond what was advised) and
at most OPEN_FILES are kept open (each holds a descriptor).
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vdi_cli.errors import VdiError
from vdi_cli.vector_index import REBUILD_HINT

MERGE_BYTES = 16 << 10  # advise across a gap of up to this many bytes rather than make two calls
OPEN_FILES = 256  # memory maps kept open (each holds a file descriptor)


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
                           hint=REBUILD_HINT) from exc

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
        count = self.shape[0] * self.shape[1]
        try:
            data = np.fromfile(self.path, dtype=self.dtype, offset=self.offset, count=count)
        except OSError as exc:
            raise VdiError(f"the index's vector file '{self.path}' cannot be read ({exc})",
                           hint=REBUILD_HINT) from exc
        if data.size != count:
            raise VdiError(f"the index's vector file '{self.path}' is shorter than its header "
                           f"says ({data.size} of {count} values): it was truncated",
                           hint=REBUILD_HINT)
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
    """Gathers rows of many .npy files; keeps the OPEN_FILES most recently used maps."""

    def __init__(self, open_files: int | None = None) -> None:
        self.open_files = open_files or OPEN_FILES
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()

    def _map(self, rows: NpyRows) -> np.ndarray:
        array = self._maps.pop(rows.path, None)
        if array is None:
            try:
                array = np.memmap(rows.path, dtype=rows.dtype, mode="r", offset=rows.offset,
                                  shape=rows.shape)
            except (OSError, ValueError) as exc:  # shorter than its header says, or gone
                raise VdiError(f"the index's vector file '{rows.path}' cannot be read whole "
                               f"({exc}): it was truncated or removed", hint=REBUILD_HINT) from exc
            handle = getattr(array, "_mmap", None)
            advice = getattr(mmap, "MADV_RANDOM", None)
            if handle is not None and advice is not None:
                try:
                    handle.madvise(advice)
                except (OSError, ValueError):  # not supported here: reading still works
                    pass
        self._maps[rows.path] = array
        while len(self._maps) > self.open_files:
            self._maps.popitem(last=False)
        return array

    def gather(self, jobs: Sequence[tuple[NpyRows, np.ndarray]]) -> list[np.ndarray]:
        """For each (file, sorted positions): its rows at those positions, [n, width]."""
        outs = [np.empty((len(pos), rows.shape[1]), rows.dtype) for rows, pos in jobs]
        self._fill(jobs, outs)
        return outs

    def advise(self, jobs: Sequence[tuple[NpyRows, np.ndarray]]) -> None:
        """Start the reads of every job's rows (MADV_WILLNEED), waiting for none."""
        for rows, pos in jobs:
            if len(pos):
                _advise(self._map(rows), rows, pos)

    def gather_into(self, jobs: Sequence[tuple[NpyRows, np.ndarray]], out: np.ndarray,
                    advised: bool = False) -> None:
        """The rows of every (file, sorted positions) job, one job after another, into `out`
        ([total, width], any float dtype: the rows are cast as they are copied, so a float64
        scoring reads them once, with no float32 copy and no concatenation in between).
        `advised`: `advise` was called for these jobs already."""
        at, outs = 0, []
        for _, pos in jobs:
            outs.append(out[at : at + len(pos)])
            at += len(pos)
        if at != len(out):
            raise ValueError(f"gather_into: {at} rows asked for, out holds {len(out)}")
        self._fill(jobs, outs, advise=not advised)

    def _fill(self, jobs: Sequence[tuple[NpyRows, np.ndarray]], outs: Sequence[np.ndarray],
              advise: bool = True) -> None:
        if advise:
            self.advise(jobs)  # every read started before any is waited for
        for (rows, pos), out in zip(jobs, outs, strict=True):
            if len(pos):
                _copy_rows(self._map(rows), np.asarray(pos, dtype=np.int64), out)


def _copy_rows(array: np.ndarray, pos: np.ndarray, out: np.ndarray) -> None:
    """out[i] = array[pos[i]]: consecutive positions (a window's proposals) copied as slices,
    the rest by fancy indexing (decided first: scattered candidates, a thousand small jobs a
    query, then build no run bounds at all)."""
    breaks = np.flatnonzero(np.diff(pos) != 1) + 1
    if (len(breaks) + 1) * 8 > len(pos):  # mostly scattered rows: one fancy-indexed gather
        out[...] = array[pos]
        return
    bounds = [0, *breaks.tolist(), len(pos)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        out[a:b] = array[pos[a] : pos[a] + (b - a)]


def _advise(array: np.ndarray, rows: NpyRows, positions: np.ndarray) -> None:
    """MADV_WILLNEED on the pages of the rows at `positions` (runs of nearby rows in one call)."""
    handle = getattr(array, "_mmap", None)
    advice = getattr(mmap, "MADV_WILLNEED", None)
    if handle is None or advice is None:
        return
    base = rows.offset % mmap.ALLOCATIONGRANULARITY  # where row 0 lies in the map
    page = mmap.PAGESIZE
    for a, b in row_runs(positions, rows.row_bytes):
        start = base + a * rows.row_bytes
        start -= start % page
        try:
            handle.madvise(advice, start, base + b * rows.row_bytes - start)
        except (OSError, ValueError):  # advice is a hint: the gather reads the rows anyway
            return
