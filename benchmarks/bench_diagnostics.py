"""What the per-term VDI diagnostics cost a training step: a VDI step with every step diagnosed
(`diagnostics_every=1`: the objectives' figures plus one extra backward per term and one for the
head into the text tower) against the same step without (`diagnostics_every=0`), interleaved,
medians compared, so machine noise hits both. The cost at `diagnostics_every=k` is the printed
extra share divided by k (the default k = 20).

Real pieces: the shipped `tiny-shapes-v2` backbone's text tower (or the tiny test model), the
real `visual-context` / `spatial-dynamic` modules and MMN head, at the synthetic experiment's
batch (8 videos, their sentences; random frame and patch features: the visual tower is frozen
and cached, so it is not part of a step).

    .venv/bin/python benchmarks/bench_diagnostics.py [--repeats 7] [--backbone tiny-shapes-v2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vdi_cli.pipeline.train import Trainer
from vdi_cli.pipeline.train_config import TrainConfig
from vdi_cli.pipeline.train_data import VideoFeatures, collate
from vdi_cli.pipeline.train_data import VideoSample as Sample
from vdi_cli.types import ParsedQuery

WORDS = [("the red square", "moves left"), ("a blue disc", "grows"),
         ("the green triangle", "floats up"), ("a yellow star", "spins")]


def samples(videos: int, per_video: int) -> list[Sample]:
    out = []
    for i in range(videos):
        pqs = [ParsedQuery(f"{s} {d}", (), (), s, d, (), ())
               for s, d in (WORDS[(i + j) % len(WORDS)] for j in range(per_video))]
        out.append(Sample(f"v{i}", 30.0, [p.text for p in pqs], pqs,
                          [(2.0 * j, 2.0 * j + 8.0) for j in range(per_video)],
                          [str(j) for j in range(per_video)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--backbone", default="tiny-shapes-v2")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--sentences", type=int, default=4, help="per video")
    ap.add_argument("--frames", type=int, default=40)
    args = ap.parse_args()
    from vdi_cli.backbones import load_backbone
    from vdi_cli.testing import register_tiny_open_clip

    register_tiny_open_clip()
    backbone = load_backbone(args.backbone)
    dim, hw = backbone.embed_dim, backbone.patch_grid[0] * backbone.patch_grid[1]
    g = torch.Generator().manual_seed(0)
    batch_samples = samples(args.videos, args.sentences)
    feats = {s.video_id: VideoFeatures(torch.randn(args.frames, dim, generator=g),
                                       torch.randn(args.frames, hw, dim, generator=g),
                                       torch.arange(args.frames, dtype=torch.float32))
             for s in batch_samples}
    batch = collate(batch_samples, feats.__getitem__, need_patches=True)
    base = dict(dataset="x", annotations="x", video_dir="x", backbone=args.backbone, lr=1e-3,
                freeze_text_epochs=0, epochs=1, text_trainable="token-embeddings",
                head_options={"hidden_size": 64, "conv_layers": 4},
                objective_options={"visual-context": {"heads": 4},
                                   "spatial-dynamic": {"sequence_options": {"heads": 4}}})
    trainers = {"off": Trainer(TrainConfig(**base, diagnostics_every=0), backbone, hw),
                "every step": Trainer(TrainConfig(**base, diagnostics_every=1), backbone, hw)}
    for t in trainers.values():  # warm-up
        t.step(batch, 1)
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(args.repeats):
        for k, t in trainers.items():
            start = time.perf_counter()
            t.step(batch, 1)
            times[k].append(time.perf_counter() - start)
            if t.diagnostics is not None:
                t.diagnostics.finish(1)  # keep every step due (and the samples small)
    med = {k: statistics.median(v) for k, v in times.items()}
    extra = med["every step"] / med["off"] - 1
    print(f"backbone {args.backbone} (embed {dim}, {hw} patches), {args.videos} videos x "
          f"{args.sentences} sentences, {args.frames} frames, torch threads "
          f"{torch.get_num_threads()}, {args.repeats} interleaved repeats")
    print(f"  step without diagnostics    {med['off']:.3f} s")
    print(f"  step, every step diagnosed  {med['every step']:.3f} s  "
          f"(ratio {med['every step'] / med['off']:.2f}: +{100 * extra:.0f}%)")
    print(f"  at diagnostics_every=20 (default): +{5 * extra:.1f}% per step on average")


if __name__ == "__main__":
    main()
