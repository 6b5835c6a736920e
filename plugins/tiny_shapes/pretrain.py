"""Image-text pretraining in miniature: the `tiny-shapes` backbone.

Contrastive (CLIP) training of the tiny architecture on random still frames of the synthetic
world with *static* captions: objects, colours (held-out ones included), sizes, positions and
scenes, and no motion word, as image-text pretraining lacks them. Deterministic from the seed.

    python -m vdi_plugins.tiny_shapes.pretrain --steps 700 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vdi_plugins.synthetic.world import COLOURS, SCENES, SHAPES, random_still
from vdi_plugins.tiny_shapes import ARCH, WEIGHTS, WEIGHTS_INFO, register_arch

VOCAB = {"colour": tuple(COLOURS), "shape": SHAPES, "scene": SCENES}
FRAME = 64  # the synthetic videos' frame size; the model's preprocessing resizes to 48


def still_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    pairs = [random_still(rng, FRAME, VOCAB) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def retrieval_top1(backbone: Any, frames: np.ndarray, captions: list[str]) -> float:
    """Text -> image top-1 accuracy over a gallery (captions of identical frames count)."""
    import torch

    with torch.no_grad():
        img = torch.nn.functional.normalize(backbone.encode_frames(frames)[0], dim=-1)
        txt = torch.nn.functional.normalize(
            backbone.encode_text(backbone.tokenize(captions)), dim=-1)
        best = (txt @ img.t()).argmax(1).tolist()
    return float(np.mean([captions[j] == captions[i] for i, j in enumerate(best)]))


def pretrain(steps: int = 700, seed: int = 0, batch_size: int = 256, lr: float = 1e-3,
             out: Path = WEIGHTS, log_every: int = 50) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from vdi_plugins.backbones_open_clip import OpenClipConfig, OpenClipSpec

    register_arch()
    torch.manual_seed(seed)
    backbone = OpenClipSpec(OpenClipConfig(arch=ARCH)).load("cpu", "fp32")
    model = backbone.module
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = np.random.default_rng(seed)
    gallery_frames, gallery_caps = still_batch(np.random.default_rng(seed + 10_000), 100)
    start, history = time.time(), []
    for step in range(1, steps + 1):
        frames, captions = still_batch(rng, batch_size)
        pixels = backbone.preprocess(frames)
        img = F.normalize(model.visual(pixels)[0], dim=-1)
        txt = F.normalize(model.encode_text(backbone.tokenize(captions)), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.t()
        target = torch.arange(len(captions))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            model.eval()
            top1 = retrieval_top1(backbone, gallery_frames, gallery_caps)
            model.train()
            value = float(loss.detach())
            history.append({"step": step, "loss": round(value, 4), "top1": top1})
            print(f"step {step}/{steps}  loss {value:.4f}  text->image top-1 {top1:.2f}  "
                  f"{time.time() - start:.0f}s", file=sys.stderr, flush=True)
    model.eval()
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    out = Path(out)
    save_file(state, str(out))
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    info = {"arch": ARCH, "steps": steps, "seed": seed, "batch_size": batch_size, "lr": lr,
            "sha256": sha, "bytes": out.stat().st_size, "history": history,
            "seconds": round(time.time() - start, 1),
            "command": f"python -m vdi_plugins.tiny_shapes.pretrain --steps {steps} "
                       f"--seed {seed} --batch-size {batch_size} --lr {lr}"}
    if out == WEIGHTS:
        WEIGHTS_INFO.write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args(argv)
    info = pretrain(args.steps, args.seed, args.batch_size, args.lr, args.out)
    print(json.dumps({k: v for k, v in info.items() if k != "history"}, indent=1))


if __name__ == "__main__":
    main()
