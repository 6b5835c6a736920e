"""Evaluation and MMN-head speed, measured in one run (CPU; quote the printed figures).

1. Charades-STA test size: 3720 queries x 136 candidates (N=16), fusion + NMS + R@{1,5} + mIoU,
   ours (vectorised over queries) against a faithful per-query port of MMN's loop
   (`score2d_to_moments_scores`, `nms`, `iou(...)[:, None].expand(...) >= ...`), same numbers.
2. ActivityNet test size: 17031 queries x 1104 candidates (N=64); the reference loop on a subset,
   extrapolated.
3. The head's forward, per component, for a batch of videos at N=16 and N=64.

Run: .venv/bin/python benchmarks/bench_eval.py [--head-batch 48] [--anet-head-batch 4]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from vdi_cli.metrics import retrieval_metrics
from vdi_plugins.heads.cells import cell_mask, decode_cells, fuse_scores

ROOT = Path(__file__).resolve().parents[1]
CHARADES_CSV = ROOT.parent / "shared" / "data" / "charades_sta" / "Charades_v1_test.csv"


def synthetic(q, n, counts, rng, durations=None):
    """Model-like scores: a bump around a random moment plus noise, and its ground truth."""
    mask = cell_mask(n, counts)
    cells = np.argwhere(mask)
    d = durations if durations is not None else rng.uniform(20, 200, q).round(2)
    start = rng.uniform(0, 0.7, q) * d
    end = np.minimum(start + rng.uniform(0.1, 0.5, q) * d, d)
    s, e = cells[:, 0] / n, (cells[:, 1] + 1) / n  # cell windows as fractions of the video
    gs, ge = (start / d)[:, None], (end / d)[:, None]
    inter = np.clip(np.minimum(e, ge) - np.maximum(s, gs), 0, None)
    iou = inter / (np.maximum(e, ge) - np.minimum(s, gs))
    iou_score = (0.4 * iou + 0.6 * rng.random((q, len(cells)))).astype(np.float32)
    contrastive = (2 * rng.random((q, len(cells))) - 1).astype(np.float32)
    gt = np.stack([start, end], 1)
    return mask, contrastive, iou_score, d, gt


def ours(contrastive, iou_score, d, gt, n, counts, ious):
    scores = fuse_scores(contrastive, iou_score, 0.5)
    ranked = decode_cells(scores, d, n, counts, 0.5, top_k=5)
    return retrieval_metrics(ranked.windows, ranked.counts, gt, d, (1, 5), ious)


def reference(mask, contrastive, iou_score, d, gt, n, ious):
    """A faithful port of MMN's evaluation loop (torch, one query at a time)."""
    import torch

    def iou(candidates, g):
        start, end = candidates[:, 0], candidates[:, 1]
        s, e = g[0].float(), g[1].float()
        inter = end.min(e) - start.max(s)
        union = end.max(e) - start.min(s)
        return inter.clamp(min=0) / union

    def nms(moments, scores, thresh):
        scores, ranks = scores.sort(descending=True, stable=True)
        moments = moments[ranks]
        suppressed = ranks.zero_().bool()
        numel = suppressed.numel()
        for i in range(numel - 1):
            if suppressed[i]:
                continue
            m = iou(moments[i + 1:], moments[i]) > thresh
            suppressed[i + 1:][m] = True
        return moments[~suppressed]

    recall_metrics = torch.tensor((1, 5))
    iou_metrics = torch.tensor(ious)
    recall_x_iou = torch.zeros(2, len(ious))
    tmask = torch.from_numpy(mask)
    con2d = torch.zeros(n, n)
    iou2d = torch.zeros(n, n)
    top1 = []
    for q in range(len(d)):
        con2d[tmask] = torch.from_numpy(contrastive[q])
        iou2d[tmask] = torch.from_numpy(iou_score[q])
        score2d = torch.pow(con2d * 0.5 + 0.5, 0.5) * iou2d * tmask
        grids = score2d.nonzero()
        scores = score2d[grids[:, 0], grids[:, 1]]
        grids[:, 1] += 1
        moments = nms(grids * float(d[q]) / n, scores, 0.5)
        g = torch.tensor([max(gt[q, 0], 0), min(gt[q, 1], d[q])])
        for i, r in enumerate(recall_metrics):
            mious = iou(moments[:r], g)
            bools = mious[:, None].expand(r, len(ious)) >= iou_metrics
            recall_x_iou[i] += bools.any(dim=0)
        top1.append(float(iou(moments[:1], g)[0]))
    return (recall_x_iou / len(d)).numpy(), float(np.mean(top1))


