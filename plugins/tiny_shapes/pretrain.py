"""Image-text pretraining in miniature: the `tiny-shapes` and `tiny-shapes-v2` backbones.

Contrastive (CLIP) training of the tiny architecture on random still frames of the synthetic
world. `tiny-shapes`: *static* captions only, objects, colours (held-out ones included), sizes,
positions and scenes, no motion word. `tiny-shapes-v2` (world version 4): each object of a
still shows a motion trail with probability `--p-motion` and its caption names the motion
with one of the class's synonyms, trained and held-out alike, the way CLIP meets "jumping" in
photo captions (`vdi_plugins.synthetic.trails`). `--init` continues from shipped weights.
Deterministic from the seed; each shipped info file holds the command that made it.

    python -m vdi_plugins.tiny_shapes.pretrain --steps 600 --seed 0 --batch-size 192
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
from vdi_plugins.tiny_shapes import ARCH, RELEASES, WEIGHTS, register_arch

VOCAB = {"colour": tuple(COLOURS), "shape": SHAPES, "scene": SCENES}
FRAME = 64  # the synthetic videos' frame size; the model's preprocessing resizes to 48


def still_batch(rng: np.random.Generator, n: int, p_motion: float = 0.0, twins: float = 0.0
                ) -> tuple[np.ndarray, list[str]]:
    """n stills and captions: static ones (p_motion 0, `tiny-shapes`, the same draws as ever)
    or with motion trails on each object with probability p_motion (`tiny-shapes-v2`), a
    `twins` share of them in pairs that differ only in one object's motion (`twin_stills`)."""
    if p_motion > 0:
        from vdi_plugins.synthetic.trails import motion_still, twin_stills

        pairs = [p for _ in range(int(n * twins) // 2)
                 for p in twin_stills(rng, FRAME, VOCAB, p_motion)]
        pairs += [motion_still(rng, FRAME, VOCAB, p_motion) for _ in range(n - len(pairs))]
    else:
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
             out: Path = WEIGHTS, log_every: int = 50, backbone_id: str = "tiny-shapes",
             p_motion: float = 0.0, init: str | None = None, twins: float = 0.0
             ) -> dict[str, Any]:
    """Train, save fp16 safetensors to `out` and return the run's record; writing the shipped
    file of `backbone_id` also rewrites its info file (sha256, command, history)."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from vdi_plugins.backbones_open_clip import OpenClipConfig, OpenClipSpec

    register_arch()
    torch.manual_seed(seed)
    init_path = str(RELEASES[init][0]) if init in RELEASES else init
    backbone = OpenClipSpec(OpenClipConfig(arch=ARCH), weights=init_path).load("cpu", "fp32")
    model = backbone.module
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = np.random.default_rng(seed)
    gallery_frames, gallery_caps = still_batch(np.random.default_rng(seed + 10_000), 100,
                                               p_motion)
    start, history = time.time(), []
    for step in range(1, steps + 1):
        frames, captions = still_batch(rng, batch_size, p_motion, twins)
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
    if p_motion > 0 or init or backbone_id != "tiny-shapes":
        info.update(backbone=backbone_id, p_motion=p_motion, twins=twins, init=init)
        info["command"] += (f" --backbone {backbone_id} --p-motion {p_motion} --twins {twins}"
                            + (f" --init {init}" if init else ""))
    shipped, info_file = RELEASES[backbone_id]
    if out.resolve() == shipped.resolve():
        info_file.write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--backbone", choices=sorted(RELEASES), default="tiny-shapes",
                    help="which release: its shipped file is the default --out")
    ap.add_argument("--p-motion", type=float, default=0.0,
                    help="chance that an object shows a motion trail (tiny-shapes-v2: 0.6)")
    ap.add_argument("--twins", type=float, default=0.0,
                    help="share of a batch in pairs that differ only in a motion (v2: 0.5)")
    ap.add_argument("--init", help="start from these weights (a release id or a file)")
    ap.add_argument("--out", type=Path, help="default: the release's shipped file")
    args = ap.parse_args(argv)
    out = args.out or RELEASES[args.backbone][0]
    info = pretrain(args.steps, args.seed, args.batch_size, args.lr, out,
                    backbone_id=args.backbone, p_motion=args.p_motion, init=args.init,
                    twins=args.twins)
    print(json.dumps({k: v for k, v in info.items() if k != "history"}, indent=1))


if __name__ == "__main__":
    main()
