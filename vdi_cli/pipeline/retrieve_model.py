"""Which model `vdi retrieve` runs, chosen before anything heavy is loaded.

In order: `--checkpoint PATH`; `--run ID` (that training run's best checkpoint); `--training-free`;
else the best checkpoint of the latest successful `train` run in the store (stderr says which
run, its backbone and its training data); else (no training run at all) the training-free head
(the one a plugin registers with `default_for="training-free-head"`: the built-in
`clip-similarity`) on `--backbone`, by default the `training-free-backbone` (the built-ins' CLIP
ViT-B/32 with OpenAI's weights, fetched on first use as open_clip does; offline and not cached,
an error that names `--weights FILE` and the `offline-backbone`), with a notice saying so. A
backbone registered `synthetic_only` (tiny-shapes) is used only when asked for, with a notice
that it knows only the synthetic shapes world; a backbone with random weights is flagged:
its moments mean nothing. A checkpoint fixes the backbone, its weights and the frame sampling,
so the features always match training: a different `--backbone`, `--weights` or `--fps` is an error,
not a silent switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError, param

DEFAULT_FREE_SPAN = 60.0  # seconds per window for the training-free head
DEFAULT_SPAN = 60.0  # for a checkpoint that does not record its training durations


def free_head() -> str:
    """The training-free head: the one a plugin registers for that role (`vdi_cli.defaults`)."""
    from vdi_cli.defaults import default_id

    return default_id("head", "training-free-head")


def free_backbone() -> str:
    """The training-free head's default backbone (role `training-free-backbone`)."""
    from vdi_cli.defaults import default_id

    return default_id("backbone", "training-free-backbone")


def offline_demo() -> str:
    """The hint when the default backbone cannot be loaded: the `offline-backbone`, if any."""
    from vdi_cli.defaults import default_or_none

    offline = default_or_none("backbone", "offline-backbone")
    if offline is None:
        return "or `make demo`"
    return (f"for an offline try, {param('backbone', offline)} (pretrained on the synthetic "
            "shapes world only) or `make demo`")


def synthetic_only(backbone_id: str) -> bool:
    """Whether the backbone is registered `synthetic_only` (it knows only a synthetic world)."""
    from vdi_cli.registry import get_registry

    registry = get_registry("backbone")
    return backbone_id in registry and bool(registry.get(backbone_id).extra.get("synthetic_only"))


@dataclass
class ModelChoice:
    """Where the model comes from; `config` is the checkpoint's config.json (None: free)."""

    source: str  # checkpoint | run | latest | training-free
    checkpoint: str | None = None
    train_run: int | None = None
    config: dict[str, Any] | None = None
    notice: str | None = None
    sha256: str | None = None  # the weights hash the store recorded (checked at load)

    @property
    def training_free(self) -> bool:
        return self.config is None


@dataclass
class RetrievalModel:
    """A loaded model with everything retrieval needs to know about it."""

    model: Any  # vdi_cli.model.GroundingModel
    choice: ModelChoice
    sampling: dict[str, Any]
    span: float | None  # window length in seconds (None: never window)
    span_source: str  # checkpoint | --window | default
    head_config: dict[str, Any] = field(default_factory=dict)

    @property
    def backbone(self) -> Any:
        return self.model.backbone

    @property
    def head_id(self) -> str:
        return str(self.model.head_id)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.choice.source, "checkpoint": self.choice.checkpoint,
            "train_run": self.choice.train_run, "backbone": self.backbone.id,
            "weights": self.backbone.weights_id, "head": self.head_id,
            "head_config": self.head_config, "sampling": self.sampling, "window": self.span,
            "window_source": self.span_source,
        }


def choose_model(db: Any, *, checkpoint: str | None = None, run: int | None = None,
                 training_free: bool = False, backbone: str | None = None) -> ModelChoice:
    """Pick the model source (reads only small JSON files and the store; no torch)."""
    from vdi_cli.checkpoints import check_compatible, read_config

    picked = [param(name) for name, on in (("checkpoint", checkpoint is not None),
                                           ("run", run is not None),
                                           ("training_free", training_free)) if on]
    if len(picked) > 1:
        raise VdiError(f"{' and '.join(picked)} contradict each other",
                       hint="give one model source: a checkpoint folder, a training run id, "
                       f"or {param('training_free', True)}")
    if training_free:
        return ModelChoice("training-free")
    if checkpoint is not None:
        choice = ModelChoice("checkpoint", str(Path(checkpoint)))
        if not Path(checkpoint).exists():
            raise VdiError(f"checkpoint '{checkpoint}' does not exist",
                           hint="pass a checkpoint folder written by `vdi train` "
                           f"(`vdi runs show ID` lists a run's checkpoints), or "
                           f"{param('run', 'ID')}")
    elif run is not None:
        choice = _from_run(db, run, "run")
    else:
        from vdi_cli.store import list_runs

        latest = list_runs(db, status="ok", command="train", limit=1)
        if not latest:
            bb = backbone or free_backbone()
            return ModelChoice("training-free", notice=(
                f"Notice: no trained checkpoint in the store (`vdi train` makes one); using the "
                f"training-free {free_head()} head (CLIP text-frame similarity) on backbone {bb}"))
        choice = _from_run(db, int(latest[0]["id"]), "latest")
    choice.config = read_config(choice.checkpoint or "")
    from vdi_cli.store.artifacts import recorded_sha256

    choice.sha256 = recorded_sha256(db, choice.checkpoint or "")
    if choice.source == "latest":
        train = choice.config.get("train") or {}
        data = train.get("annotations") or "?"
        choice.notice = (f"Notice: using the latest training run {choice.train_run} "
                         f"({choice.checkpoint}): backbone "
                         f"{(choice.config.get('backbone') or {}).get('id', '?')}, trained on "
                         f"{train.get('dataset') or '?'} {data}; {param('checkpoint')}, "
                         f"{param('run')} or {param('training_free')} choose another model")
    if backbone is not None:
        try:
            check_compatible(choice.config, backbone=backbone)
        except VdiError as exc:
            extra = (f"; or pass {param('training_free', True)} for the training-free head on "
                     "this backbone" if choice.source == "latest" else "")
            raise VdiError(exc.message, hint=f"{exc.hint}{extra}") from None
    return choice


