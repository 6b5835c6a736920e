"""VDI training (paper Algorithm 1): MMN's losses on Q plus lambda-weighted VDI objectives that
adapt the text encoder through Qs / Qd; checkpoints every epoch, early stopping on validation.

`train(config, db, run)` is what `vdi train` calls; `Trainer` exposes the steps for tests.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from vdi_cli.pipeline.train_config import TrainConfig

_BLOCK = re.compile(r"(?:resblocks|layers)\.(\d+)\.")


def select_text_parameters(named: list[tuple[str, Any]], last_k: int | None,
                           trainable: str = "all") -> list[Any]:
    """All text parameters, or only the last k transformer blocks plus what follows them (final
    norm, projection; embeddings and earlier blocks stay frozen), or (`trainable` =
    "token-embeddings") only the word-vector table."""
    if trainable == "token-embeddings":
        return [p for n, p in named if "token_embedding" in n]
    if last_k is None:
        return [p for _, p in named]
    blocks = [int(m.group(1)) for n, _ in named if (m := _BLOCK.search(n))]
    if not blocks:
        return [p for _, p in named] if last_k > 0 else []
    first = max(blocks) - last_k + 1
    keep = []
    for name, p in named:
        m = _BLOCK.search(name)
        if m is not None:
            if int(m.group(1)) >= first:
                keep.append(p)
        elif not any(k in name for k in ("embedding", "embeddings")) and last_k > 0:
            keep.append(p)
    return keep


def _scalar(value: Any) -> float:
    return float(value.detach()) if hasattr(value, "detach") else float(value)


class Trainer:
    """Holds the model, the VDI objectives, the optimiser and the schedule."""

    def __init__(self, config: TrainConfig, backbone: Any, patch_count: int) -> None:
        import torch

        from vdi_cli.model import build_model
        from vdi_cli.registry import get_component

        self.config = config = config.resolved()
        torch.manual_seed(config.seed)
        self.model = build_model(backbone, config.head, config.head_options,
                                 config.context_length, config.text_pool)
        self.objectives: dict[str, Any] = {}
        for oid in config.objectives:
            component = get_component("objective", oid)
            module = component.build(
                objective_options(component, config), dim=backbone.embed_dim,
                patch_count=patch_count)
            self.objectives[oid] = module.to(backbone.device)
        named_text = backbone.named_text_parameters()
        for _, p in named_text:
            p.requires_grad_(False)
        self.text_params = select_text_parameters(named_text, config.train_text_layers,
                                                  config.text_trainable)
        head_params = list(self.model.head.parameters())
        vdi_params = [p for m in self.objectives.values() for p in m.parameters()]
        if config.objective_lr == "head":
            head_params += vdi_params  # one group, as before the option existed
        groups = [{"params": head_params, "lr": config.lr}]
        if self.text_params and config.text_lr_ratio > 0:
            groups.append({"params": self.text_params, "lr": config.lr * config.text_lr_ratio})
        if config.objective_lr == "text" and vdi_params:
            groups.append({"params": vdi_params, "lr": config.lr * config.text_lr_ratio})
        self.optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.99),
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(config.milestones or []), gamma=config.gamma)
        # what encodes sentences and computes the losses: the model and `_losses` here, a rank's
        # share and a DistributedDataParallel module under torchrun (`train_ddp.attach`)
        self.texts: Any = self.model
        self.loss_fn: Any = self._losses
        from vdi_cli.pipeline.train_diagnostics import Diagnostics

        self.diagnostics = Diagnostics.for_config(config) if self.objectives else None
        self.epoch = 0  # epochs completed
        self.best: float | None = None
        self.best_epoch = 0
        self.stale = 0

    @property
    def static_use(self) -> str | None:
        """None when no objective reads f_q(Qs); "grad" when one back-propagates into it,
        else "nograd" (encoded without a graph: the paper's probe, cheaper)."""
        uses = [getattr(m.config, "stop_gradient", "static") for m in self.objectives.values()
                if getattr(m.config, "probe", None) == "static"]
        if not uses:
            return None
        return "grad" if "none" in uses else "nograd"

    @property
    def needs_patches(self) -> bool:
        return any(getattr(m, "needs_patches", False) for m in self.objectives.values())

    @property
    def needs_parsed(self) -> bool:
        return bool(self.objectives)

    def text_trainable(self, epoch: int) -> bool:
        return epoch > (self.config.freeze_text_epochs or 0) and self.config.text_lr_ratio > 0

    def objectives_active(self, epoch: int) -> bool:
        """Whether the VDI terms are computed (and their modules trained) in `epoch`: always
        under objectives_frozen=train, else only once the text tower learns."""
        return bool(self.objectives) and (self.config.objectives_frozen == "train"
                                          or self.text_trainable(epoch))

    def step(self, batch: Any, epoch: int) -> dict[str, float]:
        """One optimisation step on a collated batch; returns the loss terms."""
        import torch

        dev = self.model.backbone.device
        train_text = self.text_trainable(epoch)
        for p in self.text_params:
            p.requires_grad_(train_text)
        self.model.head.train()
        for m in self.objectives.values():
            m.train()
        frames, mask = batch.frames.to(dev), batch.frame_mask.to(dev)
        vidx = batch.video_index.to(dev)
        with self.autocast():
            total, logged = self.loss_fn(batch, epoch, frames, mask, vidx)
        if self.diagnostics is not None and self._terms:
            self.diagnostics.observe(self, self._terms, self._inputs, train_text)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        logged["loss"] = _scalar(total)
        return logged

    def autocast(self) -> Any:
        """bfloat16 autocast on cuda when `amp` (no loss scaling needed); a no-op elsewhere."""
        import contextlib

        import torch

        dev = str(self.model.backbone.device)
        if self.config.amp and dev.startswith("cuda"):
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _losses(self, batch: Any, epoch: int, frames: Any, mask: Any, vidx: Any
                ) -> tuple[Any, dict[str, float]]:
        import torch

        from vdi_cli.objectives import ObjectiveInputs

        dev = frames.device
        sent = self.texts.encode_texts(list(batch.queries))
        out = self.model.head(frames, mask, sent, vidx)
        terms = self.model.head.loss(out, {"moments": batch.moments.to(dev),
                                           "durations": batch.durations.to(dev)}, epoch)
        total = terms["loss"]
        logged = {k: _scalar(v) for k, v in terms.items() if k != "loss"}
        self._terms: dict[str, Any] = {}  # the diagnostics' view: head loss, weighted VDI terms
        if self.objectives_active(epoch):
            static = None
            if self.static_use is not None:  # Qs probes the frames; detached unless asked
                static = self.texts.encode_unique(list(batch.static),
                                                  grad=self.static_use == "grad")
            inputs = ObjectiveInputs(
                text_query=sent, text_static=static,
                text_dynamic=self.texts.encode_unique(list(batch.dynamic)),
                static_empty=torch.tensor([not s.strip() for s in batch.static], device=dev),
                dynamic_empty=torch.tensor([not s.strip() for s in batch.dynamic], device=dev),
                frames=frames, frame_mask=batch.sentence_frame_mask(self.config.scope).to(dev),
                video_index=vidx,
                patches=batch.patches.to(dev) if batch.patches is not None else None)
            self._terms["head"], self._inputs = terms["loss"], inputs
            for oid, module in self.objectives.items():
                value = module(inputs)
                total = total + module.config.weight * value.float()
                logged[oid] = _scalar(value)
                self._terms[oid] = (value, module.config.weight * value.float())
        return total, logged

    def trained_text_names(self) -> list[str]:
        """The text-tower tensors training has changed so far: the trainable ones, once an epoch
        has trained the tower (none while it is frozen). The others are the backbone's
        pretrained values, which a checkpoint references by backbone id and weights id."""
        if not any(self.text_trainable(e) for e in range(1, self.epoch + 1)):
            return []
        trainable = {id(p) for p in self.text_params}
        return [n for n, p in self.model.backbone.named_text_parameters() if id(p) in trainable]

    def tensors(self) -> dict[str, Any]:
        """What a checkpoint stores: the head, the text tensors training changed, the
        objectives (not the frozen visual tower, nor text tensors still at their pretrained
        values: a ViT-B/32 run stored 927 MB an epoch)."""
        text = set(self.trained_text_names())
        out = {k: v for k, v in self.model.state_tensors().items()
               if not k.startswith("text.") or k[len("text."):] in text}
        for oid, m in self.objectives.items():
            out.update({f"objective.{oid}.{k}": v for k, v in m.state_dict().items()})
        return out

    def load_tensors(self, tensors: dict[str, Any]) -> None:
        from vdi_cli.checkpoints import subset

        self.model.head.load_state_dict(subset(tensors, "head."))
        self.model.backbone.load_text_state_dict(subset(tensors, "text."))
        for oid, m in self.objectives.items():
            m.load_state_dict(subset(tensors, f"objective.{oid}."))

    def train_state(self) -> dict[str, Any]:
        import torch

        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
                "best": self.best if self.best is not None else float("nan"),
                "best_epoch": self.best_epoch, "stale": self.stale,
                "rng": torch.get_rng_state()}

    def load_train_state(self, state: dict[str, Any]) -> None:
        import math

        import torch

        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        best = float(state["best"])
        self.best = None if math.isnan(best) else best
        self.best_epoch, self.stale = int(state["best_epoch"]), int(state["stale"])
        torch.set_rng_state(state["rng"])

    def observe(self, value: float | None) -> bool:
        """Record this epoch's validation value; True when it is the best so far."""
        if value is None:
            self.best_epoch = self.epoch
            return True
        if self.best is None or value > self.best:
            self.best, self.best_epoch, self.stale = value, self.epoch, 0
            return True
        self.stale += 1
        return False

    def should_stop(self) -> bool:
        return self.config.patience > 0 and self.stale >= self.config.patience


