"""Proposal vectors in a FAISS index: exact (flat inner product), IVF-PQ or HNSW.

`vdi index` keeps one FAISS index per library index, in a file beside the database. Vector ids
are 64-bit: the video's slot in the index times 2**32 plus the proposal's position in that
video (window * cells + cell), so which video and proposal a neighbour is needs no lookup table,
and removing a video removes an id range.

- `flat`: an exhaustive scan behind an id map; with the head's `score_bound` `vdi search` proves
  its top-K equal to scoring every proposal. By default (`fp16=1`) the scan reads half-precision
  codes (`IndexScalarQuantizer`, QT_fp16): a single-query scan is memory-bound, so half the
  bytes is about twice as fast, and the codes' largest error, measured with FAISS's own
  encode/decode as vectors are added (`code_error`: max ||v - decode(encode(v))||), widens the
  bound: a proposal whose scanned inner product is ip has an exact one of at most
  ip + code_error * ||query||, so the search stays exact (the candidates are rescored from the
  float32 vectors). `fp16=0` scans float32 (`IndexFlatIP`, code_error 0), as indexes built
  before this option did.
- `ivfpq`: inverted lists over a coarse k-means (nlist cells, `nprobe` visited) with product-
  quantised codes (m sub-vectors of 8 bits): ~m bytes a proposal in memory; trained on the
  first vectors added: all of the first build's, or its first PENDING_LIMIT (2**20, 2 GiB at
  512 dimensions) when it has more, then the rest stream in. Holding every vector of a big
  first build until the end cost 2 x 4 bytes x dim a proposal (134 GB for 1,000 hours). The
  automatic nlist, 4 sqrt(n), stops at MAX_NLIST = 4096 = 4 sqrt(2**20), so training early
  chooses the same lists as training at the end; more lists would make every build (each vector
  compared with every list centre) cost n**1.5 (hours on 2 cores for 1,000 hours of video).
  Approximate: the candidates are rescored exactly afterwards.
- `winpq`: IVF-PQ whose inverted lists are the videos' windows, not k-means cells: a window's
  proposals form one list, its centre is the mean of their search vectors (kept as fp16 in an
  HNSW graph, the coarse quantiser, so a query finds its `nprobe` best windows without scanning
  them all), and each proposal is coded (m sub-vectors of 8 bits) as its residual from that
  centre. The proposals of a window differ from each other far less than from a k-means cell's
  centre, so the codes are finer for the same bytes (at 1,000 hours the 4,096 best by codes
  held 0.994 of the exhaustive top 10 proposals, ivfpq's 0.775: benchmarks/bench_code_recall.py;
  recall@10 of the moments 0.975 against ivfpq's 0.835 with twice the candidates:
  bench_search.py), and the lists need no k-means: only the codebooks are trained (on residuals
  of the first vectors, as ivfpq). The graph's `ef_construction` matters: at 40 it missed some
  of a query's best windows (recall@10 0.88 at 1,000 hours), at 80 0.975. Removing a video
  empties its lists; their centres stay in the graph (HNSW cannot delete) and are probed in vain
  until `vdi index build --force`.
- `hnsw`: a graph over the full vectors (fast, no training, 4 bytes a dimension in memory);
  FAISS cannot delete from it, so removed videos are left out of the results instead until
  `vdi index build` makes the index again.

faiss is imported only here, and only when an index is built, opened or searched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vdi_cli.errors import VdiError

KINDS = ("flat", "ivfpq", "winpq", "hnsw")
THREADS_ENV = "VDI_SEARCH_THREADS"  # OpenMP threads of one search call (default 1)
SLOT_BITS = 32
REBUILD_HINT = "rebuild the index: vdi index build NAME SOURCES... --force"  # a damaged index file
PENDING_LIMIT = 1 << 20  # vectors an untrained ivfpq index holds before it trains
MAX_NLIST = 4096  # the automatic nlist's cap: 4 sqrt(PENDING_LIMIT)
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "flat": {"fp16": 1},
    "ivfpq": {"nlist": 0, "m": 0, "nprobe": 128, "train_size": 200_000},  # 0: chosen from size
    "hnsw": {"neighbors": 32, "ef_search": 128, "ef_construction": 80},
    # nprobe: the windows whose codes a query scans (the best by centre)
    "winpq": {"m": 0, "nprobe": 1024, "train_size": 200_000, "neighbors": 32,
              "ef_construction": 80},
}
FIRST_LISTS = 1024  # a winpq index's first list capacity; it doubles when windows outgrow it


def faiss_module() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise VdiError(f"the library index needs faiss ({exc})",
                       hint="pip install -c constraints.txt 'vdi[index]' (faiss-cpu)") from exc
    return faiss


def search_threads() -> int:
    """OpenMP threads for a search (VDI_SEARCH_THREADS, default 1). A single query's scan is
    short; FAISS's threads wait on each other at every barrier, and when other processes hold
    the cores that waiting dominates (measured: a 167 MB fp16 scan 28 ms on one thread, 94 ms on
    two busy cores)."""
    raw = os.environ.get(THREADS_ENV, "").strip() or "1"
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise VdiError(f"{THREADS_ENV} must be a whole number of threads, 1 or more; got "
                       f"'{raw}'", hint=f"unset {THREADS_ENV} (1 thread), or e.g. "
                       f"{THREADS_ENV}=2 on an idle machine")
    return count


def proposal_ids(slot: int, count: int, first: int = 0) -> np.ndarray:
    return (np.int64(slot) << SLOT_BITS) + np.arange(first, first + count, dtype=np.int64)


def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slot, position) of each id."""
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> SLOT_BITS, ids & ((1 << SLOT_BITS) - 1)


