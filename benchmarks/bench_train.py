"""Training step time: the MMN+CLIP baseline vs VDI (L_vc + L_sd), batch of 48 videos, N = 16.

Text towers: ViT-B-32's (random weights, the paper's size) and the tiny test model. Frame and
patch features are random (the visual tower is frozen and cached, so it is not part of a step);
sentences are Charades-STA training queries (../shared/data) grouped by video, or synthetic ones.
Baseline and VDI steps are interleaved and the medians compared, so machine noise hits both.

    .venv/bin/python benchmarks/bench_train.py [--repeats 3] [--towers b32,tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from vdi_cli.pipeline.train import Trainer
from vdi_cli.pipeline.train_config import TrainConfig
from vdi_cli.pipeline.train_data import VideoFeatures, collate, group_by_video

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "charades_sta" / "charades_sta_train.txt"


def annotations(videos: int):
    from vdi_cli.types import Annotation

    if DATA.exists():
        from vdi_cli.datasets import load_dataset

        anns, seen = [], []
        for a in load_dataset("charades-sta", DATA).annotations:
            if a.video_id not in seen:
                if len(seen) == videos:
                    continue
                seen.append(a.video_id)
            anns.append(a)
        return anns, "Charades-STA train queries"
    words = ["person opens the door", "a man walks to the window", "someone sits on a chair"]
    return [Annotation(f"v{i}", 30.0, words[(i + j) % 3], 2.0 * j, 2.0 * j + 8.0, f"{i}:{j}")
            for i in range(videos) for j in range(2)], "synthetic queries"


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--towers", default="b32,tiny")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--only-totals", action="store_true",
                    help="baseline and full VDI only, no warm-up (for the slow full-size head)")
    ap.add_argument("--hidden", type=int, default=64,
                    help="MMN proposal-conv width (MMN: 512; its 8 conv layers on a 16x16 map "
                    "for 48 videos take over a minute per forward on 2 CPU cores)")
    args = ap.parse_args()
    from vdi_cli.backbones import load_backbone
    from vdi_cli.pipeline.parse import parse_texts
    from vdi_cli.testing import register_tiny_open_clip

    register_tiny_open_clip()
    anns, source = annotations(48)
    parsed = {q.text: q for q in parse_texts(sorted({a.query for a in anns})).queries}
    samples = group_by_video(anns, parsed)
    print(f"batch: {len(samples)} videos, {len(anns)} sentences ({source}), "
          f"{args.frames} frames per video, torch threads {torch.get_num_threads()}")
    towers = {"b32": "open_clip:ViT-B-32", "tiny": "open_clip:vdi-tiny"}
    for name in args.towers.split(","):
        bench_tower(name, towers[name], samples, args, load_backbone)


def bench_tower(name, tower, samples, args, load_backbone) -> None:  # noqa: ANN001
    backbone = load_backbone(tower)
    dim, hw = backbone.embed_dim, backbone.patch_grid[0] * backbone.patch_grid[1]
    g = torch.Generator().manual_seed(0)
    feats = {s.video_id: VideoFeatures(torch.randn(args.frames, dim, generator=g),
                                       torch.randn(args.frames, hw, dim, generator=g),
                                       torch.arange(args.frames, dtype=torch.float32))
             for s in samples}
    base = dict(dataset="x", annotations="x", video_dir="x", backbone=tower,
                freeze_text_epochs=0, epochs=1, head_options={"hidden_size": args.hidden})
    trainers = {
        "baseline": Trainer(TrainConfig(**base, objectives=[]), backbone, hw),
        "vdi": Trainer(TrainConfig(**base), backbone, hw),
        "vdi (L_vc only)": Trainer(TrainConfig(**base, objectives=["visual-context"]),
                                   backbone, hw),
        "vdi (L_sd only)": Trainer(TrainConfig(**base, objectives=["spatial-dynamic"]),
                                   backbone, hw),
    }
    if args.only_totals:
        trainers = {k: trainers[k] for k in ("baseline", "vdi")}
    batch = collate(samples, feats.__getitem__, need_patches=True)
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for t in trainers.values() if not args.only_totals else ():  # warm-up
        t.step(batch, 1)
    for _ in range(args.repeats):
        for k, t in trainers.items():
            times[k].append(timed(lambda t=t: t.step(batch, 1)))
    # forward-only split of the VDI step (backward is shared and not separable)
    vdi = trainers["vdi"]
    model = vdi.model
    with torch.no_grad():
        text_q = statistics.median(
            timed(lambda: model.encode_texts(batch.queries)) for _ in range(args.repeats))
        text_vdi = statistics.median(
            timed(lambda: (model.encode_unique(batch.static, grad=False),
                           model.encode_unique(batch.dynamic)))
            for _ in range(args.repeats))
        sent = model.encode_texts(batch.queries)
        head = statistics.median(
            timed(lambda: model.head(batch.frames, batch.frame_mask, sent, batch.video_index))
            for _ in range(args.repeats))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n[{name}] text tower of {tower}, embed {dim}, {hw} patches, "
          f"MMN hidden {args.hidden}")
    for k, v in med.items():
        extra = "" if k == "baseline" else f"  (+{(v / med['baseline'] - 1) * 100:.0f}% " \
                                           "over baseline)"
        print(f"  step {k:18s} {v:7.3f} s{extra}")
    print(f"  forward only: text Q {text_q:.3f} s, text Qs+Qd {text_vdi:.3f} s, "
          f"head {head:.3f} s")


if __name__ == "__main__":
    main()
