"""Benchmark of extraction scaling: `--workers K` decoding processes and `--shard I/N` processes.

Decode-bound by default: the tiny test model (32 px input, milliseconds per batch) on real mp4
files at a realistic resolution (640x360, 25 fps, decoded straight through and sampled at
2 fps), so what limits throughput is decoding, the part `--workers` spreads over processes.
Every figure is measured in this one run, on the same videos:

1. decode rate: sampled frames/s that K decoders deliver (decode + preprocess, no model);
2. model rate: frames/s of the bare forward pass on already preprocessed batches;
3. extraction: frames/s of `extract_features(..., workers=K)` (hash, decode, forward, write,
   database), with the ratio to K = 0 and a check that the features equal K = 0's bit for bit;
4. shards: the same videos as 2 concurrent `vdi extract --shard I/2` processes into one store
   (each with OMP_NUM_THREADS = its share of the cores) against 1 process (`vdi extract`, no
   shard), both timed from process start to exit.

    .venv/bin/python benchmarks/bench_extract_scaling.py [--workers 0,1,2,3] [--videos 8]
    # on a GPU (what benchmarks/gpu_check.sh runs):
    .venv/bin/python benchmarks/bench_extract_scaling.py --backbone open_clip:ViT-B-32 \\
        --device cuda --batch-size 256 --workers 0,8,15 --no-shards
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = "open_clip:vdi-tiny"
RUN_VDI = ("import sys; from vdi_cli.testing import register_tiny_open_clip; "
           "register_tiny_open_clip(); from vdi_cli.cli import run; sys.exit(run(sys.argv[1:]))")


def make_videos(folder: Path, n: int, seconds: float, size: tuple[int, int], fps: int
                ) -> list[Path]:
    from vdi_cli.testing import make_video

    return [make_video(folder / f"v{i:02d}.mp4", seconds=seconds, fps=fps, size=size, seed=i)
            for i in range(n)]


def decode_rate(paths: list[Path], sampling, batch_size: int, preprocess, workers: int
                ) -> tuple[int, float]:
    """(frames, seconds) for K decoders delivering every video's preprocessed batches."""
    from vdi_cli.pipeline.decode import decode_video
    from vdi_cli.pipeline.extract_workers import DecodePool

    frames = 0
    start = time.perf_counter()
    if workers == 0:
        for p in paths:
            for event in decode_video(str(p), sampling, batch_size, preprocess):
                frames += len(event[2]) if event[0] == "batch" else 0
    else:
        with DecodePool(workers, sampling, batch_size, preprocess) as pool:
            for msg in pool.messages([(i, str(p)) for i, p in enumerate(paths)]):
                frames += len(msg[3]) if msg[0] == "batch" else 0
    return frames, time.perf_counter() - start


def model_rate(loaded, paths: list[Path], sampling, batch_size: int) -> tuple[int, float]:
    """(frames, seconds) of the bare forward pass over the first video's batches, repeated to
    at least 2 s of work."""
    import torch

    from vdi_cli.pipeline.decode import decode_video

    batches = [e[1] for e in decode_video(str(paths[0]), sampling, batch_size, loaded.preprocess)
               if e[0] == "batch"]
    loaded.encode_pixels(batches[-1])  # warm-up
    sync = torch.cuda.synchronize if str(loaded.device).startswith("cuda") else (lambda: None)
    frames, start = 0, time.perf_counter()
    sync()
    while time.perf_counter() - start < 2.0:
        for b in batches:
            loaded.encode_pixels(b)
            frames += len(b)
        sync()
    return frames, time.perf_counter() - start


def extract_rate(tmp: Path, paths: list[Path], loaded, sampling, batch_size: int, workers: int
                 ) -> tuple[int, float, list]:
    """(frames, seconds, feature files) of a fresh extraction into its own store."""
    from vdi_cli.pipeline.extract import extract_features
    from vdi_cli.store import open_db

    db = open_db(tmp / f"w{workers}.db")
    start = time.perf_counter()
    report = extract_features(db, paths, loaded=loaded, sampling=sampling, force=True,
                              batch_size=batch_size, show_progress=False, workers=workers,
                              root=tmp / f"features-w{workers}")
    took = time.perf_counter() - start
    assert report.counts()["extracted"] == len(paths), report.to_dict()
    return report.frames_encoded, took, [v.features_path for v in report.videos]


def same_features(a: list, b: list) -> bool:
    import torch
    from safetensors.torch import load_file

    for x, y in zip(a, b, strict=True):
        fx, fy = load_file(x), load_file(y)
        if sorted(fx) != sorted(fy) or not all(torch.equal(fx[k], fy[k]) for k in fx):
            return False
    return True


