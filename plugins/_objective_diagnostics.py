"""What the VDI objectives report about themselves for the trainer's per-epoch diagnostics
(`vdi_cli.pipeline.train_diagnostics`): figures that show a term sitting at its trivial minimum
(a decoder whose output ignores the video; every cosine ~1) while its loss looks fine.

Each `diagnose_*` runs the module's own layers on the batch once more, in eval mode (no
dropout) and without a graph, so it changes neither the weights nor the random stream. The
spreads are scale-free (the batch spread over the rms of the entries), so one floor serves
every backbone: 0 when every sentence gets the same vector.
"""

from __future__ import annotations

from typing import Any

from vdi_plugins._objective_losses import cosine_matrix


def relative_spread(x: Any) -> float:
    """Mean over dims of the std over rows, over the rms of all entries (0 for identical rows;
    ~1 for rows of independent entries around 0). NaN for fewer than two rows."""
    if x.shape[0] < 2:
        return float("nan")
    rms = float(x.pow(2).mean().sqrt())
    return float(x.std(0).mean()) / rms if rms > 0 else 0.0


def other_video(video_index: Any) -> Any:
    """For each sentence, the nearest following sentence (cyclically) of another video, or -1
    when every sentence is of one video."""
    import torch

    n = len(video_index)
    shifts = torch.arange(1, max(n, 2), device=video_index.device)
    cand = (torch.arange(n, device=video_index.device)[:, None] + shifts[None, :]) % max(n, 1)
    differs = video_index[cand] != video_index[:, None]
    first = differs.float().argmax(1)
    out = cand[torch.arange(n, device=video_index.device), first]
    return torch.where(differs.any(1), out, torch.full_like(out, -1))


class _EvalMode:
    def __init__(self, module: Any) -> None:
        self.module, self.was = module, module.training

    def __enter__(self) -> None:
        self.module.eval()

    def __exit__(self, *exc: Any) -> None:
        self.module.train(self.was)


def diagnose_visual_context(module: Any, inputs: Any) -> dict[str, float]:
    """L_vc: the spread of the target x~_qs and of the prediction FC(f_q(Qd)) over the batch,
    and `swap`, the target's relative change when another video's frames are put under the
    same probe (0: the decoder ignores the video)."""
    import torch

    from vdi_cli.objectives import as_float32, float32_region

    config = module.config
    with torch.no_grad(), _EvalMode(module), float32_region(inputs.text_dynamic.device):
        x = as_float32(inputs)
        keep = ~x.dynamic_empty & x.frame_mask.any(1)
        if config.probe == "static":
            probe = x.text_static
            keep = keep & ~x.static_empty
        elif config.probe == "query":
            probe = x.text_query
        else:
            probe = module.learned_query.expand(len(keep), -1)
        if int(keep.sum()) < 2:
            return {}
        probe, vidx, mask = probe[keep].unsqueeze(1), x.video_index[keep], x.frame_mask[keep]
        target = module.decoder(probe, x.frames[vidx], memory_key_padding_mask=~mask).squeeze(1)
        pred = module.fc(x.text_dynamic[keep])
        out = {"target_spread": relative_spread(target), "pred_spread": relative_spread(pred)}
        other = other_video(vidx)
        if bool((other >= 0).all()):
            swapped = module.decoder(probe, x.frames[vidx[other]],
                                     memory_key_padding_mask=~mask[other]).squeeze(1)
            out["swap"] = float((swapped - target).norm(dim=-1).mean()
                                / target.norm(dim=-1).mean().clamp(min=1e-12))
    return out


def diagnose_spatial_dynamic(module: Any, inputs: Any) -> dict[str, float]:
    """L_sd: the spread of m~ (the video side) and of FC(x_qd) (the text side) over the batch,
    and the mean and std of eps_v and eps_q over the pairs the loss averages (after centring
    when `centre` is on: the cosines the loss sees). std ~0 with mean ~1: every cosine ~1."""
    import torch

    from vdi_cli.objectives import as_float32, float32_region

    config = module.config
    with torch.no_grad(), _EvalMode(module), float32_region(inputs.text_dynamic.device):
        x = as_float32(inputs)
        if x.patches is None:
            return {}
        keep = ~x.dynamic_empty & x.frame_mask.any(1)
        if int(keep.sum()) < 2:
            return {}
        used = x.video_index[keep]
        videos, local = used.unique(return_inverse=True)
        video = module.video_dynamics(x.frames[videos], x.patches[videos], local,
                                      x.frame_mask[keep])
        text = module.fc_text(x.text_dynamic[keep])
        out = {"target_spread": relative_spread(video), "pred_spread": relative_spread(text)}
        if config.centre:
            video, text = video - video.mean(0), text - text.mean(0)
        pairs = used[:, None] != used[None, :]
        if config.pairs != "different-video":
            pairs = ~torch.eye(len(used), dtype=torch.bool, device=used.device)
        if int(pairs.sum()) < 2:
            return out
        ev, eq = cosine_matrix(video)[pairs], cosine_matrix(text)[pairs]
        out.update(eps_v=float(ev.mean()), eps_v_std=float(ev.std()),
                   eps_q=float(eq.mean()), eps_q_std=float(eq.std()))
    return out
