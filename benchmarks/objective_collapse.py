"""Do VDI's objectives collapse when they train alone, and do the `stable` forms?

Real pieces: videos of the synthetic world (plugins/synthetic, rendered in memory), the shipped
`tiny-shapes` backbone's frame and patch features and its text tower (trained), the real
`visual-context` / `spatial-dynamic` modules. No grounding head: each VDI term trains the text
tower and its own layers by itself, which is where Eqs. 2 and 5 have their trivial minima.
The learning rates are the trainer's defaults (modules at the head's 1e-3, text at 1/10).

    python benchmarks/objective_collapse.py --steps 300 --forms paper stable

Prints, every --every steps, on a fixed batch of held-out videos: the term's value, the batch
spread (mean over dims of the std over sentences) of its target and prediction, for L_vc the
relative change of the target when another video's frames are swapped in, for L_sd the mean and
std of eps_v / eps_q over different-video pairs, and the norm of the weighted term's gradient
into the text tower.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_world(videos: int, seed: int, frames: int = 16, size: int = 64) -> list[dict]:
    from vdi_plugins.synthetic.generate import frames_of, plan_video

    rng = np.random.default_rng(seed)
    out = []
    for i in range(videos):
        plan = plan_video(rng, f"v{i}", "train", size)
        pixels = np.stack(list(frames_of(plan, frames / plan.duration, size))[:frames])
        sents = []
        for ev, text in zip(plan.events, plan.sentences, strict=True):
            name = plan.objects[ev.obj][0]
            np_text = next(f"{d} {name}" for d in ("the", "a") if f"{d} {name}" in text)
            sents.append((text, np_text, " ".join(text.replace(np_text, " ").split())))
        out.append({"pixels": pixels, "sentences": sents})
    return out


def encode_frames(backbone, world):
    import torch

    g, p = [], []
    with torch.no_grad():
        for v in world:
            glob, patches = backbone.encode_frames(v["pixels"])
            g.append(glob.float())
            p.append(patches.float())
    return torch.stack(g), torch.stack(p)


def batch_of(world, frames, patches, idx, backbone, grad: bool):
    import torch

    from vdi_cli.objectives import ObjectiveInputs

    q, qs, qd, vidx = [], [], [], []
    for b, i in enumerate(idx):
        for text, s, d in world[i]["sentences"]:
            q.append(text)
            qs.append(s)
            qd.append(d)
            vidx.append(b)

    def enc(texts, g):
        with torch.set_grad_enabled(g):
            return backbone.encode_text(backbone.tokenize(texts, context_length=16)).float()

    n = len(q)
    return ObjectiveInputs(
        text_query=enc(q, False), text_static=enc(qs, False), text_dynamic=enc(qd, grad),
        static_empty=torch.zeros(n, dtype=torch.bool),
        dynamic_empty=torch.tensor([not d for d in qd]),
        frames=frames[idx], frame_mask=torch.ones(n, frames.shape[1], dtype=torch.bool),
        video_index=torch.tensor(vidx), patches=patches[idx])


def spread(x) -> float:
    return float(x.std(0).mean())


def diagnose(oid, module, inputs, backbone, text_params) -> dict[str, float]:
    import torch

    from vdi_plugins.objectives import cosine_matrix

    module.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        if oid == "visual-context":
            mem = inputs.frames[inputs.video_index]
            target = module.decoder(inputs.text_static.unsqueeze(1), mem).squeeze(1)
            other = inputs.frames[(inputs.video_index + 1) % len(inputs.frames)]
            swapped = module.decoder(inputs.text_static.unsqueeze(1), other).squeeze(1)
            pred = module.fc(inputs.text_dynamic)
            out.update(target_spread=spread(target), pred_spread=spread(pred),
                       swap=float((swapped - target).norm(dim=-1).mean()
                                  / target.norm(dim=-1).mean()))
        else:
            video = module.video_dynamics(inputs.frames, inputs.patches, inputs.video_index,
                                          inputs.frame_mask)
            text = module.fc_text(inputs.text_dynamic)
            if module.config.centre:
                video, text = video - video.mean(0), text - text.mean(0)
            vi = inputs.video_index
            pairs = vi[:, None] != vi[None, :]
            ev, eq = cosine_matrix(video)[pairs], cosine_matrix(text)[pairs]
            out.update(target_spread=spread(video), pred_spread=spread(text),
                       eps_v=float(ev.mean()), eps_v_std=float(ev.std()),
                       eps_q=float(eq.mean()), eps_q_std=float(eq.std()))
    module.train()
    for p in text_params:
        p.grad = None
    loss = module(inputs)
    (module.config.weight * loss).backward()
    out["loss"] = float(loss.detach())
    out["text_grad"] = float(torch.sqrt(sum((p.grad.float() ** 2).sum() for p in text_params
                                            if p.grad is not None)))
    return out


def run(oid: str, form: str, steps: int, every: int, world, feats, backbone_id: str,
        seed: int, log) -> None:
    import torch

    from vdi_cli.backbones import load_backbone
    from vdi_cli.registry import get_component

    torch.manual_seed(seed)
    backbone = load_backbone(backbone_id, device="cpu")  # fresh text tower per run
    text_params = backbone.text_parameters()
    for p in text_params:
        p.requires_grad_(True)
    frames, patches = feats
    module = get_component("objective", oid).build(
        {"form": form}, dim=frames.shape[-1], patch_count=patches.shape[2])
    opt = torch.optim.AdamW([{"params": list(module.parameters()), "lr": 1e-3},
                             {"params": text_params, "lr": 1e-4}],
                            betas=(0.9, 0.99), weight_decay=1e-5)
    n_train = len(world) - 16
    held = list(range(n_train, len(world)))
    rng = np.random.default_rng(seed)
    start = time.time()
    for step in range(steps + 1):
        if step % every == 0:
            d = diagnose(oid, module, batch_of(world, frames, patches, held, backbone, True),
                         backbone, text_params)
            log(f"{oid:15s} {form:6s} step {step:4d} " + " ".join(
                f"{k}={v:.3g}" for k, v in d.items()) + f"  ({time.time() - start:.0f}s)")
        if step == steps:
            break
        idx = list(rng.choice(n_train, size=16, replace=False))
        inputs = batch_of(world, frames, patches, idx, backbone, True)
        opt.zero_grad(set_to_none=True)
        (module.config.weight * module(inputs)).backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--videos", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--forms", nargs="+", default=["paper", "stable"])
    ap.add_argument("--objectives", nargs="+", default=["visual-context", "spatial-dynamic"])
    args = ap.parse_args()

    import torch

    from vdi_cli.backbones import load_backbone

    torch.set_num_threads(2)
    world = make_world(args.videos, args.seed)
    feats = encode_frames(load_backbone("tiny-shapes", device="cpu"), world)
    for oid in args.objectives:
        for form in args.forms:
            run(oid, form, args.steps, args.every, world, feats, "tiny-shapes", args.seed,
                lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
