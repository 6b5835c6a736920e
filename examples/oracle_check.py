"""Oracle and input checks: which input keeps the MMN head from grounding the synthetic world?

Trains the experiment's MMN head (hidden 64, 4 conv layers, its losses, decoding, NMS and
metrics) in memory, with each side of its input chosen separately, and reports R@1 per action
class against each class's own prior:

--video oracle   ground-truth "object states": per frame (2 fps) small noise plus, for every
                 event running then, fixed random vectors of the acting object's colour, shape
                 and action class (what a perfect backbone would say).
--video clip     the real `tiny-shapes` frame features from the feature cache of a VDI_HOME
                 (extracted there first if missing); `--grid K` appends a KxK grid of pooled
                 patch features to each frame.
--text oracle    the same random vectors for the query's colour, shape and action (a perfect
                 text encoder).
--text bow       a bag of words trained with the head (mean of learned word vectors).
--text clip      the frozen `tiny-shapes` text tower; `clip-standardised` also z-scores it
                 with the training queries' statistics.
--text tower     the `tiny-shapes` text tower fine-tuned with the head (what `vdi train` does),
                 at --text-lr x the head's lr; --text-trainable token-embeddings trains only
                 its word vectors, --text-pool mean averages its token states (as vdi train's
                 -o text_trainable / -o text_pool).

    .venv/bin/python examples/oracle_check.py --data experiment-out/shapes --epochs 20
    .venv/bin/python examples/oracle_check.py --data experiment-out/shapes --video clip \\
        --home experiment-out/home --temporal-delta 5 --pool-hidden 256 --text bow
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEXTS = ("oracle", "bow", "clip", "clip-standardised", "tower")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a generated synthetic-shapes folder")
    parser.add_argument("--video", choices=("oracle", "clip"), default="oracle")
    parser.add_argument("--text", choices=TEXTS, default="oracle")
    parser.add_argument("--home", help="VDI_HOME holding (or to hold) the feature cache "
                        "(--video clip / --text clip*|tower); default: the usual one")
    parser.add_argument("--grid", type=int, default=0, help="--video clip: KxK pooled patches")
    parser.add_argument("--temporal-delta", type=float, default=0.0)
    parser.add_argument("--span-delta", type=float, default=0.0,
                        help="head's span_delta: s * (clip j - clip i) beside cell (i, j)")
    parser.add_argument("--pool-hidden", type=int, default=0, help="pool_linear width; 0 = off")
    parser.add_argument("--text-standardise", action="store_true",
                        help="BatchNorm (no affine) on the sentence vectors before the head")
    parser.add_argument("--text-lr", type=float, default=1.0, help="--text tower: lr ratio")
    parser.add_argument("--text-pool", choices=("eot", "mean"), default="eot",
                        help="--text clip*|tower: sentence vector (vdi train's -o text_pool)")
    parser.add_argument("--text-trainable", choices=("all", "token-embeddings"), default="all",
                        help="--text tower: what trains (as vdi train's -o text_trainable)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--milestones", default="",
                        help="epochs after which the lr falls x0.1, e.g. 8,13 (vdi train's "
                        "-o milestones; the charades preset's are 8,13); default: none")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    return parser.parse_args(argv)


class Words:
    """Fixed random vectors per word / action class: the oracle's meaning of a query."""

    def __init__(self, dim: int, seed: int) -> None:
        import torch

        self.dim, self.gen, self.vectors = dim, torch.Generator().manual_seed(seed), {}

    def vec(self, word: str):
        import torch

        if word not in self.vectors:
            self.vectors[word] = torch.randn(self.dim, generator=self.gen)
        return self.vectors[word]

    def meaning(self, ann):
        from vdi_plugins.synthetic.world import COLOURS, SHAPES

        words = [w for w in ann.query.lower().split() if w in COLOURS or w in SHAPES]
        return sum((self.vec(w) for w in words), self.vec("action:" + ann.extra["actions"]))


def oracle_frames(samples, anns, words: Words, fps: float, noise: float, gen) -> dict:
    import torch

    by_video: dict[str, list] = {}
    for a in anns:
        by_video.setdefault(a.video_id, []).append(a)
    out = {}
    for s in samples:
        t = torch.arange(0, s.duration, 1.0 / fps)
        f = noise * torch.randn(len(t), words.dim, generator=gen)
        for a in by_video[s.video_id]:
            f[(t >= a.start) & (t <= a.end)] += words.meaning(a)
        out[s.video_id] = f
    return out


