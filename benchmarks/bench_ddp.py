"""DDP step time: 2 gloo CPU processes against 1 at the same global batch.

Each configuration runs `python -m vdi_cli.testing_ddp` (real `Trainer` steps: text tower
forward + backward, MMN head, L_vc + L_sd, AdamW; random frame / patch features) for a few
steps and reports the median step time after the first (warm-up) step:

- 1 process, 2 threads: the whole 2-core machine in one process (what `vdi train` does);
- 1 process, 1 thread: the per-core reference;
- 2 processes (torchrun, 1 thread each, as torchrun sets OMP_NUM_THREADS=1): each rank encodes
  half the sentences, gathers them (with gradients), runs the head and the VDI terms on the
  whole global batch, and all-reduces the gradients (DDP buckets). The all-reduce of every
  trained tensor once, alone, is timed too (`allreduce s`).

Text towers: the tiny test model and ViT-B-32's (open_clip `ViT-B-32` with random weights:
timing only, no download).

    .venv/bin/python benchmarks/bench_ddp.py [--steps 5] [--batch 8] [--towers tiny,b32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TOWERS = {"tiny": "tiny", "b32": "open_clip:ViT-B-32"}


def run(backbone: str, nproc: int, threads: int, steps: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "steps.pt"
        worker = ["vdi_cli.testing_ddp", "--out", str(out), "--steps", str(steps),
                  "--batch", str(batch), "--backbone", backbone]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
               "VDI_HOME": os.environ.get("VDI_HOME", str(Path(tmp) / "home"))}
        cmd = [sys.executable, "-m", *worker] if nproc == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", *worker]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        report = json.loads(done.stdout.strip().splitlines()[-1])
    times = report["step_s"][1:]
    return {"median_s": statistics.median(times), "steps": len(times),
            "allreduce_s": report["allreduce_s"], "trained": report["trained"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", default="8", help="global batch (videos), comma-separated")
    parser.add_argument("--towers", default="tiny,b32")
    args = parser.parse_args()
    rows = []
    for tower, batch in [(t, int(b)) for t in args.towers.split(",")
                         for b in args.batch.split(",")]:
        backbone = TOWERS[tower]
        one2 = run(backbone, 1, 2, args.steps, batch)
        one1 = run(backbone, 1, 1, args.steps, batch)
        two = run(backbone, 2, 1, args.steps, batch)
        rows.append({"tower": tower, "batch": batch, "1p x 2t": one2["median_s"],
                     "1p x 1t": one1["median_s"], "2p x 1t": two["median_s"],
                     "2p / 1p2t": two["median_s"] / one2["median_s"],
                     "2p / 1p1t": two["median_s"] / one1["median_s"],
                     "all-reduce s": two["allreduce_s"], "trained M": two["trained"] / 1e6})
    print(f"{'tower':6} {'batch':>5} {'1p x 2t s':>10} {'1p x 1t s':>10} {'2p x 1t s':>10} "
          f"{'2p/1p2t':>8} {'2p/1p1t':>8} {'allreduce s':>11} {'trained M':>9}")
    for r in rows:
        print(f"{r['tower']:6} {r['batch']:>5} {r['1p x 2t']:>10.3f} {r['1p x 1t']:>10.3f} "
              f"{r['2p x 1t']:>10.3f} {r['2p / 1p2t']:>8.2f} {r['2p / 1p1t']:>8.2f} "
              f"{r['all-reduce s']:>11.3f} {r['trained M']:>9.1f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
