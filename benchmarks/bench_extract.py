"""Benchmark of `vdi extract`: throughput against the bare backbone, and memory on a long video.

1. Throughput: ViT-B-32 (random weights) on the CPU. The same sampled frames go through
   (a) the bare forward pass (`encode_pixels` on already decoded and preprocessed tensors) and
   (b) the whole extraction (hash, decode in the background thread, preprocess, forward, write the
   safetensors file, database rows). Ratio = throughput(b) / throughput(a); target >= 0.9.
2. Memory: peak RSS above the baseline while extracting a 1-minute and a 10-minute video (low
   resolution, same fps): bounded by the batch, it should not grow with the length.
3. On a CUDA machine: frames/s of the bare fp16 forward pass and of the extraction.

Run: .venv/bin/python benchmarks/bench_extract.py [--seconds 40] [--long-minutes 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples RSS every 20 ms in a thread; `.peak` is the highest value seen, `.samples` all."""

    def __enter__(self) -> PeakRSS:
        self.peak = rss_mb()
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_mb())
            self.peak = max(self.peak, self.samples[-1])
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def bare_forward(backbone, pixels_batches) -> float:
    import torch

    start = time.perf_counter()
    for pixels in pixels_batches:
        backbone.encode_pixels(pixels)
    if str(backbone.device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def decoded_batches(backbone, path, sampling, batch_size):
    import numpy as np

    from vdi_cli.video import open_video

    with open_video(path, sampling) as reader:
        frames = [f.image for f in reader.frames()]
    return [
        backbone.preprocess(np.stack(frames[i : i + batch_size]))
        for i in range(0, len(frames), batch_size)
    ], len(frames)


def throughput(db, backbone, video, sampling, batch_size, repeats) -> dict[str, float]:
    from vdi_cli.pipeline.extract import extract_features

    batches, n = decoded_batches(backbone, video, sampling, batch_size)
    bare_forward(backbone, batches[:1])  # warm-up
    bare, full = [], []
    def run_full() -> float:
        start = time.perf_counter()
        report = extract_features(
            db, [video], sampling=sampling, batch_size=batch_size, force=True,
            loaded=backbone, show_progress=False,
        )
        assert report.counts()["extracted"] == 1, report.to_dict()
        return time.perf_counter() - start

    for i in range(repeats):  # interleaved in ABBA order, so drifting load hits both alike
        if i % 2 == 0:
            bare.append(bare_forward(backbone, batches))
            full.append(run_full())
        else:
            full.append(run_full())
            bare.append(bare_forward(backbone, batches))
    b, f = statistics.median(bare), statistics.median(full)
    pairs = sorted(x / y for x, y in zip(bare, full, strict=True))  # robust to load drifts
    return {"frames": n, "bare_s": b, "extract_s": f, "bare_fps": n / b, "extract_fps": n / f,
            "ratio": statistics.median(pairs), "ratio_min": pairs[0], "ratio_max": pairs[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="throughput video length")
    parser.add_argument("--fps", type=float, default=2, help="sampling rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=10)
    parser.add_argument("--long-fps", type=float, default=1, help="sampling rate, long video")
    parser.add_argument("--long-batch", type=int, default=8, help="batch size, long video")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1 or 1,3")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vdi-bench-"))
    os.environ["VDI_HOME"] = str(tmp / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from vdi_cli.backbones import load_backbone
    from vdi_cli.store import open_db
    from vdi_cli.testing import make_video
    from vdi_cli.video import Sampling

    db = open_db(tmp / "bench.db")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    t0 = time.perf_counter()
    video = make_video(tmp / "short.mp4", seconds=args.seconds, fps=25, size=(480, 360))
    parts = {int(p) for p in args.parts.split(",")}
    if 2 in parts:
        short_min = make_video(tmp / "one.mp4", seconds=60, fps=5, size=(96, 72))
        long_vid = make_video(tmp / "long.mp4", seconds=args.long_minutes * 60, fps=5,
                              size=(96, 72))
    print(f"videos generated in {time.perf_counter() - t0:.1f}s")

    cpu = load_backbone("open_clip:ViT-B-32", device="cpu")
    sampling = Sampling(fps=args.fps)
    if 1 in parts:
        part1(db, cpu, video, sampling, args)
    if 2 in parts:
        part2(db, cpu, short_min, long_vid, args)
    if 3 in parts:
        part3(db, video, sampling, args)


def part1(db, cpu, video, sampling, args) -> None:
    import torch

    r = throughput(db, cpu, video, sampling, args.batch_size, args.repeats)
    print(
        f"\n[1] ViT-B-32 (random weights), CPU, {args.seconds:.0f}s 480x360 25fps video sampled "
        f"at {args.fps:g} fps -> {r['frames']} frames, batch {args.batch_size}, median of "
        f"{args.repeats}:\n"
        f"    bare forward  {r['bare_s']:.2f}s  {r['bare_fps']:.1f} frames/s\n"
        f"    extraction    {r['extract_s']:.2f}s  {r['extract_fps']:.1f} frames/s\n"
        f"    ratio         {r['ratio']:.2f}x  (median of the per-repeat ratios, range "
        f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}; target >= 0.9x)"
    )
    threads = torch.get_num_threads()
    if threads > 1:  # the same with one core left to the decoder
        torch.set_num_threads(threads - 1)
        r = throughput(db, cpu, video, sampling, args.batch_size, args.repeats)
        torch.set_num_threads(threads)
        print(
            f"    with the model on {threads - 1} of {threads} threads (a core free for "
            f"decoding): bare {r['bare_fps']:.1f} frames/s, extraction {r['extract_fps']:.1f} "
            f"frames/s, ratio {r['ratio']:.2f}x (range {r['ratio_min']:.2f}-"
            f"{r['ratio_max']:.2f})"
        )