def clip_frames(source, video_ids, grid: int) -> dict:
    """Global features, with a KxK grid of average-pooled patch features appended if grid > 0
    (each cell L2-normalised like the global feature is in the head)."""
    import torch
    import torch.nn.functional as F

    out = {}
    for vid in video_ids:
        f = source(vid)
        g = torch.as_tensor(f.global_feats).float()
        if grid:
            p = torch.as_tensor(f.patches).float()
            side = int(p.shape[1] ** 0.5)
            cells = F.adaptive_avg_pool2d(p.reshape(len(p), side, side, -1).permute(0, 3, 1, 2),
                                          grid)
            g = torch.cat([F.normalize(g, dim=-1), F.normalize(cells, dim=1).flatten(1)], 1)
        out[vid] = g
    return out


class TextSide:
    """Sentence vectors for a list of annotations, and the parameters to train with the head."""

    def __init__(self, kind: str, splits: dict, words: Words, backbone, standardise: bool,
                 pool: str = "eot", trainable: str = "all"):
        import torch

        self.kind, self.words, self.backbone, self.pool = kind, words, backbone, pool
        self.params: list = []
        self.table: dict = {}
        if kind == "bow":
            vocab = sorted({w for anns in splits.values() for a in anns
                            for w in a.query.lower().split()})
            self.index = {w: i for i, w in enumerate(vocab)}
            self.bag = torch.nn.EmbeddingBag(len(vocab), words.dim, mode="mean")
            self.params = list(self.bag.parameters())
        elif kind == "tower":
            from vdi_cli.pipeline.train import select_text_parameters

            named = backbone.named_text_parameters()
            self.params = select_text_parameters(named, None, trainable)
            chosen = {id(p) for p in self.params}
            for _, p in named:
                p.requires_grad_(id(p) in chosen)
        elif kind.startswith("clip"):
            texts = sorted({a.query for anns in splits.values() for a in anns})
            feats = torch.cat([self._encode(texts[i:i + 256]) for i in range(0, len(texts), 256)])
            if kind == "clip-standardised":
                row = {t: i for i, t in enumerate(texts)}
                ref = feats[sorted({row[a.query] for a in splits["train"]})]
                feats = (feats - ref.mean(0)) / ref.std(0)
            self.table = dict(zip(texts, feats, strict=True))
        self.norm = torch.nn.BatchNorm1d(words.dim, affine=False) if standardise else None

    def _encode(self, texts: list[str]):
        import torch

        from vdi_cli.model import trim_tokens

        with torch.set_grad_enabled(self.kind == "tower" and torch.is_grad_enabled()):
            tokens = trim_tokens(self.backbone.tokenize(texts))
            return self.backbone.encode_text(tokens, pool=self.pool).float()

    def __call__(self, anns: list):
        import torch

        if self.kind == "oracle":
            out = torch.stack([self.words.meaning(a) for a in anns])
        elif self.kind == "bow":  # one EmbeddingBag call: flat word ids + each query's offset
            ids = [[self.index[w] for w in a.query.lower().split()] for a in anns]
            offsets = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)
            out = self.bag(torch.tensor([i for x in ids for i in x]), offsets)
        elif self.kind == "tower":
            out = self._encode([a.query for a in anns])
        else:
            out = torch.stack([self.table[a.query] for a in anns])
        return self.norm(out) if self.norm is not None else out

    def train(self, mode: bool) -> None:
        if self.norm is not None:
            self.norm.train(mode)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.home:
        os.environ["VDI_HOME"] = str(Path(args.home).resolve())
    import torch

    from vdi_cli.baselines import grouped_scores, prior_scores
    from vdi_cli.datasets import load_dataset
    from vdi_cli.pipeline.evaluate import evaluate_windows
    from vdi_cli.pipeline.train_data import group_by_video
    from vdi_cli.registry import get_component

    torch.manual_seed(args.seed)
    data = Path(args.data)
    splits = {s: load_dataset("synthetic-shapes", data / f"{s}.json").annotations
              for s in ("train", "test_iid", "test_novel_word")}
    samples = {s: group_by_video(a) for s, a in splits.items()}
    index: dict[str, dict[str, list]] = {s: {} for s in splits}
    for s, anns in splits.items():
        for a in anns:
            index[s].setdefault(a.video_id, []).append(a)
    words = Words(128, args.seed + 1)
    backbone = None
    if args.video == "clip" or args.text in ("clip", "clip-standardised", "tower"):
        from vdi_cli.backbones import load_backbone

        backbone = load_backbone("tiny-shapes")
    if args.video == "clip":
        from vdi_cli.pipeline.feature_source import FeatureSource
        from vdi_cli.store.db import open_db
        from vdi_cli.video import Sampling

        source = FeatureSource(open_db(), backbone, Sampling(fps=args.fps).to_dict(),
                               patches=args.grid > 0)
        ids = sorted({a.video_id for anns in splits.values() for a in anns})
        source.ensure(ids, data / "videos", show_progress=False)
        frames_of = clip_frames(source, ids, args.grid)
    else:
        gen = torch.Generator().manual_seed(args.seed + 2)
        frames_of = {}
        for s in splits:
            frames_of.update(oracle_frames(samples[s], splits[s], words, args.fps, args.noise,
                                           gen))
    dim = next(iter(frames_of.values())).shape[1]
    text = TextSide(args.text, splits, words, backbone, args.text_standardise, args.text_pool,
                    args.text_trainable)

    head_cfg = {"hidden_size": 64, "conv_layers": 4, "temporal_delta": args.temporal_delta,
                "span_delta": args.span_delta}
    if args.pool_hidden:
        head_cfg.update(pool_linear=True, pool_hidden=args.pool_hidden)
    component = get_component("head", "mmn")
    head = component.build(component.make_config(head_cfg), video_dim=dim, text_dim=words.dim)
    groups = [{"params": list(head.parameters())}]
    if text.params:
        lr = args.lr * (args.text_lr if args.text == "tower" else 1.0)
        groups.append({"params": text.params, "lr": lr})
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.99), weight_decay=1e-5)
    milestones = [int(m) for m in args.milestones.split(",") if m.strip()]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)

    def batch(split, group):
        f = [frames_of[s.video_id] for s in group]
        frames = torch.zeros(len(group), max(len(x) for x in f), dim)
        mask = torch.zeros(frames.shape[:2], dtype=torch.bool)
        for i, x in enumerate(f):
            frames[i, : len(x)], mask[i, : len(x)] = x, True
        anns = [a for s in group for a in index[split][s.video_id]]
        vidx = torch.tensor([i for i, s in enumerate(group) for _ in index[split][s.video_id]])
        moments = torch.tensor([[a.start, a.end] for a in anns])
        durations = torch.tensor([s.duration for s in group])
        return frames, mask, text(anns), vidx, moments, durations

    def evaluate(split):
        head.eval()
        text.train(False)
        windows = []
        with torch.no_grad():
            for i in range(0, len(samples[split]), 32):
                group = samples[split][i : i + 32]
                frames, mask, sent, vidx, _, durations = batch(split, group)
                out = head(frames, mask, sent, vidx)
                windows += [[[m.start, m.end] for m in ms]
                            for ms in head.decode(out, durations, top_k=5)]
        anns = [a for s in samples[split] for a in index[split][s.video_id]]
        metrics = evaluate_windows(anns, windows).percent()
        priors = {p.group: p.recall for p in prior_scores(anns, splits["train"], "actions")}
        return metrics, {g.group: (g.recall, priors[g.group], g.queries)
                         for g in grouped_scores(anns, windows, "actions")}

    start = time.perf_counter()
    train = samples["train"]
    for epoch in range(1, args.epochs + 1):
        head.train()
        text.train(True)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        for i in range(0, len(train), args.batch_size):
            group = [train[j] for j in order[i : i + args.batch_size].tolist()]
            frames, mask, sent, vidx, moments, durations = batch("train", group)
            out = head(frames, mask, sent, vidx)
            loss = head.loss(out, {"moments": moments, "durations": durations}, epoch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 5.0)
            optimizer.step()
            total += float(loss.detach())
        scheduler.step()
        metrics, _ = evaluate("test_iid")
        print(f"epoch {epoch}/{args.epochs}  loss {total / (len(train) / args.batch_size):.4f}"
              f"  test_iid R@1,IoU=0.5 {metrics['R@1,IoU=0.5']:.2f}  mIoU {metrics['mIoU']:.2f}"
              f"  ({time.perf_counter() - start:.0f}s)", file=sys.stderr, flush=True)
    results = {}
    for split in ("test_iid", "test_novel_word"):
        metrics, per_action = evaluate(split)
        results[split] = {"metrics": metrics, "per_action": per_action}
        print(f"\n{split}: R@1,IoU=0.5 {metrics['R@1,IoU=0.5']:.2f}  R@1,IoU=0.7 "
              f"{metrics['R@1,IoU=0.7']:.2f}  mIoU {metrics['mIoU']:.2f}")
        print("action     queries  R@1,IoU=0.5  prior")
        for g, (r, p, n) in per_action.items():
            print(f"{g:<10} {n:>7}  {r:>11.2f}  {p:>5.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"options": vars(args), **results}, indent=1))
    return results


if __name__ == "__main__":
    main()
