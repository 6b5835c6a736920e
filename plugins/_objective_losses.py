"""The arithmetic of VDI's objectives, apart from the modules that hold their layers
(`vdi_plugins.objectives`): Eq. 2's distance and its contrastive and variance variants, Eq. 3's
heatmap, Eq. 5's cosine consistency. Plain functions of tensors, so each is tested by hand.
"""

from __future__ import annotations

from typing import Any


def vc_distance(pred: Any, target: Any, reduction: str) -> Any:
    """Per-sentence squared distance: summed or averaged over the feature dims."""
    sq = (pred - target).pow(2)
    return sq.sum(-1) if reduction == "sum" else sq.mean(-1)


def spatial_heatmap(frame_global: Any, frame_patches: Any, dim: int) -> Any:
    """Eq. 3: [..., D] . [..., HW, D] / sqrt(D) -> [..., HW] (inputs already projected)."""
    return (frame_patches @ frame_global.unsqueeze(-1)).squeeze(-1) / dim**0.5


def projected_heatmap(frame_global: Any, frame_patches: Any, fc_global: Any, fc_patch: Any,
                      dim: int) -> Any:
    """Eq. 3 with both projections, FC(x) . FC(X~) / sqrt(D), computed as
    X~ . (W_p^T FC(x)) + b_p . FC(x): the same numbers without projecting every patch
    (HW times fewer multiply-adds; 49x for ViT-B/32)."""
    g = fc_global(frame_global)  # [..., D]
    v = g @ fc_patch.weight  # [..., D]: sum_k g_k W[k, j]
    heat = (frame_patches @ v.unsqueeze(-1)).squeeze(-1)
    if fc_patch.bias is not None:
        heat = heat + (g * fc_patch.bias).sum(-1, keepdim=True)
    return heat / dim**0.5


def cosine_matrix(x: Any) -> Any:
    import torch.nn.functional as F

    x = F.normalize(x, dim=-1, eps=1e-8)
    return x @ x.t()


def sd_consistency(video_dyn: Any, text_dyn: Any, keep: Any, pairs: str,
                   centre: bool = False, video_index: Any = None) -> Any:
    """Eq. 5 averaged over the pairs of kept sentences: mean (cos_v - cos_q)^2; with `centre`,
    the cosines are taken after subtracting each side's mean over the kept sentences.
    `pairs="different-video"` needs `video_index` [Q]; None when no pair qualifies."""
    import torch

    if centre:
        video_dyn = video_dyn - video_dyn[keep].mean(0, keepdim=True)
        text_dyn = text_dyn - text_dyn[keep].mean(0, keepdim=True)
    ev, eq = cosine_matrix(video_dyn), cosine_matrix(text_dyn)
    pair_mask = keep[:, None] & keep[None, :]
    if pairs == "different-video":
        if video_index is None:
            raise ValueError("pairs='different-video' needs the sentences' video_index")
        pair_mask = pair_mask & (video_index[:, None] != video_index[None, :])
    elif pairs == "off-diagonal":
        pair_mask = pair_mask & ~torch.eye(len(keep), dtype=torch.bool, device=keep.device)
    if not pair_mask.any():
        return None
    return (ev - eq).pow(2)[pair_mask].mean()


def vc_infonce(pred: Any, target: Any, video_index: Any, temperature: float) -> Any:
    """Contrastive Eq. 2 over the batch, per sentence [Q]: -log softmax_j(cos(pred_i, target_j)
    / temperature) at j = i. The other sentences' targets are the negatives, except those of the
    same video (masked out: under scope=video they probe the same frames, so they are not
    wrong answers). A constant target is no minimum here (the loss is then log of the number of
    videos), which is why this form cannot collapse the way the squared distance can."""
    import torch
    import torch.nn.functional as F

    logits = F.normalize(pred, dim=-1, eps=1e-8) @ F.normalize(target, dim=-1, eps=1e-8).t()
    logits = logits / temperature
    same = video_index[:, None] == video_index[None, :]
    own = torch.eye(len(video_index), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & ~own, float("-inf"))
    return -logits.log_softmax(-1).diagonal()


def variance_hinge(x: Any, floor: float, reduction: str, eps: float = 1e-4) -> Any:
    """VICReg's variance term: relu(floor - sqrt(var + eps)) per dimension, the variance taken
    over the rows (the batch, unbiased), then summed or averaged over the dims like Eq. 2's
    distance (so a weight of 1 keeps VICReg's 1:1 balance with it either way). Zero once every
    dimension's spread over the batch reaches `floor`; its gradient pushes a collapsing target
    apart. None for fewer than two rows."""
    import torch

    if x.shape[0] < 2:
        return None
    hinge = torch.relu(floor - torch.sqrt(x.var(0) + eps))
    return hinge.sum() if reduction == "sum" else hinge.mean()
