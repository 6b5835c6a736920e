"""One VDI training step (MMN's full Charades head, batch of 48 videos) timed in fp32 and
with autocast (bfloat16 on cuda), and the Charades-STA epoch it projects to.

The text tower is ViT-B-32's (random weights: timing only); frame and patch features are
random tensors of the cached shapes (the visual tower is frozen and cached, so it is not part
of a step); sentences are Charades-STA training queries grouped by video when ../shared/data
has them, else synthetic ones (see bench_train.py). The projection: 12,404 queries over 5,336
videos, so ceil(5336 / 48) = 112 steps of 48 videos per epoch (data loading excluded).

    .venv/bin/python benchmarks/gpu_step_time.py --device cuda [--repeats 10]
    .venv/bin/python benchmarks/gpu_step_time.py --device cpu --quick   # smoke test
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHARADES_VIDEOS = 5336  # Charades-STA train: 12,404 queries over 5,336 videos


def step_times(trainer, batch, repeats: int, sync) -> list[float]:
    trainer.step(batch, 1)  # warm-up (cuDNN autotuning, allocator)
    sync()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.step(batch, 1)
        sync()
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--videos", type=int, default=48, help="videos per batch (MMN: 48)")
    ap.add_argument("--frames", type=int, default=32, help="feature frames per video")
    ap.add_argument("--tower", default="open_clip:ViT-B-32")
    ap.add_argument("--hidden", type=int, default=512, help="MMN proposal-conv width (512)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny tower, 4 videos, hidden 32, 1 repeat (a smoke test)")
    args = ap.parse_args(argv)
    if args.quick:
        args.tower, args.videos, args.hidden, args.repeats = "open_clip:vdi-tiny", 4, 32, 1
    import torch
    from bench_train import annotations

    from vdi_cli.backbones import load_backbone
    from vdi_cli.pipeline.parse import parse_texts
    from vdi_cli.pipeline.train import Trainer
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_data import VideoFeatures, collate, group_by_video
    from vdi_cli.testing import register_tiny_open_clip

    register_tiny_open_clip()
    anns, source = annotations(args.videos)
    parsed = {q.text: q for q in parse_texts(sorted({a.query for a in anns})).queries}
    samples = group_by_video(anns, parsed)
    backbone = load_backbone(args.tower, device=args.device)
    dim, hw = backbone.embed_dim, backbone.patch_grid[0] * backbone.patch_grid[1]
    g = torch.Generator().manual_seed(0)
    feats = {s.video_id: VideoFeatures(torch.randn(args.frames, dim, generator=g),
                                       torch.randn(args.frames, hw, dim, generator=g),
                                       torch.arange(args.frames, dtype=torch.float32))
             for s in samples}
    batch = collate(samples, feats.__getitem__, need_patches=True)
    cuda = str(backbone.device).startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f"VDI step: {len(samples)} videos, {len(anns)} sentences ({source}), text tower "
          f"{args.tower} ({backbone.weights_id}; random weights are fine for timing), MMN "
          f"charades head hidden {args.hidden}, {args.frames} frames, device {backbone.device}")
    steps = math.ceil(CHARADES_VIDEOS / max(1, args.videos))
    for label, amp in (("fp32", False), ("autocast bf16" if cuda else "autocast (no-op on "
                                          "cpu)", True)):
        config = TrainConfig(dataset="x", annotations="x", video_dir="x", backbone=args.tower,
                             freeze_text_epochs=0, epochs=1, device=args.device, amp=amp,
                             head_options={"hidden_size": args.hidden})
        trainer = Trainer(config, backbone, hw)
        times = step_times(trainer, batch, args.repeats, sync)
        med = statistics.median(times)
        print(f"step {label}: {med * 1000:.1f} ms (median of {len(times)}, range "
              f"{min(times) * 1000:.1f}-{max(times) * 1000:.1f} ms); a Charades-STA epoch "
              f"({steps} steps of {args.videos} videos) ~ {med * steps:.1f} s")
    return 0


def cli() -> int:
    """`main`, with an expected error (no CUDA device, ...) as `Error:` / `Hint:` lines."""
    from vdi_cli.errors import VdiError

    try:
        return main()
    except VdiError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
