"""Cold start: `vdi search` and a repeat `vdi retrieve` on cached features, each in a fresh
process, against `python -c "import torch, open_clip"` (after vdi's torchvision shim, without
which open_clip does not import beside the CPU torch pin) on the same machine, in one run.

    python benchmarks/bench_cold_start.py [--backbone tiny-shapes | --vit-b32] [--repeats 3]

`--vit-b32` uses CLIP ViT-B/32 with random weights written to a safetensors file (no download;
the same sizes as OpenAI's weights), so the figure shows what building the image tower costs.
The setup (features, an index) is made first and not timed. Prints the median seconds of each
command and its excess over the import baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = "import torch, open_clip"


def _run(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vit-b32", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="vdi-cold-"))
    env = {**os.environ, "VDI_HOME": str(work / "home"), "VDI_DB": str(work / "vdi.db"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path)}
    from vdi_cli.testing import make_video

    videos = [make_video(work / "lib" / f"v{i}.mp4", seconds=30, fps=4, size=(64, 48), seed=i)
              for i in range(8)]
    model = ["--training-free", "--backbone", "tiny-shapes"]
    label = "tiny-shapes"
    if args.vit_b32:
        from vdi_cli.compat.torchvision_shim import ensure_torchvision

        ensure_torchvision()
        import open_clip
        from safetensors.torch import save_file

        net = open_clip.create_model("ViT-B-32", pretrained=None)
        weights = work / "vit-b-32.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
        model = ["--training-free", "--backbone", "open_clip:ViT-B-32", "--weights", str(weights)]
        label = "ViT-B-32 (random weights from a file)"
    vdi = [sys.executable, "-m", "vdi_cli"]
    _run([*vdi, "index", "build", "lib", str(work / "lib"), *model], env)  # extracts too
    commands = {
        # open_clip's import needs vdi's torchvision shim in this environment (DESIGN.md)
        BASE: [sys.executable, "-c", "from vdi_cli.compat.torchvision_shim import "
               "ensure_torchvision; ensure_torchvision(); import torch, open_clip"],
        "vdi search": [*vdi, "search", "a red square moves to the right", "-k", "5"],
        "vdi retrieve (cached)": [*vdi, "retrieve", str(videos[0]), "a red square moves", *model],
    }
    times = {name: [] for name in commands}
    for _ in range(args.repeats):  # interleaved, so machine load affects each alike
        for name, cmd in commands.items():
            times[name].append(_run(cmd, env))
    base = statistics.median(times[BASE])
    print(f"cold start, {label}, median of {args.repeats} (seconds, fresh process each)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:38s} {med:6.2f}  (+{med - base:5.2f} over the imports)")


if __name__ == "__main__":
    main()
