"""Benchmark of `vdi retrieve`: cost over the bare frame encoder, repeat queries, memory on 1 hour.

Backbone: ViT-B-32 with random weights (`open_clip:ViT-B-32`) on the CPU, default sampling
(1 fps). Checkpoints (made here, no dataset needed): an MMN head trained for a few AdamW steps on
random features and random moments, saved with `save_checkpoint` exactly as `vdi train` saves
one, recording a training span (`durations.max`) of 30 s, so a 60 s video is decoded as 3
overlapping windows. Heads: "tiny" (hidden 32, joint 16, 2 conv layers; the target figures),
"default" (the charades preset: 512 channels, 8 conv layers of 5x5, as MMN and the paper), and
"default-194": the same with the span a Charades-STA checkpoint records (its longest training
video, 194.33 s), so the 60 s video is one window.

1. A 60 s 480x360 25 fps video. (a) the backbone's frame encoding alone: `encode_pixels` over
   the 60 already decoded and preprocessed frames, batch 32; (b) `Retriever.search` on the
   uncached video with the model already loaded (hash, decode, preprocess, encode, write the
   feature cache, text tower, head on the windows, NMS merge, store lookups). Median of repeats,
   interleaved. Target: (b) <= 1.3 x (a). Also: the whole CLI in a fresh process.
2. A repeat query on the cached video: in the same process (features in memory) and with a new
   Retriever (features from the disk cache), split into text encoding and the rest.
   Target: < 0.5 s plus text encoding. Also: the CLI in a fresh process (imports + model load).
3. Peak memory (max RSS of the `vdi retrieve` process, resource.getrusage in a wrapper
   subprocess) on a 1-hour 64x64 video at 1 fps (3600 frames, 239 windows) and on the 60 s one.
   Target: < 2 GiB.

Run: .venv/bin/python benchmarks/bench_retrieve.py [--repeats 3] [--long-minutes 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BACKBONE = "open_clip:ViT-B-32"
SPAN = 30.0
CHARADES_SPAN = 194.33  # the longest Charades-STA training video: a 60 s video is one window
# name -> (head options, training span recorded in the checkpoint, training steps)
HEADS = {"tiny": ({"hidden_size": 32, "joint_size": 16, "conv_layers": 2}, SPAN, 30),
         "default": ({}, SPAN, 3), "default-194": ({}, CHARADES_SPAN, 3)}


def make_checkpoint(backbone, folder: Path, head_options: dict, span: float, steps: int) -> Path:
    """An MMN head trained `steps` AdamW steps on random features (30-frame videos, 2 sentences
    each), saved with the config `vdi train` writes."""
    import torch

    from vdi_cli import __version__
    from vdi_cli.checkpoints import save_checkpoint
    from vdi_cli.model import build_model

    torch.manual_seed(0)
    model = build_model(backbone, "mmn", head_options)
    head = model.head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    b, t, d = 4, int(SPAN), backbone.embed_dim
    for step in range(steps):
        feats = torch.randn(b, t, d)
        sent = torch.randn(2 * b, d)
        s2v = torch.arange(b).repeat_interleave(2)
        start = torch.rand(2 * b) * SPAN * 0.6
        moments = torch.stack([start, start + 3 + torch.rand(2 * b) * 8], 1).clamp(max=SPAN)
        out = head(feats, None, sent, s2v)
        loss = head.loss(out, {"moments": moments, "durations": torch.full((b,), SPAN)},
                         step + 1)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    config = {
        "vdi_version": __version__, "epoch": 1, "metrics": {},
        "backbone": {"id": backbone.id, "weights": backbone.weights_id, "weights_path": None,
                     "options": {}, "embed_dim": d, "patch_grid": list(backbone.patch_grid)},
        "sampling": {"fps": 1.0}, "context_length": None,
        "head": {"id": "mmn", "config": model.head_config},
        "durations": {"min": SPAN / 2, "max": span, "mean": SPAN * 0.75},
        "note": f"benchmark: {steps} steps on random features",
    }
    path, _ = save_checkpoint(folder, config, model.state_tensors())
    return path


def bare_encode(backbone, batches) -> float:
    start = time.perf_counter()
    for pixels in batches:
        backbone.encode_pixels(pixels)
    return time.perf_counter() - start


def decoded_batches(backbone, path, batch_size=32):
    import numpy as np

    from vdi_cli.video import Sampling, open_video

    with open_video(path, Sampling(fps=1.0)) as reader:
        frames = [f.image for f in reader.frames()]
    return [backbone.preprocess(np.stack(frames[i: i + batch_size]))
            for i in range(0, len(frames), batch_size)], len(frames)


def cli(args: list[str], env: dict[str, str]) -> tuple[float, int, dict]:
    """Run `vdi retrieve ARGS --json` in a wrapper process; (wall s, max RSS KiB, output)."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "sys.stderr.write(p.stderr)\n"
        "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n"
        "print(p.stdout)\n"
    )
    cmd = [sys.executable, "-c", wrapper, sys.executable, "-m", "vdi_cli", "retrieve", *args,
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    head, _, body = proc.stdout.partition("\n")
    wall, rss, code = head.split()
    if code != "0":
        raise SystemExit(f"vdi retrieve failed:\n{proc.stderr}")
    return float(wall), int(rss), json.loads(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=60)
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 3")
    args = parser.parse_args()
    todo = {int(p) for p in args.parts.split(",")}

    tmp = Path(tempfile.mkdtemp(prefix="vdi-bench-retrieve-"))
    env = {"VDI_HOME": str(tmp / "home"), "VDI_DB": str(tmp / "bench.db"), "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    import torch

    from vdi_cli.backbones import load_backbone
    from vdi_cli.store import open_db
    from vdi_cli.testing import make_video

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (other processes share the CPUs: figures "
          "are noisy when it exceeds the CPU count)")
    t0 = time.perf_counter()
    video = make_video(tmp / "minute.mp4", seconds=60, fps=25, size=(480, 360))
    print(f"60 s video generated in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    backbone = load_backbone(BACKBONE, device="cpu")
    load_s = time.perf_counter() - t0
    ckpts = {name: make_checkpoint(backbone, tmp / f"ckpt-{name}", *spec)
             for name, spec in HEADS.items()}
    print(f"ViT-B-32 (random weights) built in {load_s:.1f} s; checkpoints: tiny head 30 "
          "steps, default heads 3 steps on random features")
    db = open_db()
    if 1 in todo:
        part_overhead(args, db, backbone, video, ckpts)
    if 2 in todo:
        part_repeat(args, db, backbone, video, ckpts)
    _, rss1, _ = cli([str(video), QUERY, "-c", str(ckpts["tiny"])], env)
    if 2 in todo:
        wall, rss1, _ = cli([str(video), "a green triangle rotates", "-c", str(ckpts["tiny"])],
                            env)
        print(f"    CLI, fresh process, cached video: {wall:.2f} s wall (python imports and "
              f"building ViT-B-32 included: {load_s:.1f} s of it is the model build); max RSS "
              f"{rss1 / 1024:.0f} MiB")
    if 3 in todo:
        part_memory(args, tmp, ckpts, env, rss1)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(tmp, ignore_errors=True)  # the hour's ViT-B-32 feature cache is ~0.7 GB


QUERY = "a red square moves to the right"


def part_overhead(args, db, backbone, video, ckpts) -> None:
    from vdi_cli.pipeline.retrieve import Retriever, expand_inputs
    from vdi_cli.pipeline.retrieve_windows import plan_windows
    from vdi_cli.store.videos import forget_features

    batches, frames = decoded_batches(backbone, video)
    bare_encode(backbone, batches[:1])  # warm-up
    # one ViT-B-32 for all (the checkpoints' text towers are the same untrained weights)
    retrievers = {name: Retriever(db, checkpoint=str(p), loaded_backbone=backbone)
                  for name, p in ckpts.items()}
    bare: list[float] = []
    full: dict[str, list[dict]] = {name: [] for name in HEADS}
    for _ in range(args.repeats):  # interleaved, so background load hits all alike
        bare.append(bare_encode(backbone, batches))
        for name, r in retrievers.items():
            forget_features(db)  # uncached again
            r._features.clear()
            r._texts.clear()
            res = r.search(expand_inputs(video), [QUERY], top_k=5)
            assert res.videos[0].status == "extracted"
            full[name].append(res.timings)
    a = statistics.median(bare)
    print(f"\n[1] 60 s 480x360 25 fps video, 1 fps -> {frames} frames; median of "
          f"{args.repeats}:")
    print(f"    frame encoding alone (encode_pixels, batch 32): {a:.2f} s "
          f"({frames / a:.1f} frames/s)")
    for name in HEADS:
        b = statistics.median(t["total"] for t in full[name])
        p = min(full[name], key=lambda t: abs(t["total"] - b))
        span = HEADS[name][1]
        windows = len(plan_windows(60.0, span))
        print(f"    retrieve, {name:11s} head, span {span:g} s ({windows} windows): {b:.2f} s = "
              f"{b / a:.2f}x  (features "
              f"{p['features']:.2f}, text {p['text']:.3f}, head+merge {p['head']:.3f})"
              + ("  target <= 1.3x" if name == "tiny" else ""))


def part_repeat(args, db, backbone, video, ckpts) -> None:
    from vdi_cli.pipeline.retrieve import Retriever, expand_inputs

    r = Retriever(db, checkpoint=str(ckpts["tiny"]), loaded_backbone=backbone)
    r.search(expand_inputs(video), ["warm up"], top_k=5)
    rep = [r.search(expand_inputs(video), [f"the blue circle appears {i}"], top_k=5)
           for i in range(args.repeats)]
    mem = statistics.median(x.timings["total"] for x in rep)
    mem_text = statistics.median(x.timings["text"] for x in rep)
    fresh = Retriever(db, checkpoint=str(ckpts["tiny"]), loaded_backbone=backbone)
    disk = fresh.search(expand_inputs(video), ["a green triangle rotates"], top_k=5)
    assert disk.videos[0].status == "cached" and rep[0].videos[0].status == "memory"
    t = disk.timings
    print(f"\n[2] repeat query on the cached 60 s video (tiny head):\n"
          f"    same process (features in memory): {mem:.3f} s, of which text encoding "
          f"{mem_text:.3f} s -> {mem - mem_text:.3f} s besides the text tower (target < 0.5)\n"
          f"    new Retriever (features from the disk cache): {t['total']:.3f} s, text "
          f"{t['text']:.3f} s -> {t['total'] - t['text']:.3f} s besides the text tower")


def part_memory(args, tmp, ckpts, env, rss1) -> None:
    from vdi_cli.store import open_db
    from vdi_cli.testing import make_video

    t0 = time.perf_counter()
    long_video = make_video(tmp / "hour.mp4", seconds=args.long_minutes * 60, fps=2,
                            size=(64, 64))
    print(f"\n[3] {args.long_minutes:g} min 64x64 2 fps video generated in "
          f"{time.perf_counter() - t0:.0f} s ({long_video.stat().st_size / 2**20:.1f} MiB)")
    wall, rss, out = cli([str(long_video), QUERY, "-c", str(ckpts["tiny"])], env)
    summary = json.loads(open_db()["runs"].get(out["run_id"])["summary"])
    v = summary["videos"][0]
    print(f"    vdi retrieve (tiny head, 1 fps, uncached): {wall:.0f} s wall, {v['windows']} "
          f"windows, max RSS {rss / 1024:.0f} MiB (target < 2048); top moment "
          f"{out['predictions'][0]['pred_relevant_windows'][0]}")
    wall, rss2, out2 = cli([str(long_video), "a person opens the door", "-c",
                            str(ckpts["tiny"])], env)
    t = json.loads(open_db()["runs"].get(out2["run_id"])["summary"])["timings"]
    print(f"    repeat query on it (cached): {wall:.1f} s wall of which search {t['total']:.2f} s "
          f"(text {t['text']:.2f}, head on {v['windows']} windows + merge {t['head']:.2f}); "
          f"max RSS {rss2 / 1024:.0f} MiB. The 60 s video's CLI run: max RSS {rss1 / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
