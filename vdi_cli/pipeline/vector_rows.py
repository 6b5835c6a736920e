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

A video's vectors are one rows file (`write_rows`): a record a proposal, one field a space, its
data starting on a page boundary, so a candidate's rows in both spaces are one page read, not
two (measured cold, 4,096 candidates spread over 100 videos: one file of records 84 ms, a
file a space 163 ms: benchmarks/bench_vector_rows.py; a search's candidates cluster in a few
windows, which share pages in either layout, so it gains less). Indexes written before that
hold one plain 2-D file a space; `VideoRows` reads either, so they need no rebuild.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vdi_cli.errors import VdiError
from vdi_cli.vector_index import REBUILD_HINT

MERGE_BYTES = 16 << 10  # advise across a gap of up to this many bytes rather than make two calls
OPEN_FILES = 256  # memory maps kept open (each holds a file descriptor)
ROWS_ALIGN = 4096  # a rows file's data starts at this offset (a page: records do not straddle)
ROWS_SUFFIX = "rows"  # <slot>-rows.npy: a video's vectors, a field a space


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

    @property
    def map_shape(self) -> tuple[int, ...]:
        """The shape it is mapped as: [n] records for a rows file, [n, width] otherwise."""
        return (self.shape[0],) if self.fields else self.shape

    @property
    def fields(self) -> tuple[str, ...]:
        """The spaces a rows file's records hold (a structured dtype); () for a plain array."""
        return tuple(self.dtype.names or ())

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
        return data.reshape(self.map_shape)


