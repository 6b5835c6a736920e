"""The grounding-head contract (`register_heads`): what training, evaluation, retrieval, `vdi
index` and `vdi search` call on a head. Shapes: B videos, T frames, D dimensions, Q sentences,
N clips of the head's 2D map, C its valid cells (row-major), J a proposal space's dimension.

Every head is a torch module (`Head`). The core decodes a head's scores on its 2D map itself
(cell windows, NMS), so a head states its map: `params.num_clips`, `params.pooling_counts`,
`params.nms_thresh` and `mask2d` (`HeadParams`). A head that retrieval, `vdi index` and `vdi
search` can use also offers the index pair (`IndexableHead`): retrieval ranks every window
through `encode_proposals` + `score_proposals`, so there is one scoring path. A head whose map
may follow a window's frame count offers `adapt` (`AdaptableHead`).

The built-in heads also have `fused_scores(outputs)` and `decode(outputs, durations)` (ranked
`Moment`s); the core calls neither, so they are the built-ins' own API, not part of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class HeadFactory(Protocol):
    """How `vdi_cli.model.build_model` calls the registered factory."""

    def __call__(self, config: Any, *, video_dim: int, text_dim: int) -> Head:
        """Build the head for a backbone whose frame features have `video_dim` and sentence
        vectors `text_dim` dimensions (both the backbone's `embed_dim` today)."""
        ...


@runtime_checkable
class HeadParams(Protocol):
    """`head.params`: the resolved settings the core reads (any object with these attributes;
    `hidden_size`, `conv_layers`, `conv_kernel` are read with defaults, for batch sizing)."""

    num_clips: int
    """N, the side of the 2D map: proposal (i, j) is [i, j + 1] * window / N seconds."""
    pooling_counts: Any
    """The map's sparsity (MMN's pooling counts; `vdi_plugins.heads.cells.cell_mask`): the
    core batches the cell decoding of windows whose heads share it."""
    nms_thresh: float
    """The IoU above which a lower-ranked moment is suppressed, within and across windows."""


@runtime_checkable
class RankedWindows(Protocol):
    """What `Head.rank` and `Head.decode_cells` return (`vdi_plugins.heads.cells.RankedMoments`
    is one)."""

    windows: Any
    """[Q, K, 2] float32 start / end seconds, best first."""
    scores: Any
    """[Q, K] float32, descending within the first `counts[q]` entries."""
    counts: Any
    """[Q] int: how many of the K entries are real for each sentence."""


@runtime_checkable
class Head(Protocol):
    """A grounding head (a torch module: the trainer calls `parameters()`, `train()`,
    `eval()`, `state_dict()`, `load_state_dict()`, `to()` on it as on any module)."""

    @property
    def params(self) -> HeadParams:
        """Read by retrieval and search for the map (see `HeadParams`)."""
        ...

    @property
    def mask2d(self) -> Any:
        """[N, N] bool tensor, True on valid cells: retrieval takes `argwhere` of it as the
        (i, j) of each proposal vector, in row-major order."""
        ...

    def __call__(self, video_feats: Any, video_mask: Any, sent_feats: Any,
                 sent_to_video: Any) -> Any:
        """Forward: frame features [B, T, D], their mask [B, T] bool (True on real frames, or
        None), sentence vectors [Q, D] and the video of each sentence [Q] long -> an outputs
        object that only `loss` and `rank` read (training, evaluation)."""
        ...

    def loss(self, outputs: Any, targets: Mapping[str, Any], epoch: int) -> Mapping[str, Any]:
        """Training: `targets` = {"moments": [Q, 2] seconds, "durations": [B] seconds};
        `epoch` counts from 1. A dict whose "loss" is the finite scalar to backpropagate (it
        must reach `sent_feats`, the text tower trains through it); other entries are logged.
        A head with nothing to train raises `VdiError`."""
        ...

    def decode_cells(self, scores: Any, durations: Any, top_k: int | None = None
                     ) -> RankedWindows:
        """Retrieval and search: scores [R, C] on the valid cells (row-major; -inf marks a
        proposal that is not a candidate, never kept) of R windows lasting `durations` [R]
        seconds -> their moments in window time after the head's NMS, best first. The core
        batches many windows of many videos into one call (`vdi_cli.pipeline.rank_batch`)."""
        ...

    def cell_windows(self, durations: Any) -> Any:
        """[W, C, 2] seconds of every valid cell (row-major) in windows of `durations` [W]:
        cell (i, j) is [i, j + 1] * duration / N. Retrieval's plots and search place
        proposals in time with it."""
        ...

    def rank(self, outputs: Any, durations: Any, *, top_k: int | None = None) -> RankedWindows:
        """Evaluation: every sentence's moments in seconds, best first, at most `top_k`
        (`durations` per video [B]). The head's NMS (`params.nms_thresh`) has been applied."""
        ...


@runtime_checkable
class IndexableHead(Head, Protocol):
    """The index pair: a query-independent half and a cheap half. With the exact index, a
    search is then identical to scoring every window."""

    def encode_proposals(self, video_feats: Any, video_mask: Any = None) -> dict[str, Any]:
        """[B, T, D] frames (mask [B, T] or None) -> {space: [B, C, J] float32}: the vectors of
        each window's valid cells, independent of any query (`vdi index` stores them)."""
        ...

    def encode_queries(self, sent_feats: Any) -> dict[str, Any]:
        """[Q, D] sentence vectors -> {space: [Q, J]}, the same spaces as the proposals."""
        ...

    def score_proposals(self, proposals: Mapping[str, Any], queries: Mapping[str, Any]
                        ) -> Any:
        """{space: [*lead, J]} x {space: [Q, J]} -> float32 numpy [Q, *lead]: the head's exact
        test-time score, growing with each space's inner product (retrieval, search, serve)."""
        ...

    def search_vectors(self, proposals: Mapping[str, Any]) -> Any:
        """{space: [*lead, J]} -> float32 numpy [*lead, d]: the vectors put in the FAISS index."""
        ...

    def search_query(self, queries: Mapping[str, Any]) -> Any:
        """{space: [Q, J]} -> float32 numpy [Q, d]: the query side of the index's inner product."""
        ...

    def score_bound(self, ip: Any) -> Any:
        """float array of search inner products -> same shape: an upper bound of
        `score_proposals` over every proposal whose `search_vectors . search_query` is at most
        `ip`; an exact search stops once the bound falls below the K-th best score."""
        ...


@runtime_checkable
class AdaptableHead(Head, Protocol):
    """A head whose 2D map follows the frames it is given (optional)."""

    def adapt(self, frames: int) -> Head:
        """The head as applied to a window of `frames` frames (it may return itself); retrieval
        and search call it with the shortest window's frame count before encoding."""
        ...
