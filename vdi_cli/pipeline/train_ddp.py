"""`vdi train` on several ranks (torchrun): what is split, what is replicated, and why the
result equals one process on the same global batch.

- `--batch-size` is the *global* batch (videos per optimisation step over all ranks, as in
  MMN's SOLVER.BATCH_SIZE), so a recipe means the same on 1 or N ranks. Every rank draws the
  same global batches (`epoch_batches`, seeded by seed and epoch).
- Split: the text tower, the encoder VDI trains and the cost that grows with the sentences.
  Rank r of N encodes a contiguous share of the batch's sentences (`shard_range`, in the
  single-process order) and `gather_rows` concatenates the shares on every rank, gradients kept.
- Replicated: the MMN head and the VDI objectives run on the whole global batch on every rank.
  Their definitions need the whole batch (MMN's mutual matching takes every other video's
  proposals and every other sentence as negatives; L_sd pairs sentences of different videos;
  the InfoNCE and variance variants of L_vc use the batch), and the head's BatchNorm needs the
  global batch's statistics, which gloo cannot share (torch's SyncBatchNorm is CUDA-only).
  Running them on every rank gives exactly the single-process statistics and negatives.
- Gradients: each rank computes the same whole-batch loss L. The gather's backward sums what
  every rank sends a share's rows, so rank r's text-tower gradient is N x dL/d(its share) and
  its head / objective gradient is dL/d(head). DDP averages over ranks:
  (1/N) sum_r N x dL/d(share r) = dL/d(text), (1/N) N x dL/d(head) = dL/d(head): the
  single-process gradient, with no rescaling of the loss.
- Randomness: every rank uses the run's seed. The replicated parts (the objectives' dropout)
  must draw the same masks on every rank for the replicated loss to be one loss; the split part
  (the text tower) draws no random numbers. So a dropout run on N ranks draws exactly what one
  process draws, and equals it.

`attach` wraps the trainable modules in DistributedDataParallel (gradient all-reduce in buckets
during backward; find_unused_parameters because the text tower is frozen for the first epochs
and an objective with no kept sentence leaves its layers without a gradient: DDP then leaves
those gradients None on every rank, which AdamW skips, as one process does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from vdi_cli.distributed import Session, gather_rows, shard_range

FAULT_ENV = "VDI_FAULT_DDP"  # "RANK:STEP:raise|kill": fault injection for the tests only


class ShardedTexts:
    """`encode_texts` / `encode_unique` of a GroundingModel, each rank encoding its share."""

    def __init__(self, model: Any, session: Session) -> None:
        self.model, self.session = model, session

    def encode_texts(self, texts: Sequence[str]) -> Any:
        texts = list(texts)
        s = self.session
        if not texts:
            return self.model.encode_texts(texts)
        sizes = [b - a for a, b in (shard_range(len(texts), s.world, r) for r in range(s.world))]
        a, b = shard_range(len(texts), s.world, s.rank)
        if b > a:
            local = self.model.encode_texts(texts[a:b])
        else:  # fewer sentences than ranks: same dtype and graph, no rows
            local = self.model.encode_texts(texts[:1])[:0]
        return gather_rows(local, sizes, s)

    def encode_unique(self, texts: Sequence[str], grad: bool = True) -> Any:
        import torch

        index: dict[str, int] = {}
        rows = [index.setdefault(t, len(index)) for t in texts]
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            feats = self.encode_texts(list(index))
        return feats[torch.tensor(rows, device=feats.device)]


def _fault(rank: int, step: int) -> None:
    """The test-only fault injection: rank RANK raises, or kills itself, at step STEP."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    want_rank, want_step, mode = spec.split(":")
    if int(want_rank) == rank and int(want_step) == step:
        if mode == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        from vdi_cli.errors import VdiError

        raise VdiError(f"injected fault on rank {rank} at step {step}",
                       hint=f"unset {FAULT_ENV} (a fault injection for the tests)")


def attach(trainer: Any, session: Session) -> None:
    """Make `trainer` a DDP rank: text encoding sharded, the loss computed through a
    DistributedDataParallel module over the head, the objectives and the trainable text
    tensors."""
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    class Step(nn.Module):
        """What DDP wraps: every trained tensor; forward is the trainer's loss."""

        def __init__(self) -> None:
            super().__init__()
            self.head = trainer.model.head
            self.objectives = nn.ModuleDict(trainer.objectives)
            self.text = nn.ParameterList(trainer.text_params)
            self.steps = 0

        def forward(self, *args: Any) -> Any:
            self.steps += 1
            _fault(session.rank, self.steps)
            return trainer._losses(*args)

    trainer.texts = ShardedTexts(trainer.model, session)
    frozen = [p for p in trainer.text_params if not p.requires_grad]
    for p in frozen:  # DDP registers only tensors that require grad when it is built
        p.requires_grad_(True)
    cuda = session.device.startswith("cuda")
    ddp = DistributedDataParallel(
        Step(), device_ids=[torch.device(session.device).index] if cuda else None,
        find_unused_parameters=True, **_no_buffer_sync())
    for p in frozen:
        p.requires_grad_(False)
    trainer.ddp = ddp
    trainer.loss_fn = ddp


def _no_buffer_sync() -> dict[str, bool]:
    """The head's BatchNorm statistics are computed identically on every rank (replicated on
    the global batch): no broadcast before each forward (the keyword changed in torch 2.13)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else \
        {"broadcast_buffers": False}


def evaluate_sharded(model: Any, samples: Sequence[Any], features_for: Callable[[str], Any],
                     session: Session, batch_size: int = 32) -> tuple[Any, list[Any]]:
    """Validation with each rank predicting a contiguous share of the videos; the predictions
    are gathered in order on every rank, so every rank computes the metrics of the whole set
    (the single-process ones) and early stopping agrees everywhere."""
    from vdi_cli.pipeline.evaluate import evaluate_windows
    from vdi_cli.pipeline.infer import evaluate_samples, predict
    from vdi_cli.types import Annotation

    if not session.active:
        return evaluate_samples(model, samples, features_for, batch_size=batch_size)
    a, b = shard_range(len(samples), session.world, session.rank)
    mine = predict(model, list(samples[a:b]), features_for, batch_size=batch_size, top_k=5)
    preds = [p for part in session.gather_objects(mine) for p in part]
    annotations = [Annotation(s.video_id, s.duration, q, m[0], m[1], qid) for s in samples
                   for q, m, qid in zip(s.queries, s.moments, s.query_ids, strict=True)]
    windows = [[(x, y) for x, y, _ in p] for p in preds]
    return evaluate_windows(annotations, windows), preds