def part2(db, cpu, short_min, long_vid, args) -> None:
    from vdi_cli.pipeline.extract import extract_features
    from vdi_cli.video import Sampling

    long_sampling = Sampling(fps=args.long_fps)
    lb = args.long_batch
    extract_features(db, [short_min], sampling=long_sampling, batch_size=lb,
                     force=True, loaded=cpu, show_progress=False)  # warm allocator caches
    baseline = rss_mb()
    rows = []
    for label, path, _minutes in (("1 min", short_min, 1.0), (f"{args.long_minutes:g} min",
                                                              long_vid, args.long_minutes)):
        base = rss_mb()
        with PeakRSS() as peak:
            start = time.perf_counter()
            report = extract_features(db, [path], sampling=long_sampling, batch_size=lb,
                                      force=True, loaded=cpu, show_progress=False)
            took = time.perf_counter() - start
        frames = report.videos[0].frames
        in_memory = frames * (49 + 1) * 512 * 2 / 2**20  # what holding all features would take
        quarter = max(1, len(peak.samples) // 4)
        first, last = max(peak.samples[:quarter]), max(peak.samples[-quarter:])
        rows.append((label, frames, peak.peak - base, first - base, last - base, in_memory, took))
    print(f"\n[2] peak RSS above baseline, ViT-B-32 CPU, 96x72 videos at {args.long_fps:g} fps, "
          f"batch {lb} (baseline RSS with the model loaded: {baseline:.0f} MiB):")
    for label, frames, grew, first, last, in_memory, took in rows:
        print(f"    {label:>7}: {frames:4d} frames  peak +{grew:5.1f} MiB (first quarter of the "
              f"run +{first:5.1f}, last quarter +{last:5.1f}); all features held in memory "
              f"would add {in_memory:4.1f} MiB; {took:.1f}s")



def part3(db, video, sampling, args) -> None:
    import torch

    from vdi_cli.backbones import load_backbone

    if torch.cuda.is_available():
        gpu = load_backbone("open_clip:ViT-B-32", device="cuda")
        g = throughput(db, gpu, video, sampling, 64, args.repeats)
        print(f"\n[3] CUDA fp16 ({torch.cuda.get_device_name()}), batch 64: bare "
              f"{g['bare_fps']:.0f} frames/s, extraction {g['extract_fps']:.0f} frames/s, "
              f"ratio {g['ratio']:.2f}x")
    else:
        print("\n[3] no CUDA device: GPU frames/s not measured")


if __name__ == "__main__":
    main()
