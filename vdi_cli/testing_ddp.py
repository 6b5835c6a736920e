"""A few real training steps on fixed synthetic batches, as one process or as a torchrun rank:
what the DDP equivalence tests and `benchmarks/bench_ddp.py` run.

    python -m vdi_cli.testing_ddp --out run.pt --steps 3 --batch 4
    python -m torch.distributed.run --standalone --nproc-per-node 2 \\
        -m vdi_cli.testing_ddp --out run.pt --steps 3 --batch 4

Both draw the same batches (random frame and patch features, sentences from a small
vocabulary with their static / dynamic forms; `--batch` is the global batch) and run `Trainer`
on the tiny open_clip model (or `--backbone open_clip:ViT-B-32`: random weights, no download),
with the VDI objectives on (dropout included) unless `--no-objectives`. Rank 0 saves the loss
terms and the (clipped) gradients of every step, the final trained tensors and the step times.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

WORDS = (["person", "dog", "red square", "blue circle", "woman", "car"],
         ["opens the door", "moves left", "jumps", "turns around", "sits down", "grows"])


def make_batches(count: int, batch: int, dim: int, patch_count: int, seed: int) -> list[Any]:
    """`count` global batches of `batch` videos (4..9 frames each, 1..3 sentences each)."""
    import torch

    from vdi_cli.pipeline.train_data import Batch

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        lengths = torch.randint(4, 10, (batch,), generator=g).tolist()
        t = max(lengths)
        frames = torch.zeros(batch, t, dim)
        patches = torch.zeros(batch, t, patch_count, dim)
        mask = torch.zeros(batch, t, dtype=torch.bool)
        times = torch.zeros(batch, t)
        queries, static, dynamic, vidx, moments = [], [], [], [], []
        durations = []
        for i, n in enumerate(lengths):
            frames[i, :n] = torch.randn(n, dim, generator=g)
            patches[i, :n] = torch.randn(n, patch_count, dim, generator=g)
            mask[i, :n] = True
            times[i, :n] = torch.arange(n, dtype=torch.float32) + 0.5
            durations.append(float(n))
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
                s = WORDS[0][int(torch.randint(0, len(WORDS[0]), (1,), generator=g))]
                d = WORDS[1][int(torch.randint(0, len(WORDS[1]), (1,), generator=g))]
                queries.append(f"a {s} {d}")
                static.append(f"a {s}")
                dynamic.append(d)
                vidx.append(i)
                a = float(torch.rand(1, generator=g)) * n * 0.6
                moments.append((a, min(float(n), a + 1.0 + float(torch.rand(1, generator=g)) * 3)))
        out.append(Batch([f"v{i}" for i in range(batch)], frames, mask, times, patches,
                         torch.tensor(durations), queries, static, dynamic,
                         torch.tensor(vidx, dtype=torch.long),
                         torch.tensor(moments, dtype=torch.float32),
                         [str(q) for q in range(len(queries))]))
    return out


def named_trained(trainer: Any) -> dict[str, Any]:
    """Every trained tensor by checkpoint name (head., text., objective.ID.)."""
    out = {f"head.{n}": p for n, p in trainer.model.head.named_parameters()}
    trainable = {id(p) for p in trainer.text_params}
    out.update({f"text.{n}": p for n, p in trainer.model.backbone.named_text_parameters()
                if id(p) in trainable})
    for oid, m in trainer.objectives.items():
        out.update({f"objective.{oid}.{n}": p for n, p in m.named_parameters()})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="global batch (videos)")
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--no-objectives", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--freeze-text-epochs", type=int, default=0)
    parser.add_argument("--no-amp", action="store_true", help="float32 on cuda too")
    args = parser.parse_args(argv)

    import torch

    from vdi_cli.backbones import load_backbone
    from vdi_cli.distributed import start
    from vdi_cli.pipeline.train import Trainer
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_ddp import attach
    from vdi_cli.testing import TINY_HEAD, register_tiny_open_clip

    session = start(args.device)
    backbone_id = args.backbone
    if backbone_id == "tiny":
        backbone_id = f"open_clip:{register_tiny_open_clip()}"
    backbone = load_backbone(backbone_id, device=session.device)
    grid = backbone.patch_grid
    config = TrainConfig(dataset="mmn-json", annotations="-", video_dir="-",
                         backbone=backbone_id, head_options=TINY_HEAD, lr=args.lr,
                         freeze_text_epochs=args.freeze_text_epochs, epochs=2,
                         objectives=[] if args.no_objectives else
                         ["visual-context", "spatial-dynamic"], device=session.device,
                         amp=not args.no_amp)
    trainer = Trainer(config, backbone, patch_count=int(grid[0] * grid[1]))
    if session.active:
        attach(trainer, session)
    batches = make_batches(args.steps, args.batch, backbone.embed_dim,
                           int(grid[0] * grid[1]), seed=11)
    losses, times, grads = [], [], []
    for step, batch in enumerate(batches, start=1):
        session.barrier()
        began = time.perf_counter()
        terms = trainer.step(batch, epoch=1 if step == 1 else 2)
        if session.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
        losses.append(terms)
        grads.append({k: p.grad.detach().cpu().clone()
                      for k, p in named_trained(trainer).items() if p.grad is not None})
    allreduce_s = None
    if session.active:  # what DDP's gradient all-reduce alone costs: every trained tensor once
        import torch.distributed as dist

        flat = torch.zeros(sum(p.numel() for p in named_trained(trainer).values()),
                           device=session.device)
        spent = []
        for _ in range(3):
            session.barrier()
            began = time.perf_counter()
            dist.all_reduce(flat)
            if session.device.startswith("cuda"):
                torch.cuda.synchronize()
            spent.append(time.perf_counter() - began)
        allreduce_s = sorted(spent)[1]
    if session.is_main:
        torch.save({"losses": losses, "grads": grads, "step_s": times, "world": session.world,
                    "threads": torch.get_num_threads(),
                    "params": {k: p.detach().cpu().clone()
                               for k, p in named_trained(trainer).items()}}, args.out)
        print(json.dumps({"world": session.world, "step_s": times, "allreduce_s": allreduce_s,
                          "trained": sum(p.numel() for p in named_trained(trainer).values())}))
    session.close()


if __name__ == "__main__":
    main()
