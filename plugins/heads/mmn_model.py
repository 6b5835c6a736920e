"""The MMN grounding head (Mutual Matching Network, AAAI 2022) on per-frame CLIP features.

Interface (what the training / evaluation / retrieval stages call):

    head = get_component("head", "mmn").build({"preset": "charades"}, video_dim=512, text_dim=512)
    out = head(video_feats, video_mask, sent_feats, sent_to_video)          # -> MMNOutputs
    terms = head.loss(out, MMNTargets(moments, durations), epoch)           # -> dict of tensors
    moments = head.decode(out, durations, nms_thresh=None, top_k=None)      # -> list[list[Moment]]
    ranked = head.rank(out, durations, nms_thresh=None, top_k=None)         # -> RankedMoments
    props = head.encode_proposals(video_feats, video_mask)  # query-independent, per valid cell
    scores = head.score_proposals(props, head.encode_queries(sent_feats))   # [Q, *props lead]

- video_feats [B, T, D]: per-frame features (CLIP image embeddings), valid frames first;
  video_mask [B, T] bool, True on valid frames (None: all valid).
- sent_feats [Q, Dt]: one vector per sentence from the (trainable) text encoder, which is not
  part of the head; sent_to_video [Q] long: the batch slot (0..B-1) of each sentence's video.
  Slots are distinct videos for the contrastive negatives.
- MMNTargets: moments [Q, 2] ground-truth seconds (clipped to [0, duration]), durations [B].
- loss(...) returns {"loss": total, "iou": L_iou, "vid": L_vid, "sent": L_sent,
  "contrastive_weight": w} with total = L_iou + w (L_vid + L_sent), w per MMN's schedule.
- decode / rank: fused score, valid cells to seconds, greedy NMS (vdi_plugins.heads.cells), ranked.
  `durations` are per video [B]. `rank` keeps float32 arrays (what evaluation uses).
- The index contract (library search): MMN is a metric-learning head, so a video's proposals in
  the joint spaces depend on the video alone. `encode_proposals` gives, per valid cell, the
  L2-normalised iou-space and contrastive-space vectors {"iou", "con"} [B, C, J];
  `encode_queries` the normalised sentence vectors; `score_proposals` the test-time fused score
  (0.5 cos_con + 0.5) ** score_pow * sigmoid(10 cos_iou) in float64, cast to float32.
  `fused_scores` (evaluation, retrieval) goes through the same function, so evaluation,
  `vdi retrieve` and `vdi search` share one scoring path. `search_vectors` / `search_query`
  give one unit vector per proposal / sentence whose inner product is the mean of the two
  cosines, and `score_bound(ip)` an upper bound of the fused score over every proposal with that
  inner product or less: what lets an exact index stop early.

Structure (mmn.md section 3): L2-normalise frames, average into num_pre_clips segments exactly as
MMN's `utils.avgfeats`; [1x1 conv + ReLU only with pool_linear]; AvgPool1d -> N clips; sparse
2D map by max pooling; proposal conv stack (Conv2d + BN + ReLU, each output multiplied by
1 / valid cells in its receptive field); 1x1 convs to the iou and contrastive joint spaces. Text:
LayerNorm + two Linear projections. Scores: sigmoid(10 cos) * mask (iou), cos * mask
(contrastive). Everything follows the module's device (the reference hard-codes cuda).
Submodule methods (`prepool`, `pool`, `map2d`, `proposals`, `project_text`, `scores`) are what
forward composes, exposed so benchmarks can time each component.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vdi_cli.types import Moment
from vdi_plugins.heads.cells import CellMapHead, RankedMoments, cell_mask, decode_cells
from vdi_plugins.heads.mmn_config import MMNConfig, MMNParams, resolve
from vdi_plugins.heads.mmn_loss import (
    contrastive_weight,
    iou2d_targets,
    iou_bce_loss,
    mutual_contrastive_loss,
)


@dataclass
class MMNOutputs:
    iou_scores: torch.Tensor  # [Q, N, N] sigmoid(10 cos) * mask
    contrastive_scores: torch.Tensor  # [Q, N, N] cos * mask
    map_iou: torch.Tensor  # [B, J, N, N]
    map_con: torch.Tensor  # [B, J, N, N]
    sent_iou: torch.Tensor  # [Q, J]
    sent_con: torch.Tensor  # [Q, J]
    sent_to_video: torch.Tensor  # [Q]


@dataclass
class MMNTargets:
    moments: torch.Tensor  # [Q, 2] seconds
    durations: torch.Tensor  # [B] seconds


def avgfeats_weights(lengths: torch.Tensor, frames: int, segments: int) -> torch.Tensor:
    """[B, segments, frames] averaging matrix of MMN's `avgfeats` for videos of `lengths` frames.

    Segment k spans [round(k / P * L), round((k + 1) / P * L)) (float32, round half to even,
    indices clamped to L - 1): the mean of its frames, or the single frame at its start if empty.
    """
    dev = lengths.device
    lf = lengths.to(torch.float32)
    idx = (torch.arange(0, segments + 1, 1.0, device=dev) / segments)[None, :] * lf[:, None]
    idx = torch.minimum(idx.round().long(), (lengths - 1).long()[:, None])
    s, e = idx[:, :-1, None], idx[:, 1:, None]  # [B, P, 1]
    t = torch.arange(frames, device=dev)[None, None, :]
    inside = (t >= s) & (t < e)
    count = (e - s).clamp(min=1).to(torch.float32)
    single = (t == s) & (e <= s)
    return inside.to(torch.float32) / count + single.to(torch.float32)


def frame_delta(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, T, D] -> x[t+1] - x[t-1] within each video's valid prefix (the ends repeat the end
    frame: a one-sided difference there; a one-frame video gets 0); padding rows stay 0."""
    b, t, _ = x.shape
    idx = torch.arange(t, device=x.device)[None, :]
    last = (lengths - 1).clamp(min=0)[:, None]
    nxt = torch.minimum(idx + 1, last).clamp(min=0)
    prev = torch.minimum((idx - 1).clamp(min=0), last)
    gather = lambda i: torch.gather(x, 1, i[..., None].expand(b, t, x.shape[-1]))  # noqa: E731
    valid = (idx < lengths[:, None]).to(x.dtype)[..., None]
    return (gather(nxt) - gather(prev)) * valid