def shard_wall(tmp: Path, folder: Path, backbone: str, fps: float, batch_size: int,
               device: str, shards: int) -> float:
    """Seconds from start to the last exit of `shards` concurrent `vdi extract` processes
    (one unsharded process for 1) into one fresh store."""
    env = {**os.environ, "VDI_HOME": str(tmp / f"home-s{shards}"),
           "VDI_DB": str(tmp / f"s{shards}.db"), "HF_HUB_OFFLINE": "1"}
    if shards > 1:  # each shard its share of the cores (as torchrun does with OMP_NUM_THREADS)
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // shards))
    base = [sys.executable, "-c", RUN_VDI, "extract", str(folder), "-b", backbone, "--fps",
            str(fps), "--batch-size", str(batch_size), "--device", device, "--json"]
    start = time.perf_counter()
    procs = [subprocess.Popen(base + (["--shard", f"{i}/{shards}"] if shards > 1 else []),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for i in range(shards)]
    for p in procs:
        _, err = p.communicate(timeout=1800)
        assert p.returncode == 0, err[-2000:]
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default=TINY)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", help="auto: fp16 on cuda, fp32 elsewhere")
    ap.add_argument("--workers", default="0,1,2,3", help="comma-separated K values")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each video")
    ap.add_argument("--size", default="640x360", help="video width x height")
    ap.add_argument("--video-fps", type=int, default=25)
    ap.add_argument("--fps", type=float, default=2.0, help="sampling rate")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--no-shards", action="store_true", help="skip the 2-shard comparison")
    ap.add_argument("--quick", action="store_true",
                    help="2 short small videos, K in 0,2 (a smoke test of this script)")
    args = ap.parse_args(argv)
    if args.quick:
        args.videos, args.seconds, args.size, args.workers = 2, 2.0, "160x90", "0,2"
    ks = [int(k) for k in args.workers.split(",")]
    width, height = (int(x) for x in args.size.lower().split("x"))

    tmp = Path(tempfile.mkdtemp(prefix="vdi-scaling-"))
    os.environ["VDI_HOME"] = str(tmp / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from vdi_cli.backbones import load_backbone
    from vdi_cli.preprocess import frame_preprocess
    from vdi_cli.testing import register_tiny_open_clip
    from vdi_cli.video import Sampling

    register_tiny_open_clip()
    t0 = time.perf_counter()
    folder = tmp / "videos"
    paths = make_videos(folder, args.videos, args.seconds, (width, height), args.video_fps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs;"
          f" {args.videos} videos of {args.seconds:g} s {width}x{height} at {args.video_fps} fps"
          f" (made in {time.perf_counter() - t0:.1f} s), sampled at {args.fps:g} fps, batch "
          f"{args.batch_size}")
    loaded = load_backbone(args.backbone, device=args.device, precision=args.precision)
    weights = loaded.weights_id
    print(f"backbone {loaded.id} on {loaded.device} (weights {weights}"
          f"{': random, fine for timing' if weights.startswith('random') else ''})")
    sampling = Sampling(fps=args.fps)
    pre = frame_preprocess(loaded)
    threads = torch.get_num_threads()
    for t in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(t)
        n, s = model_rate(loaded, paths, sampling, args.batch_size)
        print(f"model rate (bare forward, {t} thread{'s' * (t != 1)}): {n / s:.0f} frames/s")
    torch.set_num_threads(threads)
    ok = True
    ref_rate, ref_files = None, None
    for k in ks:
        dn, ds = decode_rate(paths, sampling, args.batch_size, pre, k)
        en, es, files = extract_rate(tmp, paths, loaded, sampling, args.batch_size, k)
        ref_rate = ref_rate or en / es
        same = True if ref_files is None else same_features(ref_files, files)
        ref_files = ref_files or files
        ok &= same
        print(f"workers {k}: decode rate {dn / ds:7.1f} frames/s | extraction {en / es:7.1f} "
              f"frames/s ({es:.2f} s for {en} frames), {en / es / ref_rate:.2f}x workers "
              f"{ks[0]}; features {'identical' if same else 'DIFFER'}")
    if not args.no_shards:
        one = shard_wall(tmp, folder, args.backbone, args.fps, args.batch_size, args.device, 1)
        two = shard_wall(tmp, folder, args.backbone, args.fps, args.batch_size, args.device, 2)
        print(f"shards: 1 process {one:.2f} s, 2 concurrent --shard I/2 processes {two:.2f} s "
              f"-> 2-shard throughput {one / two:.2f}x one process (process start included)")
    return 0 if ok else 1


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
