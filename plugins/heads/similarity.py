"""`clip-similarity`: a training-free grounding head (`vdi retrieve` without a checkpoint).

It scores every candidate moment of a 2D map by how much more the query matches the frames
inside the moment than the frames around it:

    frame similarity  s_t   = cos(sentence, frame t)        (CLIP's joint space, no parameters)
    clip similarity   c_k   = mean of s_t over the frames of clip k (N equal clips of the video)
    cell score (i, j) = mean(c_i..c_j) - context * mean(c outside i..j)

Cells (i, j), i <= j < i + max_clips, are the moments [i, j + 1] * duration / N, decoded with the
same greedy NMS as MMN (`vdi_cli.grounding.decode_cells`). The whole-video cell has no outside;
its outside mean is taken as its inside mean (score (1 - context) * mean: 0 by default), so the
head never prefers "the whole video" for lack of contrast.

It has MMN's interface (forward / fused_scores / rank / decode, `params.num_clips`,
`params.nms_thresh`, `mask2d`), so the retrieval code is shared; `loss` refuses: nothing to train.
Frames are split into clips by their centres: frame t of L belongs to clip floor((t + 0.5) N / L);
a clip that receives no frame (L < N) takes the frame whose centre is nearest to its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vdi_cli.errors import VdiError
from vdi_cli.grounding import RankedMoments, cell_mask, decode_cells
from vdi_cli.types import Moment
from vdi_plugins.heads.similarity_config import SimilarityConfig


@dataclass(frozen=True)
class SimilarityParams:
    num_clips: int
    pooling_counts: tuple[int, ...]  # (max_clips - 1,): every cell up to that length
    context: float
    nms_thresh: float


@dataclass
class SimilarityOutputs:
    scores: torch.Tensor  # [Q, N, N] cell scores, 0 outside the mask
    frame_sims: torch.Tensor  # [Q, T] cosine of each sentence with its video's frames (0: pad)
    clip_sims: torch.Tensor  # [Q, N]
    sent_to_video: torch.Tensor  # [Q]


def clip_weights(lengths: torch.Tensor, frames: int, clips: int) -> torch.Tensor:
    """[B, clips, frames] averaging matrix: frame t of a video of L frames belongs to clip
    floor((t + 0.5) * clips / L); an empty clip takes frame floor((k + 0.5) * L / clips)."""
    dev = lengths.device
    length = lengths.to(torch.float64).clamp(min=1)[:, None]  # [B, 1]
    t = torch.arange(frames, device=dev, dtype=torch.float64)[None, :]
    owner = torch.floor((t + 0.5) * clips / length).long()  # [B, T]
    valid = t < length
    k = torch.arange(clips, device=dev)[None, :, None]
    inside = (owner[:, None, :] == k) & valid[:, None, :]  # [B, N, T]
    count = inside.sum(-1, keepdim=True)
    nearest = torch.floor((k.to(torch.float64) + 0.5) * length[:, :, None] / clips).long()
    nearest = torch.minimum(nearest, (length[:, :, None] - 1).long())
    single = (t[:, None, :].long() == nearest) & (count == 0)
    w = inside.to(torch.float32) / count.clamp(min=1).to(torch.float32)
    return w + single.to(torch.float32)


class SimilarityHead(nn.Module):
    """No parameters: CLIP text-frame cosine similarity on a 2D map of candidate moments."""

    def __init__(self, params: SimilarityParams) -> None:
        super().__init__()
        self.params = params
        self.register_buffer(
            "mask2d", torch.from_numpy(cell_mask(params.num_clips, params.pooling_counts)),
            persistent=False)

    def forward(
        self,
        video_feats: torch.Tensor,
        video_mask: torch.Tensor | None,
        sent_feats: torch.Tensor,
        sent_to_video: torch.Tensor,
    ) -> SimilarityOutputs:
        b, t, _ = video_feats.shape
        n = self.params.num_clips
        if video_mask is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=video_feats.device)
            frame_ok = torch.ones(b, t, dtype=torch.bool, device=video_feats.device)
        else:
            frame_ok = video_mask.to(torch.bool)
            lengths = frame_ok.sum(1)
        if bool((lengths < 1).any()):
            raise ValueError("every video needs at least one frame")
        s2v = sent_to_video.to(video_feats.device, torch.long)
        v = F.normalize(video_feats.float(), dim=-1)  # [B, T, D]
        s = F.normalize(sent_feats.float().to(video_feats.device), dim=-1)  # [Q, D]
        sims = torch.einsum("qd,qtd->qt", s, v[s2v]) * frame_ok[s2v]  # [Q, T]
        weights = clip_weights(lengths, t, n)  # [B, N, T]
        clip_sims = torch.einsum("qnt,qt->qn", weights[s2v], sims)  # [Q, N]
        prefix = F.pad(clip_sims.cumsum(1), (1, 0))  # [Q, N + 1]
        i = torch.arange(n, device=v.device)
        inside_sum = prefix[:, None, 1:] - prefix[:, :n, None]  # [Q, i, j] = sum c_i..c_j
        inside_n = (i[None, :] - i[:, None] + 1).clamp(min=1).to(torch.float32)  # [i, j]
        inside = inside_sum / inside_n
        outside_n = n - inside_n
        outside = (prefix[:, -1, None, None] - inside_sum) / outside_n.clamp(min=1)
        outside = torch.where(outside_n > 0, outside, inside)
        scores = (inside - self.params.context * outside) * self.mask2d.to(inside.dtype)
        return SimilarityOutputs(scores, sims, clip_sims, s2v)

    def adapt(self, frames: int) -> SimilarityHead:
        """This head with at most `frames` clips: clips finer than the frames would only repeat
        frames (ties, sub-frame moments). Retrieval calls it with a window's frame count."""
        p = self.params
        n = max(2, min(p.num_clips, int(frames)))
        if n == p.num_clips:
            return self
        longest = min((p.pooling_counts[0] + 1) if p.pooling_counts else 1, n)
        return SimilarityHead(replace(p, num_clips=n,
                                      pooling_counts=(longest - 1,) if longest > 1 else ()))

    def loss(self, outputs: Any, targets: Any, epoch: int) -> dict[str, Any]:
        raise VdiError("the clip-similarity head has nothing to train",
                       hint="train the mmn head (--head mmn); clip-similarity is used as is "
                       "by `vdi retrieve`")

    @torch.no_grad()
    def fused_scores(self, outputs: SimilarityOutputs, score_pow: float | None = None
                     ) -> torch.Tensor:
        """[Q, C] scores on the valid cells (row-major order), as MMN's."""
        return outputs.scores[:, self.mask2d].float().cpu()

    def rank(
        self, outputs: SimilarityOutputs, durations: Any, nms_thresh: float | None = None,
        top_k: int | None = None, score_pow: float | None = None,
    ) -> RankedMoments:
        p = self.params
        d = torch.as_tensor(durations, dtype=torch.float64).reshape(-1)
        per_query = d[outputs.sent_to_video.cpu()].numpy()
        thresh = p.nms_thresh if nms_thresh is None else nms_thresh
        return decode_cells(self.fused_scores(outputs).numpy(), per_query, p.num_clips,
                            p.pooling_counts, thresh, top_k)

    def decode(
        self, outputs: SimilarityOutputs, durations: Any, nms_thresh: float | None = None,
        top_k: int | None = None, score_pow: float | None = None,
    ) -> list[list[Moment]]:
        return self.rank(outputs, durations, nms_thresh, top_k).to_moments()


def build_similarity(config: SimilarityConfig | dict[str, Any] | None = None, **_: Any
                     ) -> SimilarityHead:
    """The `clip-similarity` factory (video_dim / text_dim are accepted and ignored)."""
    if config is None or isinstance(config, dict):
        config = SimilarityConfig(**(config or {}))
    n = config.num_clips
    longest = min(config.max_clips or n, n)
    return SimilarityHead(SimilarityParams(n, (longest - 1,) if longest > 1 else (),
                                           float(config.context), float(config.nms_thresh)))
