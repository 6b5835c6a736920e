"""`clip-similarity`: a training-free grounding head (`vdi retrieve` without a checkpoint).

It scores every candidate moment of a 2D map by how much more the query matches the frames
inside the moment than the frames around it:

    frame similarity  s_t   = cos(sentence, frame t)        (CLIP's joint space, no parameters)
    clip similarity   c_k   = mean of s_t over the frames of clip k (N equal clips of the video)
    cell score (i, j) = mean(c_i..c_j) - context * mean(c outside i..j)

Cells (i, j), i <= j < i + max_clips, are the moments [i, j + 1] * duration / N, decoded with the
same greedy NMS as MMN (`vdi_plugins.heads.cells.decode_cells`). The whole-video cell has no
outside; its outside mean is taken as its inside mean (score (1 - context) * mean: 0 by
default), so the head never prefers "the whole video" for lack of contrast.

It has MMN's interface (forward / fused_scores / rank / decode, `params.num_clips`,
`params.nms_thresh`, `mask2d`), so the retrieval code is shared; `loss` refuses: nothing to train.

The score is linear in the normalised sentence: cell score = s . v_cell with v_cell = sum over
clips of a_cell,k * (mean of the normalised frames of clip k), a_cell,k = 1 / |inside| inside the
cell and -context / |outside| outside it. So the index contract is exact with one space:
`encode_proposals` gives {"cell": v_cell} [B, C, D], `score_proposals` the inner products
(float64, cast to float32), `search_vectors` the same vectors, and `score_bound(ip)` is ip.
Frames are split into clips by their centres: frame t of L belongs to clip floor((t + 0.5) N / L);
a clip that receives no frame (L < N) takes the frame whose centre is nearest to its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vdi_cli.errors import VdiError
from vdi_cli.types import Moment
from vdi_plugins.heads.cells import CellMapHead, RankedMoments, cell_mask, decode_cells
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


class SimilarityHead(CellMapHead, nn.Module):
    """No parameters: CLIP text-frame cosine similarity on a 2D map of candidate moments."""

    def __init__(self, params: SimilarityParams) -> None:
        super().__init__()
        self.params = params
        self.register_buffer(
            "mask2d", torch.from_numpy(cell_mask(params.num_clips, params.pooling_counts)),
            persistent=False)
        self._cell_weights: torch.Tensor | None = None

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
        props = self._cells(v, frame_ok, lengths)
        scores = torch.zeros(len(s2v), n * n)
        for video in torch.unique(s2v).tolist():
            rows = (s2v == video).nonzero().squeeze(1)
            scores[rows.cpu()[:, None], self.mask2d.reshape(-1).cpu().nonzero().squeeze(1)] = \
                torch.from_numpy(self.score_proposals({"cell": props[video]}, {"cell": s[rows]}))
        return SimilarityOutputs(scores.reshape(-1, n, n), sims, clip_sims, s2v)

    # ---- the index contract -----------------------------------------------------------------
    def cell_weights(self) -> torch.Tensor:
        """[C, N]: a valid cell's score as a combination of clip similarities (inside mean minus
        context x outside mean; the whole-video cell's outside is its inside)."""
        if self._cell_weights is not None:
            return self._cell_weights
        n, context = self.params.num_clips, self.params.context
        cells = self.mask2d.nonzero().cpu()
        out = torch.zeros(len(cells), n, dtype=torch.float64)
        for row, (i, j) in enumerate(cells.tolist()):
            inside = torch.zeros(n, dtype=torch.bool)
            inside[i : j + 1] = True
            k = int(inside.sum())
            if k == n:
                out[row] = (1.0 - context) / n
            else:
                out[row, inside] = 1.0 / k
                out[row, ~inside] = -context / (n - k)
        self._cell_weights = out
        return out

    def _cells(self, v: torch.Tensor, frame_ok: torch.Tensor, lengths: torch.Tensor
               ) -> torch.Tensor:
        """[B, C, D] cell vectors from normalised frames [B, T, D]."""
        weights = clip_weights(lengths, v.shape[1], self.params.num_clips)  # [B, N, T]
        clips = torch.einsum("bnt,btd->bnd", weights.double(), (v * frame_ok[..., None]).double())
        return torch.einsum("cn,bnd->bcd", self.cell_weights().to(clips.device), clips).float()

    def encode_proposals(self, video_feats: torch.Tensor, video_mask: torch.Tensor | None = None
                         ) -> dict[str, torch.Tensor]:
        """{"cell": [B, C, D]}: the cell vectors of each video (valid cells, row-major)."""
        b, t, _ = video_feats.shape
        frame_ok = (torch.ones(b, t, dtype=torch.bool, device=video_feats.device)
                    if video_mask is None else video_mask.to(torch.bool))
        v = F.normalize(video_feats.float(), dim=-1)
        return {"cell": self._cells(v, frame_ok, frame_ok.sum(1))}

    def encode_queries(self, sent_feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"cell": F.normalize(sent_feats.float(), dim=-1)}

    def score_proposals(self, proposals: Mapping[str, Any], queries: Mapping[str, Any],
                        score_pow: float | None = None) -> np.ndarray:
        """[Q, *lead] float32: inner products (in float64) of sentences and cell vectors."""
        v = np.asarray(torch.as_tensor(proposals["cell"]).detach().cpu(), dtype=np.float64)
        q = np.asarray(torch.as_tensor(queries["cell"]).detach().cpu(), dtype=np.float64)
        return (q @ v.reshape(-1, v.shape[-1]).T).reshape(q.shape[0], *v.shape[:-1]).astype(
            np.float32)

    def search_vectors(self, proposals: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(torch.as_tensor(proposals["cell"]).detach().cpu(), dtype=np.float32)

    def search_query(self, queries: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(torch.as_tensor(queries["cell"]).detach().cpu(), dtype=np.float32)

    def score_bound(self, ip: np.ndarray, score_pow: float | None = None) -> np.ndarray:
        """The score is the inner product: the bound is `ip` (plus float32 slack)."""
        return np.asarray(ip, dtype=np.float64) + 1e-5

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
        return outputs.scores[:, self.mask2d.cpu()].float().cpu()

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