def objective_options(component: Any, config: TrainConfig) -> dict[str, Any] | None:
    """An objective's options, with `vdi_form` as its `form` when it has one and none was
    given (the run's `-O ID.form=` wins)."""
    options = dict(config.objective_options.get(component.id) or {})
    fields = getattr(component.config, "model_fields", {})
    if "form" in fields and "form" not in options:
        options["form"] = config.vdi_form
    return options or None


def log_line(epoch: int, epochs: int, losses: dict[str, float], val: dict[str, float]) -> str:
    parts = [f"epoch {epoch}/{epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in losses.items() if k != "contrastive_weight"]
    parts += [f"val {k} {v:.2f}" for k, v in val.items() if k in ("R@1,IoU=0.5", "mIoU")]
    return "  ".join(parts)


def checkpoint_config(trainer: Trainer, sampling: dict[str, Any], epoch: int,
                      metrics: dict[str, float], durations: list[float] | None = None
                      ) -> dict[str, Any]:
    from vdi_cli import __version__
    from vdi_cli.checkpoints import provenance

    c = trainer.config
    bb = trainer.model.backbone
    return {
        # who provided each component, so a load without its plugin can say what to install
        "components": {"backbone": provenance("backbone", bb.id),
                       "head": provenance("head", c.head),
                       "parser": provenance("parser", c.parser),
                       "objectives": {o: provenance("objective", o) for o in c.objectives}},
        "vdi_version": __version__, "epoch": epoch, "metrics": metrics,
        "backbone": {"id": bb.id, "weights": bb.weights_id, "weights_path": c.weights,
                     "options": c.backbone_options, "embed_dim": bb.embed_dim,
                     "patch_grid": list(bb.patch_grid)},
        # text tensors not in the weights file are the backbone's pretrained ones (id + weights)
        "text_tensors": {"stored": len(trainer.trained_text_names()),
                         "total": len(bb.named_text_parameters()), "rest": "pretrained"},
        "sampling": sampling, "context_length": c.context_length, "text_pool": c.text_pool,
        "head": {"id": c.head, "config": trainer.model.head_config},
        "parser": {"id": c.parser, "options": c.parser_options},
        "objectives": {o: c.objective_options.get(o, {}) for o in c.objectives},
        "train": c.model_dump(),
        # the video lengths the head was trained on: retrieval windows longer videos by them
        "durations": {"min": min(durations), "max": max(durations),
                      "mean": sum(durations) / len(durations)} if durations else None,
    }


def say(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run_folder(db: Any, run_id: int) -> Path:
    """The run's checkpoint folder, inside its database's own artifact folder
    (`vdi_cli.store.artifacts`)."""
    from vdi_cli.store.artifacts import run_dir

    return run_dir(db, run_id)