def options_for(kind: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    if kind not in KINDS:
        raise VdiError(f"unknown index kind '{kind}'", hint=f"use one of {', '.join(KINDS)}")
    options = dict(DEFAULT_OPTIONS[kind])
    for key, value in (given or {}).items():
        if key not in options:
            import difflib

            close = difflib.get_close_matches(key, list(options), n=1)
            mean = f" (did you mean '{close[0]}'?)" if close else ""
            raise VdiError(f"unknown option '{key}' for a {kind} index{mean}",
                           hint=f"a {kind} index takes: {', '.join(options) or 'no options'}")
        try:
            options[key] = int(value)
        except (TypeError, ValueError):
            raise VdiError(f"option '{key}' of a {kind} index takes a whole number, got "
                           f"'{value}'",
                           hint=f"e.g. --index-option {key}={DEFAULT_OPTIONS[kind][key]}"
                           ) from None
    if kind == "flat" and options["fp16"] not in (0, 1):
        raise VdiError(f"option 'fp16' of a flat index is 0 or 1, got {options['fp16']}",
                       hint="--index-option fp16=1 scans half-precision codes (the default, still "
                       "exact); --index-option fp16=0 scans float32")
    return options


@dataclass
class VectorIndex:
    """A FAISS index of one kind, its dimension and options; `faiss` is the FAISS object."""

    kind: str
    dim: int
    options: dict[str, Any]
    faiss: Any = None
    pending: list[tuple[np.ndarray, np.ndarray, int]] = field(default_factory=list)

    @classmethod
    def create(cls, kind: str, dim: int, options: dict[str, Any] | None = None) -> VectorIndex:
        faiss = faiss_module()
        opts = options_for(kind, options)
        if kind == "flat":
            inner = faiss.IndexIDMap2(
                faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16,
                                           faiss.METRIC_INNER_PRODUCT)
                if opts["fp16"] else faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            graph = faiss.IndexHNSWFlat(dim, int(opts["neighbors"]), faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = int(opts["ef_construction"])
            inner = faiss.IndexIDMap2(graph)
        else:
            inner = None  # built when the first vectors arrive (its sizes depend on them)
        return cls(kind, dim, opts, inner)

    @property
    def size(self) -> int:
        return int(self.faiss.ntotal) if self.faiss is not None else 0

    def _codes(self) -> Any:
        """The quantiser of a flat index that scans codes (fp16), else None."""
        if self.kind != "flat" or self.faiss is None:
            return None
        faiss = faiss_module()
        inner = faiss.downcast_index(self.faiss.index)
        return inner if isinstance(inner, faiss.IndexScalarQuantizer) else None

    @property
    def code_error(self) -> float:
        """The largest ||v - decode(encode(v))|| of the vectors added (0: exact scan): a
        scanned inner product is within code_error * ||query|| of the exact one."""
        return float(self.options.get("code_error", 0.0)) if self._codes() is not None else 0.0

    def _track_error(self, vectors: np.ndarray) -> None:
        codes = self._codes()
        if codes is None or not len(vectors):
            return
        worst = float(self.options.get("code_error", 0.0))
        for a in range(0, len(vectors), 1 << 16):
            part = vectors[a : a + (1 << 16)]
            back = codes.sa_decode(codes.sa_encode(part))
            err = np.sqrt(((part.astype(np.float64) - back) ** 2).sum(1)).max()
            worst = max(worst, float(err))
        self.options["code_error"] = worst

    def _make_ivfpq(self, pieces: list[np.ndarray]) -> None:
        """Train on the vectors of `pieces` (a random train_size of them when more), without
        joining them all into one array."""
        faiss = faiss_module()
        n = sum(len(p) for p in pieces)
        nlist = int(self.options["nlist"]) or auto_nlist(n)
        m = self._sub_vector_count()
        if n < 39 * nlist:
            raise VdiError(
                f"an ivfpq index needs at least {39 * nlist} proposals to train its {nlist} "
                f"lists, and its first videos give {n}",
                hint="build it over more videos, pass --index-option nlist=SMALLER, or use the "
                "exact index (--kind flat), which is the right one for a small library")
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        take = np.concatenate([p if len(mine) == len(p) else p[mine] for p, mine in zip(
            pieces, self._train_rows([len(p) for p in pieces]), strict=True)])  # no copy twice
        index.train(np.ascontiguousarray(take, dtype=np.float32))
        index.nprobe = int(self.options["nprobe"])
        self.options.update(nlist=nlist, m=m)
        self.faiss = index

    def _sub_vector_count(self) -> int:
        """The product codes' m (the option, or chosen from the dimension), which must divide
        the dimension."""
        m = int(self.options["m"]) or _sub_vectors(self.dim)
        if self.dim % m:
            raise VdiError(f"{self.kind} m={m} does not divide the vector dimension {self.dim}",
                           hint=f"choose m among the divisors of {self.dim}")
        return m

    def _train_rows(self, lengths: list[int]) -> list[np.ndarray]:
        """The training sample, as positions within each piece of `lengths` vectors: all of
        them, or a random train_size of them (seed 0) when there are more."""
        n, size = sum(lengths), int(self.options["train_size"])
        rows = (np.arange(n) if n <= size
                else np.sort(np.random.default_rng(0).choice(n, size, replace=False)))
        starts = np.cumsum([0, *lengths])
        return [rows[(rows >= a) & (rows < b)] - a
                for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def add(self, vectors: np.ndarray, ids: np.ndarray, group: int = 0) -> None:
        """Add vectors with their ids; `group`: proposals a window (the vectors are whole
        windows, in order), which a winpq index needs for its lists. An untrained ivfpq or
        winpq index keeps them until `flush` (called by `save`, or once it holds PENDING_LIMIT
        vectors), so it is trained on the vectors of the first build, at most PENDING_LIMIT."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.kind == "winpq" and (group < 1 or len(vectors) % group):
            raise ValueError(f"a winpq index adds whole windows: {len(vectors)} vectors are "
                             f"not windows of {group}")
        if self.faiss is None:
            self.pending.append((vectors, ids, group))
            if sum(len(v) for v, _, _ in self.pending) >= PENDING_LIMIT:
                self.flush()
            return
        self._add_trained(vectors, ids, group)

    def _add_trained(self, vectors: np.ndarray, ids: np.ndarray, group: int) -> None:
        if self.kind != "winpq":
            self._track_error(vectors)
            self.faiss.add_with_ids(vectors, ids)
            return
        faiss = faiss_module()
        quantizer = faiss.downcast_index(self.faiss.quantizer)
        windows = vectors.reshape(-1, group, self.dim)
        centres = np.ascontiguousarray(windows.mean(1), dtype=np.float32)
        first = int(quantizer.ntotal)
        self._reserve_lists(first + len(centres))
        quantizer.add(centres)
        lists = np.repeat(np.arange(first, first + len(centres), dtype=np.int64), group)
        # add_core reads raw pointers: every array stays referenced until it returns
        self.faiss.add_core(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(ids),
                            faiss.swig_ptr(lists))

    def _reserve_lists(self, needed: int) -> None:
        """Grow a winpq index's inverted lists to hold `needed` (capacity doubles: FAISS fixes
        nlist at creation, so the lists move into a larger set, each freed once copied)."""
        if needed <= self.faiss.nlist:
            return
        faiss = faiss_module()
        old = faiss.downcast_InvertedLists(self.faiss.invlists)
        capacity = max(2 * int(self.faiss.nlist), needed)
        new = faiss.ArrayInvertedLists(capacity, old.code_size)
        for lst in range(int(self.faiss.nlist)):
            size = old.list_size(lst)
            if size:
                new.add_entries(lst, size, old.get_ids(lst), old.get_codes(lst))
                old.resize(lst, 0)
        self.faiss.nlist = capacity
        self.faiss.replace_invlists(new, True)
        new.this.disown()  # the index owns the lists now

    def flush(self) -> None:
        if self.faiss is None and self.pending:
            pieces = [(v, g) for v, _, g in self.pending]
            if self.kind == "winpq":
                self._make_winpq(pieces)
            else:
                self._make_ivfpq([v for v, _ in pieces])
            pending, self.pending = self.pending, []
            while pending:  # piece by piece: no second copy of them all
                vectors, ids, group = pending.pop(0)
                self._add_trained(vectors, ids, group)

    def _make_winpq(self, pieces: list[tuple[np.ndarray, int]]) -> None:
        """An empty winpq index whose codebooks are trained on the residuals (a proposal minus
        its window's centre) of a random train_size of the pending vectors."""
        faiss = faiss_module()
        m = self._sub_vector_count()
        n = sum(len(v) for v, _ in pieces)
        if n < 256:
            raise VdiError(f"a winpq index needs at least 256 proposals to train its codebooks, "
                           f"and its first videos give {n}",
                           hint="build it over more videos, or use the exact index (--kind "
                           "flat), which is the right one for a small library")
        parts = []
        picks = self._train_rows([len(v) for v, _ in pieces])
        for (vectors, group), mine in zip(pieces, picks, strict=True):
            if len(mine):
                windows = vectors.reshape(-1, group, self.dim)
                centres = windows.mean(1)
                parts.append(vectors[mine] - centres[mine // group])
        # fp16 centres: half the bytes (0.24 GB at 1,000 hours); a residual is taken from the
        # centre as stored, so codes and scores agree
        quantizer = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_fp16,
                                      int(self.options["neighbors"]), faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efConstruction = int(self.options["ef_construction"])
        index = faiss.IndexIVFPQ(quantizer, self.dim, FIRST_LISTS, m, 8,
                                 faiss.METRIC_INNER_PRODUCT)
        index.pq.train(np.ascontiguousarray(np.concatenate(parts), dtype=np.float32))
        index.is_trained = True
        quantizer.this.disown()  # the IVF index owns its quantiser (and frees it)
        index.own_fields = True
        self.options.update(m=m)
        self.faiss = index
        self._probe()

    def _probe(self) -> None:
        """Set the lists a search visits (nprobe; the graph explores at least as many)."""
        faiss = faiss_module()
        ivf = faiss.extract_index_ivf(self.faiss)
        ivf.nprobe = int(self.options.get("nprobe", 128))
        if self.kind == "winpq":
            graph = faiss.downcast_index(ivf.quantizer)
            graph.hnsw.efSearch = max(ivf.nprobe, 16)

    def remove_slot(self, slot: int) -> int:
        """Remove every vector of a video slot; returns how many (0 for hnsw: left out at
        search time instead)."""
        if self.faiss is None or self.kind == "hnsw":
            return 0
        faiss = faiss_module()
        lo = int(slot) << SLOT_BITS
        return int(self.faiss.remove_ids(faiss.IDSelectorRange(lo, lo + (1 << SLOT_BITS))))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(inner products [Q, k], ids [Q, k]; -1 where fewer exist)."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self.faiss is None or not self.size:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        faiss = faiss_module()
        if self.kind == "hnsw":
            graph = faiss.downcast_index(self.faiss.index)
            graph.hnsw.efSearch = max(int(self.options["ef_search"]), k)
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(search_threads())
        try:
            return self.faiss.search(q, int(min(k, self.size)))
        finally:
            faiss.omp_set_num_threads(before)

    def memory_bytes(self) -> int:
        """What the index holds in memory, as FAISS serialises it (vectors or codes, lists,
        ids, graph)."""
        if self.faiss is None:
            return 0
        return int(faiss_module().serialize_index(self.faiss).nbytes)

    def save(self, path: str | Path) -> None:
        """Write atomically: a temporary file beside the target, then a rename."""
        self.flush()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if self.faiss is not None:
                faiss_module().write_index(self.faiss, str(tmp))
            else:
                tmp.write_bytes(b"")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path, kind: str, dim: int, options: dict[str, Any]) -> VectorIndex:
        path = Path(path)
        if not path.is_file():
            raise VdiError(f"the index file '{path}' is missing",
                           hint=REBUILD_HINT)
        if path.stat().st_size == 0:
            return cls(kind, dim, dict(options), None)
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise VdiError(f"the index file '{path}' cannot be read ({str(exc).splitlines()[0]})",
                           hint=REBUILD_HINT
                           ) from exc
        loaded = cls(kind, dim, dict(options), index)
        if kind in ("ivfpq", "winpq"):
            loaded._probe()
        return loaded


def auto_nlist(n: int) -> int:
    """IVF lists for n training vectors: 4 sqrt(n) (FAISS's rule of thumb), 16 to MAX_NLIST."""
    return int(min(MAX_NLIST, max(16, 4 * np.sqrt(n))))


def _sub_vectors(dim: int) -> int:
    """PQ sub-vectors: about 8 dimensions each (64 bytes for 512), a divisor of dim."""
    for m in (64, 48, 32, 24, 16, 8, 4, 2, 1):
        if dim % m == 0 and dim // m >= 4:
            return m
    return 1