def _from_run(db: Any, run_id: int, source: str) -> ModelChoice:
    from vdi_cli.store import get_run
    from vdi_cli.store.checkpoints import best_checkpoint

    row = get_run(db, run_id)
    if row["command"] != "train":
        raise VdiError(f"run {run_id} is a '{row['command']}' run, not a training run",
                       hint="`vdi runs list --command train` lists the training runs")
    ckpt = best_checkpoint(db, run_id)
    return ModelChoice(source, str(ckpt["path"]), train_run=run_id)


def load_retrieval_model(choice: ModelChoice, *, backbone: str | None = None,
                         weights: str | None = None, fps: float | None = None,
                         window: float | None = None, head_options: dict[str, Any] | None = None,
                         device: str = "cpu", loaded: Any = None, text_only: bool = False
                         ) -> RetrievalModel:
    """Load the chosen model; `backbone` / `weights` / `fps` must agree with a checkpoint.
    `loaded` reuses an already loaded backbone (a checkpoint loads its text tower into it)."""
    from vdi_cli.backbones import check_device, load_backbone, load_spec, resolve_backbone
    from vdi_cli.video import Sampling

    check_device(device)
    if window is not None and not window > 0:
        raise VdiError(f"{param('window')} must be positive, got {window}",
                       hint=f"e.g. {param('window', 30)}")
    if choice.training_free:
        from vdi_cli.checks import check_component
        from vdi_cli.model import build_model

        check_component("head", free_head(), head_options)  # before the backbone loads
        if loaded is None:
            try:
                loaded = load_backbone(backbone or free_backbone(), weights, device=device,
                                       text_only=text_only)
            except VdiError as exc:
                if backbone is None:  # the default was chosen for the user: say what else works
                    raise VdiError(exc.message, hint=f"{exc.hint}; {offline_demo()}") from None
                raise
        model = build_model(loaded, free_head(), head_options)
        model.head.eval()
        span, span_source = (window, "--window") if window else (DEFAULT_FREE_SPAN, "default")
        return RetrievalModel(model, choice, Sampling(fps=fps).to_dict(), span, span_source,
                              dict(model.head_config))
    from vdi_cli.checkpoints import check_compatible
    from vdi_cli.model import load_model

    if head_options:
        raise VdiError(f"{param('head_options')} applies to the training-free head only",
                       hint="a checkpoint's head keeps the options it was trained with")
    config = choice.config or {}
    trained = config.get("backbone", {})
    if fps is not None:
        check_compatible(config, sampling=Sampling(fps=fps).to_dict())
    if weights is not None:
        spec = resolve_backbone(trained.get("id", ""), weights, trained.get("options"))
        check_compatible(config, weights=spec.weights_id)
        loaded = loaded if loaded is not None else load_spec(spec, device=device,
                                                             text_only=text_only)
    model, config = load_model(choice.checkpoint or "", device=device, backbone=loaded,
                               sha256=choice.sha256, text_only=text_only)
    sampling = Sampling.from_any(config.get("sampling")).to_dict()
    durations = config.get("durations") or {}
    if window:
        span, span_source = window, "--window"
    elif durations.get("max"):
        span, span_source = float(durations["max"]), "checkpoint"
    else:
        span, span_source = DEFAULT_SPAN, "default"
    if "num_frames" in sampling:  # a fixed frame count per video: the head saw whole videos
        span, span_source = None, "num_frames sampling"
    return RetrievalModel(model, choice, sampling, span, span_source,
                          dict(config["head"].get("config") or {}))


def model_warnings(loaded: RetrievalModel) -> list[str]:
    """What a user must know before trusting the moments: a backbone with random weights, or
    one that knows only the synthetic shapes world."""
    bb = loaded.backbone
    out = []
    if str(bb.weights_id).startswith("random"):
        out.append(f"Warning: backbone {bb.id} has random weights ({bb.weights_id}): its "
                   f"moments mean nothing; pass {param('weights', 'FILE')} or a pretrained "
                   "backbone")
    if synthetic_only(bb.id):
        out.append(f"Notice: {bb.id} knows only the synthetic shapes world (its image-text "
                   "pretraining); on other videos its moments mean nothing")
    return out
