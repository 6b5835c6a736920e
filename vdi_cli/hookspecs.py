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

    `factory(config)` returns a backbone whose `load(device)` gives per-frame global and patch
    features in the joint space, a text encoder and its tokenizer. Loading must be lazy.
    """


@hookspec
def register_query_parsers(register: Any) -> None:
    """Register query parsers: `factory(config)` returns an object with `parse(text) -> ParsedQuery`
    and `parse_many(texts) -> list[ParsedQuery]` (static query Qs, dynamic query Qd)."""


@hookspec
def register_sequence_models(register: Any) -> None:
    """Register sequence models for the spatial-dynamic branch: `factory(config, dim)` returns a
    torch module mapping [B, T, D] (with an optional [B, T] padding mask) to [B, T, D]."""


@hookspec
def register_heads(register: Any) -> None:
    """Register grounding heads: `factory(config, video_dim=, text_dim=)` builds a head with a
    loss and a `decode` that returns ranked moments in seconds.

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
    """Register auxiliary training objectives (VDI's L_vc and L_sd), so ablations are flags."""


@hookspec
def register_datasets(register: Any) -> None:
    """Register annotation formats: `factory(config)` reads files into `Annotation` rows
    (video id, duration, query, start, end) and reports what it dropped or clipped."""


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

    The first non-None result wins; the built-in PyAV reader is the fallback.
    """


@hookspec
def track_event(event: Any) -> None:
    """Receive a `RunEvent` (started, epoch_finished, checkpoint_saved, finished) for logging.

    Must not raise: an exception here is reported as a warning and ignored.
    """