def pooled_map_plan(
    num_clips: int, pooling_counts: Sequence[int]
) -> list[tuple[int, int, int, int]]:
    """(pool kernel, pool stride, offset, start step) of each max-pooling step, in order: the
    step fills cells (i, i + offset) for i = 0, step, 2 step, ... < num_clips - offset."""
    plan, offset, stride = [], 0, 1
    for g, count in enumerate(pooling_counts):
        for k in range(count):
            offset += stride
            kernel, pool_stride = (3, 2) if (g and not k) else (2, 1)
            plan.append((kernel, pool_stride, offset, stride))
        stride *= 2
    return plan


class MMNHead(CellMapHead, nn.Module):
    def __init__(self, params: MMNParams, video_dim: int = 512, text_dim: int | None = None):
        super().__init__()
        p = self.params = params
        n = p.num_clips
        text_dim = text_dim or video_dim
        self.video_dim, self.text_dim = video_dim, text_dim
        frame_dim = video_dim * (2 if p.temporal_delta > 0 else 1)
        self.pool_conv = nn.Conv1d(frame_dim, p.pool_hidden, 1) if p.pool_linear else None
        pool_out = p.pool_hidden if p.pool_linear else frame_dim
        map_dim = pool_out * (2 if p.span_delta > 0 else 1)
        self.register_buffer("mask2d", torch.from_numpy(cell_mask(n, p.pooling_counts)),
                             persistent=False)
        self._plan = pooled_map_plan(n, p.pooling_counts)
        flat = [torch.arange(n) * (n + 1)]  # the diagonal, then each pooled diagonal
        for _, _, offset, step in self._plan:
            rows = torch.arange(0, n - offset, step)
            flat.append(rows * n + rows + offset)
        self.register_buffer("_flat_cells", torch.cat(flat), persistent=False)
        # proposal conv stack; only the first layer is padded so the output stays N x N
        k, layers = p.conv_kernel, p.conv_layers
        first_pad = (k - 1) * layers // 2
        self.convs = nn.ModuleList(
            [nn.Conv2d(map_dim, p.hidden_size, k, padding=first_pad)]
            + [nn.Conv2d(p.hidden_size, p.hidden_size, k) for _ in range(layers - 1)]
        )
        self.bns = nn.ModuleList([nn.BatchNorm2d(p.hidden_size) for _ in range(layers)])
        mask = self.mask2d[None, None].float()
        for i, conv in enumerate(self.convs):
            count = torch.round(F.conv2d(mask, torch.ones(1, 1, k, k), padding=conv.padding))
            weight = torch.where(count > 0, 1.0 / count.clamp(min=1), torch.zeros_like(count))
            self.register_buffer(f"_weight{i}", weight[0, 0], persistent=False)
            mask = (weight > 0).float()  # the mask propagates: next layer's valid inputs
        self.conv_iou = nn.Conv2d(p.hidden_size, p.joint_size, 1)
        self.conv_con = nn.Conv2d(p.hidden_size, p.joint_size, 1)
        self.text_norm = nn.LayerNorm(text_dim)
        self.text_iou = nn.Linear(text_dim, p.joint_size)
        self.text_con = nn.Linear(text_dim, p.joint_size)

    # ---- components -------------------------------------------------------------------------
    def layer_weight(self, i: int) -> torch.Tensor:
        """The per-cell weight after proposal conv layer i: 1 / valid cells in the receptive
        field, 0 where none (computed from the propagated mask, as MMN)."""
        return getattr(self, f"_weight{i}")

    def prepool(self, video_feats: torch.Tensor, video_mask: torch.Tensor | None) -> torch.Tensor:
        """[B, T, D] frames -> [B, num_pre_clips, D]: L2-normalise, average into segments."""
        b, t, _ = video_feats.shape
        if video_mask is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=video_feats.device)
        else:
            m = video_mask.to(torch.bool)
            lengths = m.sum(1)
            prefix = torch.arange(t, device=m.device)[None, :] < lengths[:, None]
            if not torch.equal(prefix, m):
                raise ValueError("video_mask must mark a prefix of valid frames per video")
        if bool((lengths < 1).any()):
            raise ValueError("every video needs at least one frame")
        weights = avgfeats_weights(lengths, t, self.params.num_pre_clips)
        x = F.normalize(video_feats, dim=-1)
        if self.params.temporal_delta > 0:
            x = torch.cat([x, self.params.temporal_delta * frame_delta(x, lengths)], dim=-1)
        return weights.to(x.dtype) @ x

    def pool(self, segments: torch.Tensor) -> torch.Tensor:
        """[B, P, D] -> [B, D', N] clip features ([1x1 conv + ReLU], AvgPool1d)."""
        x = segments.transpose(1, 2)
        if self.pool_conv is not None:
            x = self.pool_conv(x).relu()
        p = self.params
        return F.avg_pool1d(x, p.pool_kernel, p.num_pre_clips // p.num_clips)

    def map2d(self, clips: torch.Tensor) -> torch.Tensor:
        """[B, D, N] -> sparse 2D map [B, D, N, N]: cell (i, j) = max over clips i..j (valid
        cells), zeros elsewhere. With span_delta s > 0, [B, 2D, N, N]: s * (clip j - clip i)
        follows on the valid cells, since the max keeps no order (moved left or right?)."""
        b, d, n = clips.shape
        parts, x = [clips], clips
        for kernel, stride, _, _ in self._plan:
            x = F.max_pool1d(x, kernel, stride)
            parts.append(x)
        out = clips.new_zeros(b, d, n * n)
        out.index_copy_(2, self._flat_cells, torch.cat(parts, dim=2))  # one scatter
        out = out.view(b, d, n, n)
        if self.params.span_delta > 0:
            span = (clips[:, :, None, :] - clips[:, :, :, None]) * self.mask2d.to(clips.dtype)
            out = torch.cat([out, self.params.span_delta * span], dim=1)
        return out

    def proposals(self, map2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Proposal conv stack -> (contrastive map, iou map), each [B, J, N, N]."""
        x = map2d
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            x = bn(conv(x)).relu() * self.layer_weight(i)
        return self.conv_con(x), self.conv_iou(x)

    def project_text(self, sent_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[Q, Dt] -> (iou-space, contrastive-space) sentence vectors, each [Q, J]."""
        x = self.text_norm(sent_feats)
        return self.text_iou(x), self.text_con(x)

    def cosine_maps(
        self, video_map: torch.Tensor, sent: torch.Tensor, sent_to_video: torch.Tensor
    ) -> torch.Tensor:
        """cos(sentence q, cell of video sent_to_video[q]) -> [Q, N, N] (one matmul per video)."""
        b, j, n, _ = video_map.shape
        v = F.normalize(video_map.reshape(b, j, n * n), dim=1)
        s = F.normalize(sent, dim=1)
        out = sent.new_empty(sent.shape[0], n * n)
        for video in torch.unique(sent_to_video).tolist():
            rows = (sent_to_video == video).nonzero().squeeze(1)
            out[rows] = s[rows] @ v[video]
        return out.reshape(-1, n, n)

    def scores(
        self, map_iou: torch.Tensor, map_con: torch.Tensor, sent_iou: torch.Tensor,
        sent_con: torch.Tensor, sent_to_video: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.mask2d.to(sent_iou.dtype)
        iou = (self.cosine_maps(map_iou, sent_iou, sent_to_video) * 10).sigmoid() * mask
        con = self.cosine_maps(map_con, sent_con, sent_to_video) * mask
        return iou, con

    # ---- the interface ------------------------------------------------------------------------
    def forward(
        self,
        video_feats: torch.Tensor,
        video_mask: torch.Tensor | None,
        sent_feats: torch.Tensor,
        sent_to_video: torch.Tensor,
    ) -> MMNOutputs:
        s2v = sent_to_video.to(video_feats.device, torch.long)
        if s2v.numel() and (int(s2v.min()) < 0 or int(s2v.max()) >= video_feats.shape[0]):
            raise ValueError("sent_to_video holds an index outside the batch of videos")
        clips = self.pool(self.prepool(video_feats, video_mask))
        map_con, map_iou = self.proposals(self.map2d(clips))
        sent_iou, sent_con = self.project_text(sent_feats)
        iou, con = self.scores(map_iou, map_con, sent_iou, sent_con, s2v)
        return MMNOutputs(iou, con, map_iou, map_con, sent_iou, sent_con, s2v)

    def loss(
        self, outputs: MMNOutputs, targets: MMNTargets | Mapping[str, Any], epoch: int
    ) -> dict[str, Any]:
        """MMN's loss terms for one batch at (1-based) `epoch`; "loss" is what to backpropagate."""
        p = self.params
        if isinstance(targets, Mapping):
            targets = MMNTargets(targets["moments"], targets["durations"])
        dev = outputs.iou_scores.device
        moments = torch.as_tensor(targets.moments, dtype=torch.float32, device=dev)
        durations = torch.as_tensor(targets.durations, dtype=torch.float32, device=dev)
        iou2d = iou2d_targets(moments, durations[outputs.sent_to_video], p.num_clips)
        l_iou = iou_bce_loss(outputs.iou_scores, iou2d, self.mask2d, p.min_iou, p.max_iou)
        l_vid, l_sent = mutual_contrastive_loss(
            outputs.map_con, outputs.sent_con, outputs.sent_to_video, iou2d, moments,
            self.mask2d, num_positive=p.num_positive, margin=p.margin, tau_video=p.tau_video,
            tau_sent=p.tau_sent, negative_video_iou=p.negative_video_iou,
            sent_removal_iou=p.sent_removal_iou,
        )
        w = contrastive_weight(epoch, p.contrastive_weight, p.only_iou, p.late_factor)
        return {"loss": l_iou + w * (l_vid + l_sent), "iou": l_iou, "vid": l_vid,
                "sent": l_sent, "contrastive_weight": w}

    # ---- the index contract -----------------------------------------------------------------
    def encode_proposals(self, video_feats: torch.Tensor, video_mask: torch.Tensor | None = None
                         ) -> dict[str, torch.Tensor]:
        """Query-independent proposal vectors of the valid cells (row-major): {"iou", "con"},
        each [B, C, J] float32, L2-normalised."""
        clips = self.pool(self.prepool(video_feats, video_mask))
        map_con, map_iou = self.proposals(self.map2d(clips))
        return {"iou": self._cell_vectors(map_iou), "con": self._cell_vectors(map_con)}

    def _cell_vectors(self, video_map: torch.Tensor) -> torch.Tensor:
        b, j, n, _ = video_map.shape
        cells = video_map.reshape(b, j, n * n)[:, :, self.mask2d.reshape(-1)]
        return F.normalize(cells.float(), dim=1).transpose(1, 2).contiguous()

    def encode_queries(self, sent_feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sentence vectors in the two joint spaces: {"iou", "con"}, each [Q, J], normalised."""
        sent_iou, sent_con = self.project_text(sent_feats)
        return {"iou": F.normalize(sent_iou.float(), dim=-1),
                "con": F.normalize(sent_con.float(), dim=-1)}

    def fuse(self, cos_iou: np.ndarray, cos_con: np.ndarray, score_pow: float | None = None
             ) -> np.ndarray:
        """MMN's test-time score from the two cosines (float64 in, float32 out)."""
        pw = self.params.score_pow if score_pow is None else score_pow
        iou = 1.0 / (1.0 + np.exp(-10.0 * cos_iou))
        base = np.maximum(0.5 * cos_con + 0.5, 0.0)
        return (np.power(base, pw) * iou).astype(np.float32)

    def score_proposals(self, proposals: Mapping[str, Any], queries: Mapping[str, Any],
                        score_pow: float | None = None) -> np.ndarray:
        """Fused scores [Q, *lead] of every sentence against every proposal ([*lead, J])."""
        cos = {k: _cosines(proposals[k], queries[k]) for k in ("iou", "con")}
        return self.fuse(cos["iou"], cos["con"], score_pow)

    def search_vectors(self, proposals: Mapping[str, Any]) -> np.ndarray:
        """[*, 2J] float32 unit vectors: (iou, con) / sqrt 2; inner product = mean cosine."""
        return _joined(proposals)

    def search_query(self, queries: Mapping[str, Any]) -> np.ndarray:
        return _joined(queries)

    def score_bound(self, ip: np.ndarray, score_pow: float | None = None) -> np.ndarray:
        """An upper bound of the fused score of any proposal whose `search_vectors` inner
        product with the query is at most `ip`: the cosines c (con) and i (iou) satisfy
        (c + i) / 2 <= ip and both <= 1, and the score grows with both, so on a grid of c the
        score at (c_{k+1}, 2 ip - c_k) bounds every point between c_k and c_{k+1}."""
        grid = np.linspace(-1.0, 1.0, 1025)
        p = np.asarray(ip, dtype=np.float64).reshape(-1, 1) + 1e-5  # float32 search slack
        i = np.clip(2 * p - grid[None, :-1], -1.0, 1.0)
        c = np.broadcast_to(grid[None, 1:], i.shape)
        bound = self.fuse(i, c, score_pow).astype(np.float64).max(1)
        return bound.reshape(np.shape(ip))

    @torch.no_grad()
    def fused_scores(self, outputs: MMNOutputs, score_pow: float | None = None) -> torch.Tensor:
        """[Q, C] test-time scores on the valid cells (row-major order): each sentence against
        its own video's proposals, through `score_proposals`."""
        props = {"iou": self._cell_vectors(outputs.map_iou),
                 "con": self._cell_vectors(outputs.map_con)}
        queries = {"iou": F.normalize(outputs.sent_iou.float(), dim=-1),
                   "con": F.normalize(outputs.sent_con.float(), dim=-1)}
        s2v = outputs.sent_to_video.cpu()
        out = np.zeros((len(s2v), int(self.mask2d.sum())), np.float32)
        for video in torch.unique(s2v).tolist():
            rows = (s2v == video).nonzero().squeeze(1)
            out[rows.numpy()] = self.score_proposals(
                {k: v[video] for k, v in props.items()}, {k: v[rows] for k, v in queries.items()},
                score_pow)
        return torch.from_numpy(out)

    def rank(
        self, outputs: MMNOutputs, durations: Any, nms_thresh: float | None = None,
        top_k: int | None = None, score_pow: float | None = None,
    ) -> RankedMoments:
        """Ranked windows of every sentence (float32 arrays); `durations` per video [B]."""
        p = self.params
        d = torch.as_tensor(durations).detach().to("cpu", torch.float64).reshape(-1)
        per_query = d[outputs.sent_to_video.cpu()].numpy()
        scores = self.fused_scores(outputs, score_pow).numpy()
        thresh = p.nms_thresh if nms_thresh is None else nms_thresh
        return decode_cells(scores, per_query, p.num_clips, p.pooling_counts, thresh, top_k)

    def decode(
        self, outputs: MMNOutputs, durations: Any, nms_thresh: float | None = None,
        top_k: int | None = None, score_pow: float | None = None,
    ) -> list[list[Moment]]:
        """Per sentence, its moments (seconds, fused score) after NMS, best first."""
        return self.rank(outputs, durations, nms_thresh, top_k, score_pow).to_moments()


def _cosines(vectors: Any, queries: Any) -> np.ndarray:
    """[Q, *lead] float64 inner products of unit vectors [*lead, J] with queries [Q, J]."""
    v = np.asarray(torch.as_tensor(vectors).detach().cpu(), dtype=np.float64)
    q = np.asarray(torch.as_tensor(queries).detach().cpu(), dtype=np.float64)
    lead = v.shape[:-1]
    return (q @ v.reshape(-1, v.shape[-1]).T).reshape(q.shape[0], *lead)


def _joined(parts: Mapping[str, Any]) -> np.ndarray:
    both = [np.asarray(torch.as_tensor(parts[k]).detach().cpu(), dtype=np.float32)
            for k in ("iou", "con")]
    return (np.concatenate(both, axis=-1) / np.float32(np.sqrt(2.0))).astype(np.float32)


def build_mmn(
    config: MMNConfig | dict[str, Any] | None = None, video_dim: int = 512,
    text_dim: int | None = None, **_: Any,
) -> MMNHead:
    """The `mmn` head factory: `get_component("head", "mmn").build(cfg, video_dim=, text_dim=)`."""
    return MMNHead(resolve(config), video_dim=video_dim, text_dim=text_dim)
