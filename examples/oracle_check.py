"""Oracle check: can the MMN head localise the synthetic world's events when it is told exactly
what happens? If not, no backbone or text encoder can help; if so, what the real pipeline lacks
is in the features (or the text).

The head gets ground-truth "object states" instead of CLIP features: each frame (2 fps) is small
noise plus, for every annotated event running at that time, the sum of fixed random vectors of
the acting object's words (colour, shape) and of the action class. The sentence vector is the
same sum for the query's object and action (a perfect text encoder). Everything else is the
experiment's head (MMN, hidden 64, 4 conv layers, its losses, decoding and NMS) and metrics, with
R@1 per action against each class's prior.

    .venv/bin/python examples/oracle_check.py --data experiment-out/shapes --epochs 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a generated synthetic-shapes folder")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    args = parser.parse_args()

    import torch

    from vdi_cli.baselines import grouped_scores, prior_scores
    from vdi_cli.datasets import load_dataset
    from vdi_cli.pipeline.evaluate import evaluate_windows
    from vdi_cli.pipeline.train_data import group_by_video
    from vdi_cli.registry import get_component
    from vdi_plugins.synthetic.world import COLOURS, SHAPES

    torch.manual_seed(args.seed)
    dim = 128
    gen = torch.Generator().manual_seed(args.seed + 1)
    vectors: dict[str, torch.Tensor] = {}

    def vec(word: str) -> torch.Tensor:
        if word not in vectors:
            vectors[word] = torch.randn(dim, generator=gen)
        return vectors[word]

    def meaning(ann) -> torch.Tensor:
        words = [w for w in ann.query.lower().split() if w in COLOURS or w in SHAPES]
        return sum((vec(w) for w in words), vec("action:" + ann.extra["actions"]))

    data = Path(args.data)
    splits = {s: load_dataset("synthetic-shapes", data / f"{s}.json").annotations
              for s in ("train", "test_iid", "test_novel_word")}

    def features(samples, anns):
        by_video: dict[str, list] = {}
        for a in anns:
            by_video.setdefault(a.video_id, []).append(a)
        out = {}
        for s in samples:
            t = torch.arange(0, s.duration, 1.0 / args.fps)
            f = args.noise * torch.randn(len(t), dim, generator=gen)
            for a in by_video[s.video_id]:
                f[(t >= a.start) & (t <= a.end)] += meaning(a)
            out[s.video_id] = f
        return out

    head_cfg = {"hidden_size": 64, "conv_layers": 4}
    component = get_component("head", "mmn")
    head = component.build(component.make_config(head_cfg), video_dim=dim, text_dim=dim)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, betas=(0.9, 0.99),
                                  weight_decay=1e-5)
    samples = {s: group_by_video(a) for s, a in splits.items()}
    feats = {s: features(samples[s], splits[s]) for s in samples}

    def batch(split, group):
        f = [feats[split][s.video_id] for s in group]
        t_max = max(len(x) for x in f)
        frames = torch.zeros(len(group), t_max, dim)
        mask = torch.zeros(len(group), t_max, dtype=torch.bool)
        for i, x in enumerate(f):
            frames[i, : len(x)], mask[i, : len(x)] = x, True
        anns = [a for s in group for a in by_sample(split, s)]
        sent = torch.stack([meaning(a) for a in anns])
        vidx = torch.tensor([i for i, s in enumerate(group) for _ in s.queries])
        moments = torch.tensor([[a.start, a.end] for a in anns])
        durations = torch.tensor([s.duration for s in group])
        return frames, mask, sent, vidx, moments, durations

    index = {s: {} for s in splits}
    for s, anns in splits.items():
        for a in anns:
            index[s].setdefault(a.video_id, []).append(a)

    def by_sample(split, sample):
        return index[split][sample.video_id]

    def evaluate(split):
        head.eval()
        windows = []
        with torch.no_grad():
            for i in range(0, len(samples[split]), 32):
                group = samples[split][i : i + 32]
                frames, mask, sent, vidx, _, durations = batch(split, group)
                out = head(frames, mask, sent, vidx)
                windows += [[[m.start, m.end] for m in ms]
                            for ms in head.decode(out, durations, top_k=5)]
        anns = [a for s in samples[split] for a in by_sample(split, s)]
        metrics = evaluate_windows(anns, windows).percent()
        groups = grouped_scores(anns, windows, "actions")
        priors = {p.group: p.recall for p in prior_scores(anns, splits["train"], "actions")}
        return metrics, {g.group: (g.recall, priors[g.group], g.queries) for g in groups}

    start = time.perf_counter()
    train = samples["train"]
    for epoch in range(1, args.epochs + 1):
        head.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        for i in range(0, len(train), args.batch_size):
            group = [train[j] for j in order[i : i + args.batch_size].tolist()]
            frames, mask, sent, vidx, moments, durations = batch("train", group)
            out = head(frames, mask, sent, vidx)
            loss = head.loss(out, {"moments": moments, "durations": durations}, epoch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
            optimizer.step()
            total += float(loss.detach())
        metrics, _ = evaluate("test_iid")
        print(f"epoch {epoch}/{args.epochs}  loss {total / (len(train) / args.batch_size):.4f}"
              f"  test_iid R@1,IoU=0.5 {metrics['R@1,IoU=0.5']:.2f}  mIoU {metrics['mIoU']:.2f}"
              f"  ({time.perf_counter() - start:.0f}s)", file=sys.stderr, flush=True)
    results = {}
    for split in ("test_iid", "test_novel_word"):
        metrics, groups = evaluate(split)
        results[split] = {"metrics": metrics, "per_action": groups}
        print(f"\n{split}: R@1,IoU=0.5 {metrics['R@1,IoU=0.5']:.2f}  R@1,IoU=0.7 "
              f"{metrics['R@1,IoU=0.7']:.2f}  mIoU {metrics['mIoU']:.2f}")
        print("action     queries  R@1,IoU=0.5  prior")
        for g, (r, p, n) in groups.items():
            print(f"{g:<10} {n:>7}  {r:>11.2f}  {p:>5.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"options": vars(args), **results}, indent=1))


if __name__ == "__main__":
    main()