def prefetch_headers(paths: Sequence[str]) -> None:
    """Start reading the first page of every file in `paths` (POSIX_FADV_WILLNEED), waiting
    for none: the headers `NpyRows.open` then parses are in memory or on their way, so a query
    that touches 40 videos not opened yet waits for one disk round trip, not 40 in a row. A
    hint: a file that cannot be opened is left to the open that follows to report."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            advise(fd, 0, ROWS_ALIGN, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def row_runs(positions: np.ndarray, row_bytes: int, merge_bytes: int = MERGE_BYTES
             ) -> tuple[np.ndarray, np.ndarray]:
    """The spans covering sorted `positions`, as two arrays (firsts, lasts + 1): neighbours
    whose gap is at most `merge_bytes` of rows share one span. Arrays, not a tuple a span: a
    query's thousand spans cost no Python object each."""
    pos = np.asarray(positions, dtype=np.int64)
    if not len(pos):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gap = max(1, merge_bytes // max(1, row_bytes))
    breaks = np.flatnonzero(np.diff(pos) > gap)
    return np.r_[pos[0], pos[breaks + 1]], np.r_[pos[breaks], pos[-1]] + 1


def write_rows(path: str | Path, spaces: dict[str, np.ndarray]) -> None:
    """Save a video's vectors {space: [n, J]} as one .npy of n records (a field a space,
    float32), its data at offset ROWS_ALIGN: with 2 x 256 float32 a record is half a page and
    never straddles two. Written atomically (`write_atomically`). A standard .npy (version
    1.0, the header padded with spaces): `np.load` reads it."""
    items = [(name, np.asarray(v, dtype=np.float32)) for name, v in spaces.items()]
    if not items or len({len(v) for _, v in items}) != 1 or any(v.ndim != 2 for _, v in items):
        raise ValueError("write_rows: one or more [n, J] arrays of the same n")
    dtype = np.dtype([(name, "<f4", (v.shape[1],)) for name, v in items])
    records = np.empty(len(items[0][1]), dtype)
    for name, v in items:
        records[name] = v
    header = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                   "shape": records.shape}).encode("latin1")
    pad = ROWS_ALIGN - len(np.lib.format.MAGIC_PREFIX) - 4 - len(header) - 1
    if pad < 0:
        raise ValueError(f"write_rows: a header of {len(header)} bytes does not fit in "
                         f"{ROWS_ALIGN}")
    header += b" " * pad + b"\n"

    def write(f: BinaryIO) -> None:
        f.write(np.lib.format.magic(1, 0) + struct.pack("<H", len(header)) + header)
        records.tofile(f)

    write_atomically(path, write)


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(f)` into a temporary file beside `path`, then renamed over it: a reader (or a
    command killed half-way) never leaves half a file under the real name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class VideoRows:
    """A video's vector files: its rows file (`write_rows`, every space in one record) or, in
    an index written before it, one plain [n, J] file a space. `spaces` maps a space to the
    file holding it and its field there (None: the file is that space)."""

    files: tuple[NpyRows, ...]

    @cached_property  # asked for each video of every query: worked out once
    def spaces(self) -> dict[str, tuple[NpyRows, str | None]]:
        out: dict[str, tuple[NpyRows, str | None]] = {}
        for f in self.files:
            for name in f.fields:
                out[name] = (f, name)
            if not f.fields:
                out[_space_of(f.path)] = (f, None)
        return out

    def widths(self) -> dict[str, int]:
        """Each space's vector width."""
        return {name: (f.dtype[field].shape[0] if field else f.shape[1])
                for name, (f, field) in self.spaces.items()}

    def read_all(self) -> dict[str, np.ndarray]:
        """Every row of every space: {space: [n, J]}."""
        whole = {f.path: f.read_all() for f in self.files}
        return {name: (whole[f.path].reshape(-1)[field] if field else whole[f.path])
                for name, (f, field) in self.spaces.items()}


def _space_of(path: str) -> str:
    """The space of a plain vector file `<slot>-<space>.npy`."""
    return os.path.basename(path)[:-4].partition("-")[2]


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
                                  shape=rows.map_shape)
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
        self.advise(jobs)  # every read started before any is waited for
        outs = []
        for rows, pos in jobs:
            out = np.empty((len(pos), *rows.map_shape[1:]), rows.dtype)
            if len(pos):
                _copy_rows(self._map(rows), np.asarray(pos, dtype=np.int64), out)
            outs.append(out)
        return outs

    def advise(self, jobs: Sequence[tuple[NpyRows, np.ndarray]]) -> None:
        """Start the reads of every job's rows (MADV_WILLNEED), waiting for none."""
        for rows, pos in jobs:
            if len(pos):
                _advise(self._map(rows), rows, pos)

    def gather_spaces(self, jobs: Sequence[tuple[VideoRows, np.ndarray]]
                      ) -> dict[str, np.ndarray]:
        """For each (video, sorted positions), one video after another: the rows of every
        space, {space: [total, J] float64} (what the head scores in). Every page is advised
        first; a plain file's rows are copied straight into float64, a rows file's records
        gathered once, then cast field by field."""
        if not jobs:
            return {}
        self.advise([(f, pos) for video, pos in jobs for f in video.files])
        total = sum(len(pos) for _, pos in jobs)
        out = {k: np.empty((total, w), np.float64) for k, w in jobs[0][0].widths().items()}
        at = 0
        for video, pos in jobs:
            pos = np.asarray(pos, dtype=np.int64)
            end = at + len(pos)
            spaces = video.spaces
            if set(spaces) != set(out):
                raise VdiError(f"the index's vector files '{video.files[0].path}' hold the "
                               f"spaces {sorted(spaces)}, not {sorted(out)}", hint=REBUILD_HINT)
            for f in video.files:
                if f.fields:
                    records = np.empty(len(pos), f.dtype)
                    _copy_rows(self._map(f), pos, records)
                    for name in f.fields:
                        out[name][at:end] = records[name]
                else:
                    _copy_rows(self._map(f), pos, out[_space_of(f.path)][at:end])
            at = end
        return out


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
    firsts, ends = row_runs(positions, rows.row_bytes)
    starts = base + firsts * rows.row_bytes
    starts -= starts % mmap.PAGESIZE
    lengths = base + ends * rows.row_bytes - starts
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        try:
            handle.madvise(advice, start, length)
        except (OSError, ValueError):  # advice is a hint: the gather reads the rows anyway
            return