def compare(name, q, n, counts, ious, rng, durations=None, ref_queries=None):
    mask, con, iou_s, d, gt = synthetic(q, n, counts, rng, durations)
    t0 = time.perf_counter()
    m = ours(con, iou_s, d, gt, n, counts, ious)
    t_ours = time.perf_counter() - t0
    k = ref_queries or q
    sub = ours(con[:k], iou_s[:k], d[:k], gt[:k], n, counts, ious) if k < q else m
    t0 = time.perf_counter()
    rec, miou = reference(mask, con[:k], iou_s[:k], d[:k], gt[:k], n, ious)
    t_ref = (time.perf_counter() - t0) * q / k
    same = all(
        abs(sub.values[f"R@{r},IoU={t:g}"] - rec[i, j]) < 1e-6
        for i, r in enumerate((1, 5)) for j, t in enumerate(ious)
    ) and abs(sub.values["mIoU"] - miou) < 1e-6
    extra = f" (reference run on {k} queries, extrapolated)" if k < q else ""
    print(f"{name}: {q} queries x {int(mask.sum())} candidates")
    print(f"  ours (fusion + NMS + metrics): {t_ours:.3f} s")
    print(f"  reference loop port:           {t_ref:.2f} s{extra}")
    print(f"  speed-up: {t_ref / t_ours:.0f}x; identical metrics: {same}")
    print("  " + ", ".join(f"{k_}={v:.2f}" for k_, v in m.percent().items()))


def bench_head(preset, batch, per_video=2.3, frames=64, repeats=1):
    import torch

    from vdi_cli.registry import get_component

    torch.manual_seed(0)
    head = get_component("head", "mmn").build({"preset": preset}, video_dim=512).eval()
    q = round(batch * per_video)
    feats = torch.randn(batch, frames, 512)
    sents = torch.randn(q, 512)
    s2v = torch.arange(q) % batch
    times = {}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        for _ in range(repeats):
            out = fn(*args)
        times[name] = (time.perf_counter() - t0) / repeats
        return out

    with torch.no_grad():
        seg = timed("prepool (normalise + avgfeats)", head.prepool, feats, None)
        clips = timed("pool (AvgPool1d)", head.pool, seg)
        map2d = timed("sparse 2D map", head.map2d, clips)
        con, iou = timed("proposal convs", head.proposals, map2d)
        s_iou, s_con = timed("text projections", head.project_text, sents)
        iou_s, con_s = timed("scores (cosine maps)", head.scores, iou, con, s_iou, s_con, s2v)
        from vdi_plugins.heads.mmn_model import MMNOutputs

        out = MMNOutputs(iou_s, con_s, iou, con, s_iou, s_con, s2v)
        timed("decode (fusion + NMS, all survivors)", head.rank, out, torch.full((batch,), 30.0))
    total = sum(times.values())
    print(f"head forward, preset {preset} (N={head.params.num_clips}), {batch} videos x "
          f"{frames} frames, {q} sentences, {torch.get_num_threads()} threads: {total:.2f} s")
    for name, t in times.items():
        print(f"  {name:38} {t * 1000:10.1f} ms  {100 * t / total:5.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--head-batch", type=int, default=48, help="videos per batch, N=16")
    ap.add_argument("--anet-head-batch", type=int, default=4, help="videos per batch, N=64")
    ap.add_argument("--ref-anet-queries", type=int, default=300)
    ap.add_argument("--skip-head", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    durations = None
    if CHARADES_CSV.exists():  # real Charades test durations, cycled over 3720 queries
        with CHARADES_CSV.open(newline="") as f:
            lengths = [float(r["length"]) for r in csv.DictReader(f)]
        durations = np.resize(np.array(lengths), 3720)
    compare("Charades-STA size", 3720, 16, [15], (0.3, 0.5, 0.7), rng, durations)
    compare("ActivityNet size", 17031, 64, [15, 8, 8], (0.3, 0.5, 0.7), rng,
            ref_queries=args.ref_anet_queries)
    if not args.skip_head:
        bench_head("charades", args.head_batch)
        bench_head("activitynet", args.anet_head_batch)


if __name__ == "__main__":
    main()
