"""The conformance kit: run a component through every member of its contract (`vdi_cli.contracts`)
with real tensors and files, and fail with a message a plugin author can act on.

    from vdi_cli.testing import check_head
    def test_my_head_conforms():
        check_head(build_my_head, MyHeadConfig())

Each `check_*` takes the factory as registered (a callable), a registry `Component` or a
registered id, builds the component small, calls every member the stages call, and asserts
shapes, dtypes and invariants (an index head's `score_bound` bounds its `score_proposals`, a loss
is a finite scalar whose gradient reaches the sentence vectors, ...). A failure is an
AssertionError that names the component, the member and what was expected. Each check returns a
`Conformance`: the contract members it called, per protocol (the meta-test checks that the kit
calls every member of every contract).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError

__all__ = ["Conformance", "check_backbone", "check_dataset_format", "check_head",
           "check_objective", "check_parser", "check_sequence_model", "check_video_reader",
           "objective_inputs"]

SENTENCES = ("a person opens the door and walks out of the room",
             "the red square moves quickly to the left", "someone is laughing")


@dataclass
class Conformance:
    """What a check called: {protocol name: member names}, and the component it built."""

    kind: str
    name: str
    called: dict[str, set[str]] = field(default_factory=dict)
    component: Any = None
    notes: list[str] = field(default_factory=list)


class _Probe:
    """Forwards to `target` and records, in `calls[protocol]`, each member read or called."""

    def __init__(self, target: Any, protocol: str, report: Conformance) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_seen", report.called.setdefault(protocol, set()))

    def __getattr__(self, name: str) -> Any:
        self._seen.add(name)
        return getattr(self._target, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._seen.add("__call__")
        return self._target(*args, **kwargs)


def _fail(report: Conformance, member: str, what: str) -> AssertionError:
    return AssertionError(f"{report.kind} {report.name!r}: {member}: {what}")


def _ensure(ok: Any, report: Conformance, member: str, what: str) -> None:
    if not ok:
        raise _fail(report, member, what)


def _builder(kind: str, factory: Any) -> tuple[Callable[..., Any], str]:
    """(build(config, **kwargs), display name) for a callable, a Component or a registered id."""
    if isinstance(factory, str):
        from vdi_cli.registry import get_component

        factory = get_component(kind, factory)
    if hasattr(factory, "build") and hasattr(factory, "id"):
        return factory.build, factory.id
    if not callable(factory):
        raise TypeError(f"a {kind} factory must be callable, a registry Component or an id; "
                        f"got {type(factory).__name__}")
    return (lambda config, **kw: factory(config, **kw)), getattr(factory, "__name__", repr(factory))


def _call(report: Conformance, member: str, fn: Callable[..., Any], *args: Any,
          **kwargs: Any) -> Any:
    """Call a member; an exception becomes an AssertionError that names the member."""
    try:
        return fn(*args, **kwargs)
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as a contract failure, with its cause
        raise _fail(report, member, f"raised {type(exc).__name__}: {exc}") from exc


def _np(x: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _finite_scalar(report: Conformance, member: str, value: Any) -> None:
    import torch

    _ensure(isinstance(value, torch.Tensor) and value.dim() == 0, report, member,
            f"must be a scalar tensor (0-dim), got {_describe(value)}")
    _ensure(bool(torch.isfinite(value)), report, member, f"is not finite ({float(value.detach())})")


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    return f"{type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "") \
        + (f" and dtype {dtype}" if dtype is not None else "")


def _shape(report: Conformance, member: str, value: Any, shape: tuple[int, ...]) -> None:
    got = tuple(getattr(value, "shape", ()))
    _ensure(got == tuple(shape), report, member,
            f"expected shape {tuple(shape)}, got {_describe(value)}")


def _float32(report: Conformance, member: str, value: Any) -> None:
    dtype = str(getattr(value, "dtype", ""))
    _ensure(dtype in ("float32", "torch.float32"), report, member,
            f"expected float32, got {_describe(value)}")


# --- heads ------------------------------------------------------------------------------------

INDEX_MEMBERS = ("encode_proposals", "encode_queries", "score_proposals", "search_vectors",
                 "search_query", "score_bound")


def check_head(factory: Any, config: Any = None, *, dim: int = 32, frames: int = 24,
               seed: int = 0) -> Conformance:
    """Build the head with `factory(config, video_dim=dim, text_dim=dim)` and run it through the
    head contract: forward, loss (with a gradient into the sentence vectors, unless the head
    refuses to train with a VdiError), rank, its 2D map (`params`, `mask2d`), the index pair
    when it offers one (shapes, `score_bound` >= `score_proposals` at the search inner product)
    and `adapt` when it has one."""
    import torch

    build, name = _builder("head", factory)
    report = Conformance("head", name)
    torch.manual_seed(seed)
    head = _call(report, "factory(config, video_dim=, text_dim=)", build, config,
                 video_dim=dim, text_dim=dim)
    report.component = head
    _ensure(isinstance(head, torch.nn.Module), report, "factory",
            f"must return a torch.nn.Module (the trainer calls parameters(), train(), "
            f"state_dict()), got {type(head).__name__}")
    report.called.setdefault("HeadFactory", set()).add("__call__")
    probe = _Probe(head, "Head", report)
    n, cells = _check_map(report, probe)
    b, q = 2, 3
    video = torch.randn(b, frames, dim)
    mask = torch.ones(b, frames, dtype=torch.bool)
    mask[1, frames * 3 // 4:] = False
    sent = torch.randn(q, dim, requires_grad=True)
    s2v = torch.tensor([0, 0, 1])
    durations = torch.tensor([8.0, 6.0])
    targets = {"moments": torch.tensor([[0.5, 3.0], [4.0, 8.0], [1.0, 2.5]]),
               "durations": durations}
    head.train()
    outputs = _call(report, "forward (head(video_feats, video_mask, sent_feats, sent_to_video))",
                    probe, video, mask, sent, s2v)
    try:
        terms = probe.loss(outputs, targets, 1)
    except VdiError as exc:
        report.notes.append(f"training-free: {exc.message}")
    except Exception as exc:  # noqa: BLE001
        raise _fail(report, "loss", f"raised {type(exc).__name__}: {exc} (a head with nothing "
                    "to train raises VdiError)") from exc
    else:
        _ensure(isinstance(terms, dict) and "loss" in terms, report, "loss",
                f"must return a dict with a 'loss' entry, got {type(terms).__name__}"
                + (f" with keys {sorted(terms)}" if isinstance(terms, dict) else ""))
        _finite_scalar(report, "loss()['loss']", terms["loss"])
        _ensure(terms["loss"].requires_grad, report, "loss()['loss']",
                "has no gradient (requires_grad is False): nothing would train")
        terms["loss"].backward()
        grad = sent.grad
        _ensure(grad is not None and bool(torch.isfinite(grad).all()) and bool(grad.abs().sum()),
                report, "loss()['loss']", "its gradient does not reach sent_feats: the text "
                "encoder could not be trained through the head")
    head.eval()
    with torch.no_grad():
        outputs = probe(video, mask, sent.detach(), s2v)
    _check_rank(report, probe, outputs, durations, s2v, q)
    have = [m for m in INDEX_MEMBERS if callable(getattr(head, m, None))]
    if have and len(have) < len(INDEX_MEMBERS):
        missing = [m for m in INDEX_MEMBERS if m not in have]
        raise _fail(report, "index contract", f"offers {', '.join(have)} but not "
                    f"{', '.join(missing)}: an indexable head needs all six")
    if have:
        _check_index(report, _Probe(head, "IndexableHead", report), video, mask, sent.detach(),
                     cells)
    if callable(getattr(head, "adapt", None)):
        adapted = _call(report, "adapt(frames)", _Probe(head, "AdaptableHead", report).adapt, 4)
        sub = Conformance("head", f"{name} adapted to 4 frames", report.called)
        small, small_cells = _check_map(sub, _Probe(adapted, "Head", sub))
        _ensure(small <= n, report, "adapt(frames)",
                f"gave a map of {small} clips from one of {n}: it may only coarsen")
        if have:
            _check_index(sub, adapted, video[:, :4], mask[:, :4], sent.detach(), small_cells)
    return report


def _check_map(report: Conformance, head: Any) -> tuple[int, int]:
    import torch

    params = _Probe(head.params, "HeadParams", report)
    n = params.num_clips
    _ensure(isinstance(n, int) and n >= 1, report, "params.num_clips",
            f"must be a positive int (the 2D map's side), got {n!r}")
    try:
        pooling = [int(c) for c in params.pooling_counts]
    except (TypeError, ValueError) as exc:
        raise _fail(report, "params.pooling_counts", f"must be a sequence of ints ({exc})") \
            from exc
    _ensure(all(c >= 0 for c in pooling), report, "params.pooling_counts", "counts must be >= 0")
    thresh = params.nms_thresh
    _ensure(isinstance(thresh, int | float) and 0.0 <= float(thresh) <= 1.0, report,
            "params.nms_thresh", f"must be an IoU in [0, 1], got {thresh!r}")
    m = head.mask2d
    _ensure(isinstance(m, torch.Tensor) and m.dtype == torch.bool, report, "mask2d",
            f"must be a bool tensor, got {_describe(m)}")
    _shape(report, "mask2d", m, (n, n))
    _ensure(bool(m.any()), report, "mask2d", "has no valid cell")
    _ensure(not bool(torch.tril(m, -1).any()), report, "mask2d",
            "has a valid cell (i, j) with j < i: cell (i, j) is the moment [i, j + 1] * "
            "window / N, so only j >= i can be valid")
    _check_cells(report, head, n, m)
    return n, int(m.sum())


def _check_cells(report: Conformance, head: Any, n: int, mask: Any) -> None:
    """decode_cells on random scores (one row with only two candidates) and cell_windows."""
    import numpy as np

    cells = np.argwhere(mask.cpu().numpy())
    c = len(cells)
    scores = np.random.default_rng(0).random((3, c)).astype(np.float32)
    scores[2, 2:] = -np.inf
    durations = np.array([8.0, 6.0, 4.0])
    ranked = _call(report, "decode_cells(scores, durations, top_k=5)", head.decode_cells,
                   scores, durations, 5)
    counts = _validate_ranked(report, "decode_cells", ranked, durations, 5)
    _ensure(counts[2] <= min(2, c), report, "decode_cells",
            f"kept {counts[2]} moments of a row with {min(2, c)} finite scores: a -inf cell "
            "is not a candidate (vdi search leaves those out) and must never be kept")
    best = _np(ranked.scores)[:, 0]
    _ensure(np.allclose(best, np.max(scores, axis=1)), report, "decode_cells",
            "the best-scoring cell of a row must come first (NMS never suppresses it)")
    windows = _call(report, "cell_windows(durations)", head.cell_windows, np.array([8.0, 4.0]))
    want = np.stack([(cells + [0, 1]) * d / n for d in (8.0, 4.0)])
    _ensure(np.asarray(windows).shape == (2, c, 2) and np.allclose(windows, want, atol=1e-4),
            report, "cell_windows", f"must be [W, C, 2] seconds with cell (i, j) at [i, j + 1] "
            f"* duration / N (N = {n}); got shape {np.asarray(windows).shape}")


def _check_rank(report: Conformance, head: Any, outputs: Any, durations: Any, s2v: Any,
                q: int) -> None:

    ranked = _call(report, "rank(outputs, durations, top_k=5)", head.rank, outputs, durations,
                   top_k=5)
    per_row = _np(durations)[_np(s2v).astype(int)]
    _validate_ranked(report, "rank", _Probe(ranked, "RankedWindows", report), per_row, 5)
    assert q == len(per_row)


def _validate_ranked(report: Conformance, member: str, ranked: Any, durations: Any,
                     top_k: int) -> Any:
    """Check a RankedWindows of len(durations) rows (row r in [0, durations[r]]); its counts."""
    import numpy as np

    q = len(durations)
    windows, scores, counts = _np(ranked.windows), _np(ranked.scores), _np(ranked.counts)
    _ensure(windows.ndim == 3 and windows.shape[0] == q and windows.shape[2] == 2, report,
            f"{member}().windows", f"expected [{q}, K, 2] seconds, got shape {windows.shape}")
    _ensure(scores.shape == windows.shape[:2], report, f"{member}().scores",
            f"expected [Q, K] = {windows.shape[:2]}, got {scores.shape}")
    _ensure(counts.shape == (q,), report, f"{member}().counts",
            f"expected [{q}], got {counts.shape}")
    for row in range(q):
        k = int(counts[row])
        _ensure(1 <= k <= min(top_k, windows.shape[1]), report, f"{member}().counts",
                f"row {row} has {k} moments; expected 1 to top_k={top_k}")
        s = scores[row, :k]
        _ensure(np.all(np.isfinite(s)) and np.all(np.diff(s) <= 1e-6), report,
                f"{member}().scores", f"row {row}: scores must be finite and best first, got "
                f"{s.tolist()}")
        w = windows[row, :k].astype(np.float64)
        dur = float(durations[row])
        _ensure(np.all(w[:, 0] < w[:, 1]) and np.all(w >= -1e-4) and np.all(w <= dur + 1e-3),
                report, f"{member}().windows", f"row {row}: moments must satisfy 0 <= start < "
                f"end <= duration ({dur} s), got {w.tolist()}")
    return counts


def _check_index(report: Conformance, head: Any, video: Any, mask: Any, sent: Any,
                 cells: int) -> None:
    import numpy as np
    import torch

    b, q = video.shape[0], sent.shape[0]
    with torch.no_grad():
        props = _call(report, "encode_proposals(video_feats, video_mask)",
                      head.encode_proposals, video, mask)
        _ensure(isinstance(props, dict) and props, report, "encode_proposals",
                f"must return a non-empty dict {{space: [B, C, J]}}, got {type(props).__name__}")
        for key, value in props.items():
            _ensure(tuple(value.shape[:2]) == (b, cells), report, f"encode_proposals[{key!r}]",
                    f"expected [B={b}, C={cells}, J] (C = valid cells of mask2d), "
                    f"got {_describe(value)}")
            _float32(report, f"encode_proposals[{key!r}]", value)
        unmasked = head.encode_proposals(video, None)
        _ensure(set(unmasked) == set(props), report, "encode_proposals(video_feats, None)",
                "must accept video_mask=None and give the same spaces")
        queries = _call(report, "encode_queries(sent_feats)", head.encode_queries, sent)
        _ensure(isinstance(queries, dict) and set(queries) == set(props), report,
                "encode_queries", f"must return the proposal spaces {sorted(props)}, got "
                f"{sorted(queries) if isinstance(queries, dict) else type(queries).__name__}")
        for key, value in queries.items():
            _shape(report, f"encode_queries[{key!r}]", value, (q, props[key].shape[-1]))
    scores = _call(report, "score_proposals(proposals, queries)", head.score_proposals,
                   props, queries)
    _ensure(isinstance(scores, np.ndarray), report, "score_proposals",
            f"must return a numpy array, got {type(scores).__name__}")
    _float32(report, "score_proposals", scores)
    _shape(report, "score_proposals", scores, (q, b, cells))
    _ensure(np.all(np.isfinite(scores)), report, "score_proposals", "gave a non-finite score")
    one = head.score_proposals({k: v[1, :3] for k, v in props.items()}, queries)
    _ensure(np.allclose(one, scores[:, 1, :3], atol=1e-5), report, "score_proposals",
            "scores of a subset of proposals differ from the same proposals scored together "
            "(each proposal's score must depend on it and the query only)")
    vectors = _call(report, "search_vectors(proposals)", head.search_vectors, props)
    query = _call(report, "search_query(queries)", head.search_query, queries)
    _float32(report, "search_vectors", vectors)
    _float32(report, "search_query", query)
    _ensure(vectors.ndim == 3 and vectors.shape[:2] == (b, cells), report, "search_vectors",
            f"expected [B={b}, C={cells}, d], got {_describe(vectors)}")
    _shape(report, "search_query", query, (q, vectors.shape[-1]))
    ip = query.astype(np.float64) @ vectors.reshape(-1, vectors.shape[-1]).astype(np.float64).T
    bound = np.asarray(_call(report, "score_bound(ip)", head.score_bound, ip), np.float64)
    _shape(report, "score_bound", bound, ip.shape)
    flat = scores.reshape(q, -1).astype(np.float64)
    worst = float((flat - bound).max())
    _ensure(worst <= 1e-5, report, "score_bound", f"is below score_proposals by {worst:.3g} for "
            "a proposal whose search_vectors . search_query is ip: it must be an upper bound, or "
            "an exact search stops too early")
    grid = np.linspace(float(ip.min()) - 0.1, float(ip.max()) + 0.1, 33)
    along = np.asarray(head.score_bound(grid), np.float64)
    _ensure(np.all(np.diff(along) >= -1e-6), report, "score_bound",
            "must not decrease as ip grows (a search stops at the first bound below the K-th)")


# --- backbones --------------------------------------------------------------------------------

def check_backbone(factory: Any, config: Any = None, *, weights: str | None = None,
                   backbone_id: str = "", device: str = "cpu") -> Conformance:
    """Build the spec with `factory(config, weights=, backbone_id=)`, load it on `device` and
    call every member: frames -> (global [N, D], patches [N, HW, D]), texts -> tokens -> [B, D]
    with a gradient into `named_text_parameters`, and the text state dict round trip."""
    import numpy as np
    import torch

    build, name = _builder("backbone", factory)
    report = Conformance("backbone", name)
    spec = _call(report, "factory(config, weights=, backbone_id=)", build, config,
                 weights=weights, backbone_id=backbone_id)
    report.called.setdefault("BackboneFactory", set()).add("__call__")
    spec = _Probe(spec, "BackboneSpec", report)
    _ensure(isinstance(spec.id, str) and spec.id, report, "spec.id", "must be a non-empty str")
    _ensure(isinstance(spec.weights_id, str) and spec.weights_id, report, "spec.weights_id",
            "must be a non-empty str, known before loading (the feature cache key)")
    loaded = _call(report, "spec.load(device)", spec.load, device)
    report.component = loaded
    bb = _Probe(loaded, "LoadedBackbone", report)
    _ensure(bb.id and bb.weights_id == spec.weights_id, report, "loaded.weights_id",
            f"must equal the spec's ({spec.weights_id!r}), got {bb.weights_id!r}")
    d, grid = bb.embed_dim, tuple(bb.patch_grid)
    _ensure(isinstance(d, int) and d > 0, report, "embed_dim", f"must be a positive int: {d!r}")
    _ensure(len(grid) == 2 and all(isinstance(g, int) and g > 0 for g in grid), report,
            "patch_grid", f"must be (H, W) positive ints, got {grid!r}")
    size = bb.image_size
    _ensure(isinstance(size, int) and size > 0, report, "image_size", f"got {size!r}")
    _ensure(isinstance(bb.device, str), report, "device", f"must be a str, got {bb.device!r}")
    _ensure(isinstance(bb.module, torch.nn.Module), report, "module",
            f"must be the torch module, got {type(bb.module).__name__}")
    frames = np.random.default_rng(0).integers(0, 255, (2, 40, 56, 3), dtype=np.uint8)
    pixels = _call(report, "preprocess(frames)", bb.preprocess, frames)
    _shape(report, "preprocess", pixels, (2, 3, size, size))
    _float32(report, "preprocess", pixels)
    glob, patches = _call(report, "encode_pixels(pixels)", bb.encode_pixels, pixels)
    hw = grid[0] * grid[1]
    _shape(report, "encode_pixels()[0] (global)", glob, (2, d))
    _shape(report, "encode_pixels()[1] (patches)", patches, (2, hw, d))
    _float32(report, "encode_pixels()[0]", glob)
    _float32(report, "encode_pixels()[1]", patches)
    _ensure(not glob.requires_grad and not patches.requires_grad, report, "encode_pixels",
            "must run without grad (the frame encoder is frozen)")
    g2, p2 = _call(report, "encode_frames(frames)", bb.encode_frames, frames)
    _ensure(torch.allclose(g2.float().cpu(), glob.float().cpu(), atol=1e-4)
            and torch.allclose(p2.float().cpu(), patches.float().cpu(), atol=1e-4), report,
            "encode_frames", "differs from encode_pixels(preprocess(frames))")
    texts = list(SENTENCES[:2])
    tokens = _call(report, "tokenize(texts)", bb.tokenize, texts)
    _ensure(isinstance(tokens, torch.Tensor) and tokens.dtype == torch.long and tokens.dim() == 2
            and tokens.shape[0] == 2, report, "tokenize", f"expected a LongTensor [2, L], got "
            f"{_describe(tokens)}")
    context = bb.context_length
    _ensure(isinstance(context, int) and context > 2, report, "context_length",
            f"must be the text context in tokens (an int > 2), got {context!r}")
    long = bb.tokenize([" ".join(["word"] * (2 * context))])
    _ensure(tuple(tokens.shape[1:]) == (context,) and tuple(long.shape) == (1, context), report,
            "tokenize", f"without a length must give [B, context_length={context}] tokens, also "
            f"for a text longer than that; got {tuple(tokens.shape)} and {tuple(long.shape)}")
    again = _call(report, "tokenize(texts, context_length=L)", bb.tokenize, texts,
                  context_length=int(tokens.shape[1]))
    _ensure(torch.equal(again, tokens), report, "tokenize(context_length=)",
            "differs from the default length's tokens at the same length")
    named = _call(report, "named_text_parameters()", bb.named_text_parameters)
    _ensure(named and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in named),
            report, "named_text_parameters", "must be a non-empty list of (name, tensor)")
    flags = [p.requires_grad for _, p in named]
    try:
        for _, p in named:
            p.requires_grad_(True)
            p.grad = None
        vec = _call(report, "encode_text(tokens)", bb.encode_text, tokens.to(bb.device))
        _shape(report, "encode_text", vec, (2, d))
        _float32(report, "encode_text", vec)
        if vec.requires_grad:
            vec.float().sum().backward()
        reached = [n for n, p in named if p.grad is not None and bool(p.grad.abs().sum())]
        _ensure(reached, report, "encode_text", "is not differentiable into "
                "named_text_parameters: VDI trains the text tower through it")
        try:
            mean = bb.encode_text(tokens.to(bb.device), pool="mean")
        except VdiError:
            report.notes.append("no pool='mean'")
        else:
            _shape(report, "encode_text(pool='mean')", mean, (2, d))
    finally:
        for (_, p), flag in zip(named, flags, strict=True):
            p.requires_grad_(flag)
            p.grad = None
    params = _call(report, "text_parameters()", bb.text_parameters)
    _ensure(len(params) == len(named), report, "text_parameters",
            "must be the tensors of named_text_parameters")
    state = _call(report, "text_state_dict()", bb.text_state_dict)
    _ensure(set(state) == {n for n, _ in named}, report, "text_state_dict",
            "keys must be the names of named_text_parameters")
    _call(report, "load_text_state_dict(state)", bb.load_text_state_dict, state)
    try:
        bb.load_text_state_dict({"not.a.text.tensor": torch.zeros(1)})
    except VdiError:
        pass
    else:
        raise _fail(report, "load_text_state_dict", "accepted a tensor that is not the text "
                    "tower's: it must raise VdiError (a checkpoint of another backbone)")
    return report


# --- parsers ----------------------------------------------------------------------------------

def check_parser(factory: Any, config: Any = None, *,
                 texts: Sequence[str] = SENTENCES) -> Conformance:
    """Build the parser with `factory(config)`, parse `texts` one by one and together, and check
    each ParsedQuery (its text, masks of the tokens' length, chunks inside the tokens and masked
    in Qd, kept in Qs) and `cache_config()` when it has one (JSON-ready, stable)."""
    import json

    from vdi_cli.types import ParsedQuery

    build, name = _builder("parser", factory)
    report = Conformance("parser", name)
    parser = _call(report, "factory(config)", build, config)
    report.component = parser
    report.called.setdefault("ParserFactory", set()).add("__call__")
    probe = _Probe(parser, "Parser", report)
    one = [_call(report, f"parse({t!r})", probe.parse, t) for t in texts]
    many = _call(report, "parse_many(texts)", probe.parse_many, list(texts))
    many = list(many)
    _ensure(len(many) == len(texts), report, "parse_many",
            f"gave {len(many)} results for {len(texts)} texts")
    for text, a, b in zip(texts, one, many, strict=True):
        for member, q in (("parse", a), ("parse_many", b)):
            _ensure(isinstance(q, ParsedQuery), report, member,
                    f"must return vdi_cli.types.ParsedQuery, got {type(q).__name__}")
            _ensure(q.text == text, report, member, f"the result for {text!r} is the parse of "
                    f"{q.text!r}" + (": one result per text, in the same order"
                                     if member == "parse_many" else ": keep the text as given"))
            n = len(q.tokens)
            _ensure(n > 0, report, member, f"no tokens for {text!r}")
            _ensure(len(q.static_masked) == n and len(q.dynamic_masked) == n, report, member,
                    f"{text!r}: static_masked / dynamic_masked must have one entry per token")
            for s, e in q.chunks:
                _ensure(0 <= s < e <= n, report, member, f"{text!r}: chunk {(s, e)} is outside "
                        f"the {n} tokens")
                _ensure(all(q.dynamic_masked[s:e]) and not any(q.static_masked[s:e]), report,
                        member, f"{text!r}: a noun chunk must be masked in Qd and kept in Qs "
                        "(build the query with vdi_cli.masking.build_parsed_query)")
        _ensure(a == b, report, "parse_many", f"differs from parse for {text!r}")
    _ensure(list(probe.parse_many([])) == [], report, "parse_many([])", "must be empty")
    if callable(getattr(parser, "cache_config", None)):
        caching = _Probe(parser, "CachingParser", report)
        key = _call(report, "cache_config()", caching.cache_config)
        _ensure(isinstance(key, dict), report, "cache_config", "must return a dict")
        try:
            json.dumps(key, sort_keys=True)
        except TypeError as exc:
            raise _fail(report, "cache_config", f"must be JSON-ready ({exc})") from exc
        _ensure(caching.cache_config() == key, report, "cache_config", "changed between calls")
    return report


# --- sequence models --------------------------------------------------------------------------

def check_sequence_model(factory: Any, config: Any = None, *, dim: int = 16,
                         seed: int = 0) -> Conformance:
    """Build with `factory(config, dim=dim)`; [B, T, D] -> [B, T, D] with and without a padding
    mask, outputs at real frames independent of padded ones, gradients into the input."""
    import torch

    build, name = _builder("sequence-model", factory)
    report = Conformance("sequence-model", name)
    torch.manual_seed(seed)
    model = _call(report, "factory(config, dim=)", build, config, dim=dim)
    report.component = model
    report.called.setdefault("SequenceModelFactory", set()).add("__call__")
    _ensure(isinstance(model, torch.nn.Module), report, "factory",
            f"must return a torch.nn.Module, got {type(model).__name__}")
    probe = _Probe(model, "SequenceModel", report)
    params = list(_call(report, "parameters()", probe.parameters))
    model.eval()  # dropout off: the comparisons below are exact up to rounding
    x = torch.randn(2, 6, dim, requires_grad=True)
    y = _call(report, "model(x)", probe, x)
    _shape(report, "model(x)", y, (2, 6, dim))
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    y1 = _call(report, "model(x, pad_mask)", probe, x, pad)
    _shape(report, "model(x, pad_mask)", y1, (2, 6, dim))
    _ensure(bool(torch.isfinite(y1[~pad]).all()), report, "model(x, pad_mask)",
            "non-finite output at a real frame")
    changed = x.detach().clone()
    changed[1, 4:] = 100.0
    y2 = probe(changed, pad)
    _ensure(torch.allclose(y1[1, :4].detach(), y2[1, :4].detach(), atol=1e-4), report,
            "model(x, pad_mask)", "outputs at real frames change when padded frames change: "
            "pad_mask (True = padded) must hide them")
    y1[~pad].sum().backward()
    _ensure(x.grad is not None and bool(x.grad.abs().sum()), report, "model(x, pad_mask)",
            "no gradient reaches x: L_sd trains through the sequence model")
    report.notes.append(f"{sum(p.numel() for p in params)} parameters")
    return report


# --- objectives -------------------------------------------------------------------------------

def objective_inputs(dim: int = 16, patch_count: int = 4, *, static: bool = True,
                     patches: bool = True, empty: bool = False, seed: int = 0) -> Any:
    """Small `ObjectiveInputs` (Q=3 sentences of B=2 videos, T=6 frames) whose text vectors
    require grad: what `check_objective` feeds an objective."""
    import torch

    from vdi_cli.objectives import ObjectiveInputs

    g = torch.Generator().manual_seed(seed)
    q, b, t = 3, 2, 6

    def text() -> Any:
        return torch.randn(q, dim, generator=g).requires_grad_(True)

    frame_mask = torch.ones(q, t, dtype=torch.bool)
    frame_mask[2, 4:] = False
    return ObjectiveInputs(
        text_query=text(), text_static=text() if static else None, text_dynamic=text(),
        static_empty=torch.full((q,), empty), dynamic_empty=torch.full((q,), empty),
        frames=torch.randn(b, t, dim, generator=g), frame_mask=frame_mask,
        video_index=torch.tensor([0, 0, 1]),
        patches=torch.randn(b, t, patch_count, dim, generator=g) if patches else None)


def check_objective(factory: Any, config: Any = None, *, dim: int = 16,
                    patch_count: int = 4) -> Conformance:
    """Build with `factory(config, dim=, patch_count=)`; `objective(inputs)` is a finite scalar
    whose gradient reaches a text vector, also (finite, zero allowed) when every Qs / Qd is
    empty; `config.weight` a number; `diagnose` (if any) finite figures naming its
    `collapse_figures`."""
    import torch

    build, name = _builder("objective", factory)
    report = Conformance("objective", name)
    torch.manual_seed(0)
    module = _call(report, "factory(config, dim=, patch_count=)", build, config, dim=dim,
                   patch_count=patch_count)
    report.component = module
    report.called.setdefault("ObjectiveFactory", set()).add("__call__")
    _ensure(isinstance(module, torch.nn.Module), report, "factory",
            f"must return a torch.nn.Module, got {type(module).__name__}")
    probe = _Probe(module, "Objective", report)
    cfg = _Probe(probe.config, "ObjectiveConfig", report)
    weight = cfg.weight
    _ensure(isinstance(weight, int | float) and math.isfinite(weight), report, "config.weight",
            f"must be a finite number (the objective's lambda), got {weight!r}")
    probing = _Probe(module.config, "ProbingConfig", report)
    probe_kind = getattr(probing, "probe", None)
    if probe_kind == "static":
        getattr(probing, "stop_gradient", "static")
    needs = bool(getattr(_Probe(module, "PatchObjective", report), "needs_patches", False))
    list(_call(report, "parameters()", probe.parameters))
    module.train()
    inputs = objective_inputs(dim, patch_count, static=probe_kind == "static", patches=needs)
    value = _call(report, "objective(inputs)", probe, inputs)
    _finite_scalar(report, "objective(inputs)", value)
    _ensure(value.requires_grad, report, "objective(inputs)", "has no gradient")
    value.backward()
    texts = [inputs.text_query, inputs.text_static, inputs.text_dynamic]
    _ensure(any(t is not None and t.grad is not None and bool(t.grad.abs().sum()) for t in texts),
            report, "objective(inputs)", "its gradient reaches none of text_query / "
            "text_static / text_dynamic: it would not train the text encoder")
    empty = objective_inputs(dim, patch_count, static=probe_kind == "static", patches=needs,
                             empty=True)
    value = _call(report, "objective(inputs with every Qs / Qd empty)", probe, empty)
    _finite_scalar(report, "objective(inputs with every Qs / Qd empty)", value)
    if callable(getattr(module, "diagnose", None)):
        diag = _Probe(module, "DiagnosedObjective", report)
        with torch.no_grad():
            figures = _call(report, "diagnose(inputs)", diag.diagnose, inputs)
        _ensure(isinstance(figures, dict) and all(
            isinstance(k, str) and isinstance(v, int | float) and math.isfinite(v)
            for k, v in figures.items()), report, "diagnose", "must return {name: finite float}")
        missing = set(getattr(diag, "collapse_figures", ())) - set(figures)
        _ensure(not missing, report, "collapse_figures",
                f"names figures diagnose does not give: {sorted(missing)}")
    return report


# --- dataset formats --------------------------------------------------------------------------

def check_dataset_format(factory: Any, path: str | Path, config: Any = None, *,
                         bad_path: str | Path | None = None) -> Conformance:
    """Build the reader with `factory(config)`, read `path` (a small sample file of the format)
    and check the report: Annotations with 0 <= start < end <= duration = videos[video_id],
    non-empty queries, counts >= 0. `bad_path` (a malformed file) must raise VdiError."""
    from vdi_cli.types import Annotation

    build, name = _builder("dataset", factory)
    report = Conformance("dataset", name)
    reader = _call(report, "factory(config)", build, config)
    report.component = reader
    report.called.setdefault("DatasetFormatFactory", set()).add("__call__")
    probe = _Probe(reader, "DatasetFormat", report)
    result = _call(report, f"read({str(path)!r})", probe.read, Path(path))
    for attr, kind in (("annotations", list), ("videos", dict), ("unannotated", list),
                       ("messages", list), ("dropped", int), ("clipped", int)):
        _ensure(isinstance(getattr(result, attr, None), kind), report, f"read().{attr}",
                f"must be a {kind.__name__} (return a vdi_cli.datasets.DatasetReport)")
    _ensure(result.annotations or result.unannotated, report, "read",
            f"found no query in {path}")
    _ensure(result.dropped >= 0 and result.clipped >= 0, report, "read",
            "dropped / clipped must be >= 0")
    for a in result.annotations + result.unannotated:
        _ensure(isinstance(a, Annotation), report, "read().annotations",
                f"rows must be vdi_cli.types.Annotation, got {type(a).__name__}")
        _ensure(isinstance(a.query, str) and a.query.strip(), report, "read().annotations",
                f"video {a.video_id!r}: empty query")
        _ensure(a.video_id in result.videos, report, "read().videos",
                f"video {a.video_id!r} of an annotation has no duration in videos")
        _ensure(math.isclose(a.duration, result.videos[a.video_id]), report, "read().annotations",
                f"video {a.video_id!r}: duration {a.duration} differs from videos' "
                f"{result.videos[a.video_id]}")
    for a in result.annotations:
        _ensure(0.0 <= a.start < a.end <= a.duration + 1e-6, report, "read().annotations",
                f"video {a.video_id!r} query {a.query!r}: moment [{a.start}, {a.end}] must "
                f"satisfy 0 <= start < end <= duration ({a.duration}); use "
                "vdi_cli.datasets.add_row, which clips or drops")
    if bad_path is not None:
        try:
            reader.read(Path(bad_path))
        except VdiError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise _fail(report, "read(malformed file)", f"raised {type(exc).__name__}: {exc}; "
                        "a malformed file must raise VdiError naming the file") from exc
        else:
            raise _fail(report, "read(malformed file)", f"accepted {bad_path}")
    return report


# --- video readers ----------------------------------------------------------------------------

def check_video_reader(open_video: Callable[..., Any], path: str | Path | None = None
                       ) -> Conformance:
    """Call `open_video(path=, options=)` (the hook's implementation) on a real mp4 (written
    with `vdi_cli.testing.make_video` when `path` is None: 2 s, 10 fps, 64 x 48) sampled at
    5 fps and at 4 frames, and check `info`, `frames()` (RGB uint8 [H, W, 3], ascending times
    within the duration, indices 0..n-1, the expected count) and `close()`."""
    from vdi_cli.video import Sampling, expected_count

    report = Conformance("video-reader", getattr(open_video, "__name__", repr(open_video)))
    with tempfile.TemporaryDirectory() as tmp:
        if path is None:
            from vdi_cli.testing import make_video

            path = make_video(Path(tmp) / "clip.mp4", seconds=2.0, fps=10, size=(64, 48))
            size: tuple[int, int] | None = (64, 48)
        else:
            size = None
        for sampling in (Sampling(fps=5.0), Sampling(num_frames=4)):
            reader = _call(report, "open_video(path, options)", open_video, path=str(path),
                           options=sampling)
            _ensure(reader is not None, report, "open_video", f"returned None for {path}")
            _check_frames(report, _Probe(reader, "VideoReader", report), sampling, size,
                          expected_count)
            if hasattr(reader, "damage"):
                damage = _Probe(reader, "DamageReportingReader", report).damage
                _ensure(damage is None or isinstance(damage, dict), report, "damage",
                        f"must be None or a dict, got {type(damage).__name__}")
        text = Path(tmp) / "notes.mp4"
        text.write_text("not a video", encoding="utf-8")
        try:
            other = open_video(path=str(text), options=Sampling(fps=1.0))
        except VdiError:
            other = None
        except Exception as exc:  # noqa: BLE001
            raise _fail(report, "open_video(a file that is not a video)",
                        f"raised {type(exc).__name__}: {exc}; return None (another reader may "
                        "take it) or raise vdi_cli.video.VideoError") from exc
        if other is not None:
            try:
                list(other.frames())
            except VdiError:
                pass
            finally:
                other.close()
    return report


def _check_frames(report: Conformance, reader: Any, sampling: Any, size: Any,
                  expected_count: Callable[..., int]) -> None:
    import numpy as np

    info = reader.info
    for attr in ("duration", "fps", "width", "height"):
        _ensure(isinstance(getattr(info, attr, None), int | float), report, f"info.{attr}",
                "must be a number (return a vdi_cli.video.VideoInfo)")
    if size is not None:
        _ensure((info.width, info.height) == size, report, "info",
                f"size {(info.width, info.height)}, expected {size}")
        _ensure(abs(info.duration - 2.0) < 0.25, report, "info.duration",
                f"{info.duration} s for a 2 s video")
    try:
        frames = list(_frames(reader))
    finally:
        reader.close()
    want = sampling.num_frames or expected_count(sampling, info.duration)
    _ensure(len(frames) == want, report, "frames()", f"gave {len(frames)} frames with "
            f"{sampling.to_dict()}, expected {want}")
    times = [f.time for f in frames]
    _ensure([f.index for f in frames] == list(range(len(frames))), report, "frames()",
            "indices must count 0, 1, ... in yield order")
    _ensure(all(b >= a for a, b in zip(times, times[1:], strict=False))
            and all(-1e-6 <= t <= info.duration + 1e-3 for t in times), report, "frames()",
            f"times must ascend within [0, {info.duration}], got {times}")
    for f in frames:
        image = np.asarray(f.image)
        _ensure(image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, report,
                "frames()", f"image must be RGB uint8 [H, W, 3], got {_describe(image)}")
        _ensure(image.shape[:2] == (info.height, info.width), report, "frames()",
                f"image {image.shape[:2]} is not info's (height, width)")


def _frames(reader: Any) -> Iterator[Any]:
    yield from reader.frames()
