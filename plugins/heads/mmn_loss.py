"""MMN's training losses (MMN `loss.py` / `trainer.py`, ../shared/reference/mmn.md section 4).

- `iou2d_targets`: the IoU of every cell's moment [i, j + 1] * duration / N with the ground truth,
  in float32 with the reference's operation order.
- `iou_bce_loss`: BCE between sigmoid(10 cos) and clamp((IoU - min) / (max - min), 0, 1), averaged
  over the valid cells of every sentence.
- `mutual_contrastive_loss`: (L_vid, L_sent), vectorised over the batch (the reference loops over
  videos; tests compare with a port of that loop). Both use L2-normalised features, the top-k
  cells by IoU as positives and cos - margin as the positive score.
  * video side: the positive proposal against every sentence of the batch (its own with the
    margin); other sentences of the same video whose moments overlap it with IoU >= 0.5 are
    removed (truly: multiplied out of the sum).
  * sentence side: the sentence against its positive plus every valid proposal of every other
    video plus the same video's proposals with IoU < 0.5. Reference quirk kept: same-video
    proposals with IoU >= 0.5 (the positive included) are zeroed, not removed, so each adds
    exp(0) = 1 to the denominator. eps 1e-6 inside the log.
  The sums are computed with logsumexp (same value, no overflow) instead of exp / log.
- `contrastive_weight`: the schedule: weight while epoch <= only_iou (epochs count from 1), then
  weight * 0.01 (down-weighted, not removed, whatever the reference's log line says).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def iou2d_targets(moments: torch.Tensor, durations: torch.Tensor, num_clips: int) -> torch.Tensor:
    """[Q, 2] ground-truth seconds, [Q] durations -> [Q, N, N] IoU with every cell's moment."""
    n = num_clips
    dev = moments.device
    grid = torch.arange(n, device=dev, dtype=torch.float32)
    d = durations.to(dev, torch.float32).reshape(-1, 1, 1)
    start = (grid.reshape(1, n, 1) * d) / n  # [Q, N, 1]: row i starts at i * d / N
    end = ((grid + 1).reshape(1, 1, n) * d) / n  # [Q, 1, N]: column j ends at (j + 1) * d / N
    s = moments[:, 0].to(torch.float32).reshape(-1, 1, 1)
    e = moments[:, 1].to(torch.float32).reshape(-1, 1, 1)
    inter = torch.minimum(end, e) - torch.maximum(start, s)
    union = torch.maximum(end, e) - torch.minimum(start, s)
    return inter.clamp(min=0) / union


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU [n, m] of windows a [n, 2], b [m, 2] (the reference's `box_iou`)."""
    inter = (torch.minimum(a[:, None, 1], b[:, 1]) - torch.maximum(a[:, None, 0], b[:, 0]))
    inter = inter.clamp(min=0)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0]) - inter
    return inter / union


def iou_bce_loss(
    iou_scores: torch.Tensor,
    iou2d: torch.Tensor,
    mask2d: torch.Tensor,
    min_iou: float,
    max_iou: float,
) -> torch.Tensor:
    """Mean BCE over the valid cells of every sentence, targets linearly scaled and clamped."""
    scores = iou_scores[:, mask2d]
    target = ((iou2d[:, mask2d] - min_iou) / (max_iou - min_iou)).clamp(0, 1)
    return F.binary_cross_entropy(scores, target)


def mutual_contrastive_loss(
    map_con: torch.Tensor,
    sent_con: torch.Tensor,
    sent_to_video: torch.Tensor,
    iou2d: torch.Tensor,
    moments: torch.Tensor,
    mask2d: torch.Tensor,
    *,
    num_positive: int = 1,
    margin: float = 0.4,
    tau_video: float = 0.1,
    tau_sent: float = 0.1,
    negative_video_iou: float = 0.5,
    sent_removal_iou: float = 0.5,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_vid, L_sent). map_con [B, J, N, N]; sent_con [Q, J]; sent_to_video [Q] (batch slot of
    each sentence's video); iou2d [Q, N, N]; moments [Q, 2] seconds; mask2d [N, N] bool."""
    q = sent_con.shape[0]
    dev = sent_con.device
    s2v = sent_to_video.to(dev, torch.long)
    feat1d = F.normalize(map_con[:, :, mask2d], dim=1)  # [B, J, C]
    sent = F.normalize(sent_con, dim=1)  # [Q, J]
    iou1d = iou2d[:, mask2d]  # [Q, C]
    top = iou1d.topk(num_positive, dim=1).indices  # [Q, k]
    pos_feat = feat1d[s2v[:, None], :, top]  # [Q, k, J]
    pos = (pos_feat * sent[:, None, :]).sum(-1) - margin  # [Q, k]: cos - margin

    # video side: the positive proposal against every sentence of the batch
    eye = torch.eye(q, dtype=torch.bool, device=dev)
    vid_neg = pos_feat @ sent.t() - margin * eye.to(sent.dtype)[:, None, :]  # [Q, k, Q]
    same = s2v[:, None] == s2v[None, :]
    overlap = box_iou(moments.to(torch.float32), moments.to(torch.float32))
    keep = ~same | (overlap < sent_removal_iou) | eye  # [Q, Q]
    vid_lse = torch.logsumexp((vid_neg / tau_video).masked_fill(~keep[:, None, :], -math.inf), -1)
    loss_vid = -(pos / tau_video - vid_lse).mean()

    # sentence side: the sentence against its positive and the proposals of the batch
    sims = torch.einsum("qj,bjc->qbc", sent, feat1d)  # [Q, B, C]
    low = (iou1d < negative_video_iou).to(sims.dtype)  # same-video negatives; others x0 (quirk)
    rows = torch.arange(q, device=dev)
    factor = torch.ones_like(sims)
    factor[rows, s2v] = low
    neg_lse = torch.logsumexp((sims * factor).reshape(q, -1) / tau_sent, dim=1)  # [Q]
    total = torch.logaddexp(pos / tau_sent, neg_lse[:, None])  # log(exp(pos) + sum exp(neg))
    log_denominator = torch.logaddexp(total, torch.full_like(total, math.log(eps)))
    loss_sent = -(pos / tau_sent - log_denominator).mean()
    return loss_vid, loss_sent


def contrastive_weight(
    epoch: int, weight: float, only_iou: int, late_factor: float = 0.01
) -> float:
    """MMN's schedule: `weight` while epoch <= only_iou (1-based epochs), then x late_factor."""
    return weight if epoch <= only_iou else weight * late_factor
