"""The hook specifications of vdi (pluggy project name "vdi").

Plugins implement these with `@vdi_cli.hookimpl`. Registration hooks receive a `register`
callable and every implementation is called. Hooks are always called with keyword arguments
and an implementation may accept any subset of them: new arguments never break old plugins.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("vdi")
hookimpl = pluggy.HookimplMarker("vdi")


@hookspec
def register_commands(app: Any) -> None:
    """Add Typer commands or command groups to the `vdi` Typer `app`.

    Called every time the CLI starts, so keep it cheap: import heavy libraries inside the command.
    """


@hookspec
def register_backbones(register: Any) -> None:
    """Register image-text backbones with `register(id, factory, config=..., description=...)`.

    Called as `factory(config, weights=PATH_OR_NONE, backbone_id=ID_AS_WRITTEN)`; it returns a
    cheap spec (`id`, `weights_id` known before loading, `load(device, precision)`), and
    `load` a loaded backbone: per-frame global [N, D] and patch [N, HW, D] features in the joint
    space, `tokenize`, a differentiable `encode_text`, `named_text_parameters`, `embed_dim`,
    `patch_grid`, `image_size` (contract: `vdi_cli.contracts.backbone`; check it with
    `vdi_cli.testing.check_backbone`). Loading must be lazy.
    """


@hookspec
def register_query_parsers(register: Any) -> None:
    """Register query parsers: called as `factory(config)`, it returns an object with
    `parse(text) -> ParsedQuery` and `parse_many(texts) -> list[ParsedQuery]` (one per text, same
    order; static query Qs, dynamic query Qd) and optionally `cache_config() -> dict`, the key of
    its stored parses (contract: `vdi_cli.contracts.parser`; `vdi_cli.testing.check_parser`)."""


@hookspec
def register_sequence_models(register: Any) -> None:
    """Register sequence models for the spatial-dynamic branch: called as `factory(config,
    dim=D)`, it returns a torch module mapping [B, T, D] (with an optional [B, T] padding mask,
    True on padded frames) to [B, T, D] (contract: `vdi_cli.contracts.sequence_model`;
    `vdi_cli.testing.check_sequence_model`)."""


@hookspec
def register_heads(register: Any) -> None:
    """Register grounding heads: called as `factory(config, video_dim=D, text_dim=D)`, it returns
    a torch module that training, evaluation and retrieval call as `head(video_feats [B, T, D],
    video_mask [B, T] | None, sent_feats [Q, D], sent_to_video [Q])` -> outputs,
    `loss(outputs, {"moments", "durations"}, epoch)` -> {"loss": scalar, ...} and
    `rank(outputs, durations, top_k=K)` -> ranked windows in seconds; the core reads its 2D map
    from `params.num_clips`, `params.pooling_counts`, `params.nms_thresh` and `mask2d`, has the
    head decode its own cells (`decode_cells(scores, durations, top_k)`, `cell_windows(
    durations)`) and calls `adapt(frames)` when it has one (contract: `vdi_cli.contracts.head`;
    `vdi_cli.testing.check_head`).

    A head that `vdi retrieve`, `vdi index` and `vdi search` can use also offers the index
    contract (the built-in `mmn` and `clip-similarity` do; see their module docstrings):

    - `encode_proposals(video_feats [B, T, D], video_mask [B, T] | None)` -> {space: [B, C, J]}:
      query-independent vectors of the C valid cells of each window's 2D map (row-major);
    - `encode_queries(sent_feats [Q, Dt])` -> {space: [Q, J]};
    - `score_proposals(proposals {space: [..., J]}, queries)` -> float32 array [Q, ...]: the
      head's exact test-time score, growing with each space's inner product;
    - `search_vectors(proposals)` / `search_query(queries)` -> float32 [..., d] / [Q, d]: the
      vectors put in the FAISS index, and `score_bound(ip)`: an upper bound of the score of
      any proposal whose search inner product is at most `ip` (what an exact search stops on).
    Retrieval ranks every window through `encode_proposals` + `score_proposals`, so there is
    one scoring path; a head without them cannot be indexed (`vdi index` says so)."""


@hookspec
def register_objectives(register: Any) -> None:
    """Register auxiliary training objectives (VDI's L_vc and L_sd), so ablations are flags.

    Called as `factory(config, dim=D, patch_count=HW)`; it returns a torch module whose
    `forward(inputs: vdi_cli.objectives.ObjectiveInputs)` is a scalar loss added with
    `config.weight`; `needs_patches = True` loads patch features, `config.probe == "static"`
    encodes Qs for it (contract: `vdi_cli.contracts.objective`; `vdi_cli.testing.check_objective`).
    """


@hookspec
def register_datasets(register: Any) -> None:
    """Register annotation formats: called as `factory(config)`, it returns a reader whose
    `read(path)` gives a `vdi_cli.datasets.DatasetReport` of `Annotation` rows (video id,
    duration, query, start, end) and what it dropped or clipped (contract:
    `vdi_cli.contracts.dataset`; `vdi_cli.testing.check_dataset_format`)."""


@hookspec
def register_recipes(register: Any) -> None:
    """Register training recipes with `register(path, name=None)`: a TOML file of `vdi train`
    options (`TrainConfig` keys, `head_options` / `objective_options.ID` as tables, and a
    one-line `description`); the name defaults to the file's stem. The file is read when a
    recipe is looked up (`vdi recipes`, `vdi train --recipe NAME`), and a key that is no
    training option leaves that recipe out with a warning. A name taken by an earlier plugin
    (built-ins load first) keeps the first; docs/recipes.md describes the format."""


@hookspec(firstresult=True)
def open_video(path: str, options: Any) -> Any:
    """Return a frame reader for `path`, or None to let the next implementation try.

    Called as `open_video(path=str, options=vdi_cli.video.Sampling)`. The reader has `info` (a
    `VideoInfo`), `frames()` yielding RGB uint8 `Frame`s sampled by `options`, and `close()`
    (contract: `vdi_cli.contracts.video`; `vdi_cli.testing.check_video_reader`). The first
    non-None result wins; the built-in PyAV reader is the fallback.
    """


@hookspec
def track_event(event: Any) -> None:
    """Receive a `RunEvent` (started, epoch_finished, checkpoint_saved, finished) for logging.

    Must not raise: an exception here is reported as a warning and ignored.
    """
