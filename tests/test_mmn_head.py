"""The `mmn` head: presets, pre-pooling, sparse 2D map, proposal-conv weights, losses, training."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.config import parse_overrides  # noqa: E402
from vdi_cli.errors import ConfigError  # noqa: E402
from vdi_cli.registry import get_component  # noqa: E402
from vdi_plugins.heads.mmn_config import resolve  # noqa: E402
from vdi_plugins.heads.mmn_loss import (  # noqa: E402
    box_iou,
    contrastive_weight,
    iou2d_targets,
    iou_bce_loss,
    mutual_contrastive_loss,
)
from vdi_plugins.heads.mmn_model import avgfeats_weights, frame_delta  # noqa: E402

TINY = {"num_clips": 8, "num_pre_clips": 8, "pool_kernel": 1, "pooling_counts": [2, 2],
        "conv_layers": 2, "conv_kernel": 3, "hidden_size": 16, "joint_size": 8}


def build(**over):
    return get_component("head", "mmn").build({**TINY, **over}, video_dim=12, text_dim=10)


def test_presets_and_overrides():
    c = resolve({})
    assert (c.num_clips, c.pooling_counts, c.conv_layers, c.conv_kernel) == (16, (15,), 8, 5)
    assert (c.num_pre_clips, c.pool_kernel, c.margin, c.contrastive_weight) == (32, 2, 0.4, 0.05)
    a = get_component("head", "mmn").make_config(
        parse_overrides(["preset=activitynet", "margin=0.2"]))
    a = resolve(a)
    assert (a.num_clips, a.pooling_counts, a.conv_layers, a.conv_kernel) == (64, (15, 8, 8), 4, 9)
    assert (a.num_pre_clips, a.pool_kernel, a.margin, a.only_iou) == (256, 4, 0.2, 6)
    assert not a.pool_linear
    with pytest.raises(ConfigError, match="pooling_counts"):
        resolve({"pooling_counts": [15, 8]})  # a stride-2 group does not fit N=16
    with pytest.raises(ConfigError, match="num_clips"):
        resolve({"num_clips": 12})
    with pytest.raises(ConfigError, match="even"):
        resolve({"conv_kernel": 4, "conv_layers": 1})


def test_head_is_registered_by_the_builtin_plugin():
    component = get_component("head", "mmn")
    assert component.plugin == "heads" and component.distribution == "vdi"
    head = build()
    assert head.pool_conv is None  # VDI: no linear layer in the pooling module
    assert build(pool_linear=True, pool_hidden=6).pool_conv.weight.shape == (6, 12, 1)


def _reference_avgfeats(feats, num_pre_clips):  # MMN utils.avgfeats, per video
    n = feats.size(0)
    idxs = (torch.arange(0, num_pre_clips + 1, 1.0) / num_pre_clips * n).round().long()
    idxs = idxs.clamp(max=n - 1)
    out = []
    for i in range(num_pre_clips):
        s, e = idxs[i], idxs[i + 1]
        out.append(feats[s:e].mean(dim=0) if s < e else feats[s])
    return torch.stack(out)


def test_avgfeats_weights_by_hand():
    # T=3, P=4: bounds round([0, .75, 1.5, 2.25, 3]) = [0, 1, 2, 2, 3] (half to even), clamped
    # to 2 -> segments [0,1) [1,2) [2,2) [2,2): frames 0, 1, then the start frame 2 twice
    w = avgfeats_weights(torch.tensor([3]), 3, 4)[0]
    assert w.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]
    # T=5, P=2: bounds [0, 2, 4] (2.5 -> 2, 5 clamped to 4): frame 4 is in no segment (quirk)
    w = avgfeats_weights(torch.tensor([5]), 5, 2)[0]
    assert w.tolist() == [[0.5, 0.5, 0, 0, 0], [0, 0, 0.5, 0.5, 0]]


def test_prepool_matches_the_reference_per_video_with_padding():
    torch.manual_seed(0)
    head = build(num_pre_clips=16, pool_kernel=2)
    feats = torch.randn(3, 50, 12)
    mask = torch.zeros(3, 50, dtype=torch.bool)
    for b, n in enumerate((50, 37, 9)):
        mask[b, :n] = True
    out = head.prepool(feats, mask)
    for b, n in enumerate((50, 37, 9)):
        ref = _reference_avgfeats(torch.nn.functional.normalize(feats[b, :n], dim=1), 16)
        torch.testing.assert_close(out[b], ref, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="prefix"):
        head.prepool(feats, torch.ones(3, 50, dtype=torch.bool).index_fill(1, torch.tensor([0]),
                                                                            False))


def test_frame_delta_by_hand_with_padding():
    # video 0: 4 frames 0, 1, 4, 9 (one dim); video 1: 2 frames then padding
    x = torch.tensor([[[0.0], [1.0], [4.0], [9.0]], [[2.0], [5.0], [7.0], [7.0]]])
    d = frame_delta(x, torch.tensor([4, 2]))
    # central differences inside, one-sided at the ends: x1-x0, x2-x0, x3-x1, x3-x2
    assert d[0, :, 0].tolist() == [1.0, 4.0, 8.0, 5.0]
    # 2 valid frames: both ends see x1 - x0 = 3; padding stays 0
    assert d[1, :, 0].tolist() == [3.0, 3.0, 0.0, 0.0]
    assert frame_delta(x[:1, :1], torch.tensor([1])).abs().sum() == 0  # one frame: no change


def test_temporal_delta_option_appends_the_scaled_change():
    torch.manual_seed(0)
    plain, delta = build(), build(temporal_delta=2.0)
    assert delta.convs[0].weight.shape[1] == 2 * plain.convs[0].weight.shape[1] == 24
    feats = torch.randn(2, 8, 12)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    a, b = plain.prepool(feats, mask), delta.prepool(feats, mask)
    torch.testing.assert_close(b[..., :12], a)  # the first half is MMN's input, unchanged
    x = torch.nn.functional.normalize(feats, dim=-1)
    lengths = torch.tensor([8, 5])
    w = avgfeats_weights(lengths, 8, 8)
    torch.testing.assert_close(b[..., 12:], w @ (2.0 * frame_delta(x, lengths)))
    # and the head runs end to end with it
    out = delta(feats, mask, torch.randn(3, 10), torch.tensor([0, 1, 1]))
    assert out.iou_scores.shape == (3, 8, 8)


def test_span_delta_appends_end_minus_start_on_valid_cells():
    plain, span = build(), build(span_delta=3.0)
    assert span.convs[0].weight.shape[1] == 2 * plain.convs[0].weight.shape[1] == 24
    x = torch.arange(2 * 5 * 8, dtype=torch.float32).reshape(2, 5, 8) ** 1.5
    m, mask = span.map2d(x), span.mask2d
    torch.testing.assert_close(m[:, :5], plain.map2d(x))  # MMN's map first, unchanged
    # by hand: channel 1 of cell (2, 6) is 3 (x6 - x2)
    assert (m[0, 5 + 1, 2, 6] - 3.0 * (x[0, 1, 6] - x[0, 1, 2])).abs() < 1e-4
    for i in range(8):
        for j in range(8):
            if mask[i, j]:
                torch.testing.assert_close(m[:, 5:, i, j], 3.0 * (x[:, :, j] - x[:, :, i]))
            else:
                assert not m[:, 5:, i, j].any()
    out = span(torch.randn(2, 8, 12), None, torch.randn(3, 10), torch.tensor([0, 1, 1]))
    assert out.iou_scores.shape == (3, 8, 8)


def test_map2d_cell_is_the_max_over_its_clips():
    head = build()
    x = torch.randn(2, 5, 8)
    m = head.map2d(x)
    mask = head.mask2d
    assert int(mask.sum()) == 8 + 7 + 6 + 2 + 1  # offsets 0, 1, 2, then 4 and 6 (stride 2)
    for i in range(8):
        for j in range(8):
            if mask[i, j]:
                torch.testing.assert_close(m[:, :, i, j], x[:, :, i : j + 1].amax(-1))
            else:
                assert not m[:, :, i, j].any()
    # the ActivityNet scheme (three groups, strides 1, 2, 4) has the same property
    head = get_component("head", "mmn").build(
        {"preset": "activitynet", "hidden_size": 4, "joint_size": 4}, video_dim=2)
    x = torch.randn(1, 2, 64)
    m = head.map2d(x)
    cells = head.mask2d.nonzero().tolist()
    assert len(cells) == 1104
    expected = torch.stack([x[0, :, i : j + 1].amax(-1) for i, j in cells], 1)
    torch.testing.assert_close(m[0][:, head.mask2d], expected)
    assert int((m[0].abs().sum(0) > 0).sum()) == 1104


def _naive_counts(mask, k, layers):
    """Valid cells in each output cell's receptive field, layer by layer (plain loops)."""
    pad = (k - 1) * layers // 2
    out = []
    current = [[bool(v) for v in row] for row in mask.tolist()]
    for layer in range(layers):
        p = pad if layer == 0 else 0
        size = len(current) + 2 * p - (k - 1)
        counts = [[0] * size for _ in range(size)]
        for r in range(size):
            for c in range(size):
                for dr in range(k):
                    for dc in range(k):
                        rr, cc = r + dr - p, c + dc - p
                        if 0 <= rr < len(current) and 0 <= cc < len(current) and current[rr][cc]:
                            counts[r][c] += 1
        out.append(counts)
        current = [[v > 0 for v in row] for row in counts]
    return out


def test_proposal_conv_weights_by_hand():
    # N=3, full triangle, one 3x3 layer padded by 1: valid cells in each 3x3 window
    head = build(num_clips=3, num_pre_clips=3, pooling_counts=[2], conv_layers=1)
    counts = [[3, 5, 4], [3, 6, 5], [1, 3, 3]]  # cells below the diagonal get weight too
    expected = torch.tensor([[1 / c for c in row] for row in counts])
    torch.testing.assert_close(head.layer_weight(0), expected)
    # deeper stacks: the mask propagates (weight > 0 becomes the next layer's mask)
    head = build()
    for layer, counts in enumerate(_naive_counts(head.mask2d, 3, 2)):
        c = torch.tensor(counts, dtype=torch.float32)
        expected = torch.where(c > 0, 1 / c.clamp(min=1), torch.zeros_like(c))
        torch.testing.assert_close(head.layer_weight(layer), expected)


def test_iou_targets_by_hand():
    # N=4 over 8 s: cells of 2 s; ground truth [2, 6]
    iou = iou2d_targets(torch.tensor([[2.0, 6.0]]), torch.tensor([8.0]), 4)[0]
    assert iou[1, 2] == 1.0  # [2, 6]
    assert iou[0, 0] == 0.0  # [0, 2] touches
    assert iou[0, 1] == pytest.approx(1 / 3)  # [0, 4]: 2 / 6
    assert iou[1, 1] == pytest.approx(0.5)  # [2, 4]: 2 / 4
    assert iou[1, 3] == pytest.approx(4 / 6)  # [2, 8]
    assert iou[0, 3] == pytest.approx(0.5)  # [0, 8]: 4 / 8


def test_iou_bce_by_hand():
    mask = torch.tensor([[True, True], [False, True]])
    scores = torch.tensor([[[0.5, 0.8], [0.9, 0.1]]])  # (1,0) is invalid: ignored
    iou2d = torch.tensor([[[0.5, 2 / 3], [1.0, 1.0]]])  # targets (iou-0.5)/0.5: 0, 1/3, 1
    expected = -(math.log(1 - 0.5) + (1 / 3 * math.log(0.8) + 2 / 3 * math.log(0.2))
                 + math.log(0.1)) / 3
    assert float(iou_bce_loss(scores, iou2d, mask, 0.5, 1.0)) == pytest.approx(expected, 1e-6)


def test_contrastive_loss_by_hand():
    # two videos, N=2 (cells (0,0)=[0,1] s, (0,1)=[0,2] s, (1,1)=[1,2] s), joint space 2-d
    r = 1 / math.sqrt(2)
    map_con = torch.zeros(2, 2, 2, 2)
    for b, cells in enumerate(([[1, 0], [r, r], [0, 1]], [[0, 1], [1, 0], [r, r]])):
        for (i, j), f in zip(((0, 0), (0, 1), (1, 1)), cells, strict=True):
            map_con[b, :, i, j] = torch.tensor(f)
    sent = torch.tensor([[1.0, 0.0], [0.0, 1.0], [r, r]])
    s2v = torch.tensor([0, 0, 1])
    moments = torch.tensor([[0.0, 1.0], [1.0, 2.0], [0.0, 2.0]])
    mask = torch.tensor([[True, True], [False, True]])
    iou2d = iou2d_targets(moments, torch.tensor([2.0, 2.0, 2.0]), 2)
    m, t = 0.4, 0.1
    lvid, lsent = mutual_contrastive_loss(map_con, sent, s2v, iou2d, moments, mask, margin=m)
    e = math.exp
    # positives: q0 -> cell (0,0) of video 0 ([1,0], cos 1); q1 -> (1,1) ([0,1], cos 1);
    # q2 -> (0,1) of video 1 ([1,0], cos r). Video side: positive proposal vs all 3 sentences.
    vid = [
        (1 - m) / t - math.log(e((1 - m) / t) + e(0) + e(r / t)),
        (1 - m) / t - math.log(e(0) + e((1 - m) / t) + e(r / t)),
        (r - m) / t - math.log(e(1 / t) + e(0) + e((r - m) / t)),
    ]
    # sentence side: positive + same-video cells (IoU >= 0.5 zeroed -> e^0) + other video
    sent_terms = [
        (1 - m) / t - math.log(e((1 - m) / t) + 1 + 1 + e(0) + e(0) + e(1 / t) + e(r / t) + 1e-6),
        (1 - m) / t - math.log(e((1 - m) / t) + e(0) + 1 + 1 + e(1 / t) + e(0) + e(r / t) + 1e-6),
        (r - m) / t - math.log(e((r - m) / t) + 1 + 1 + 1 + e(r / t) + e(1 / t) + e(r / t)
                               + 1e-6),
    ]
    assert float(lvid) == pytest.approx(-sum(vid) / 3, rel=1e-5)
    assert float(lsent) == pytest.approx(-sum(sent_terms) / 3, rel=1e-5)


def _reference_contrastive(feat2ds, sent_feats, iou2ds, gts, mask2d, top_k, margin, tv, ts,
                           neg_iou=0.5, removal=0.5):
    """A port of MMN's ContrastiveLoss.__call__ (loops per video, exp / log)."""
    f = torch.nn.functional
    b, c = feat2ds.shape[:2]
    feat1ds = f.normalize(feat2ds.masked_select(mask2d).reshape(b, c, -1), dim=1)
    cat = f.normalize(torch.cat(sent_feats, 0), dim=1)
    total = cat.size(0)
    sent_mask = torch.ones(total, total)
    bounds = [0]
    for s in sent_feats:
        bounds.append(bounds[-1] + s.size(0))
    for i, gt in enumerate(gts):
        sent_mask[bounds[i]:bounds[i + 1], bounds[i]:bounds[i + 1]] = (
            box_iou(gt, gt) < removal).float()
    sent_mask += torch.eye(total)
    margin_mask = torch.eye(total) * margin
    vp, vn, sp, sn = [], [], [], []
    for i, (sf, iou2d) in enumerate(zip(sent_feats, iou2ds, strict=True)):
        feat1d = feat1ds[i]
        sf = f.normalize(sf, dim=1)
        iou1d = iou2d.masked_select(mask2d).reshape(sf.size(0), -1)
        topk = torch.topk(iou1d, top_k, dim=-1)[1]
        sel = feat1d.index_select(1, topk.reshape(-1)).reshape(c, -1, top_k).permute(1, 2, 0)
        pos = torch.bmm(sel, sf.unsqueeze(2)).reshape(-1, top_k) - margin
        vp.append(pos)
        vn.append(torch.mm(sel.reshape(-1, c), cat.t()).reshape(-1, top_k, total))
        sp.append(pos.clone())
        same = (iou1d < neg_iou).float() * torch.mm(sf, feat1d)
        others = feat1ds[torch.arange(b) != i].transpose(1, 0).reshape(c, -1)
        other = torch.mm(sf, others)
        sn.append(torch.cat([pos.unsqueeze(2), same.unsqueeze(1).repeat(1, top_k, 1),
                             other.unsqueeze(1).repeat(1, top_k, 1)], dim=2))
    vid_pos = torch.cat(vp, 0).transpose(0, 1) / tv
    vid_neg = (torch.cat(vn, 0).permute(1, 0, 2) - margin_mask) / tv
    sent_mask += torch.eye(total)
    exp = torch.exp(vid_neg) * sent_mask.clamp(0, 1)
    loss_vid = -(vid_pos - torch.log(exp.sum(dim=2))).mean()
    sent_pos = torch.cat(sp, 0) / ts
    sent_neg = torch.exp(torch.cat(sn, 0) / ts)
    loss_sent = -(sent_pos - torch.log(sent_neg.sum(dim=2) + 1e-6)).mean()
    return loss_vid, loss_sent


@pytest.mark.parametrize("top_k", [1, 2])
def test_contrastive_loss_equals_the_reference_loop(top_k):
    torch.manual_seed(3)
    n, counts = 8, [2, 2]
    from vdi_plugins.heads.cells import cell_mask

    mask = torch.from_numpy(cell_mask(n, counts))
    per_video = [2, 1, 3]
    durations = [20.0, 9.0, 31.0]
    map_con = torch.randn(3, 6, n, n)
    sents = [torch.randn(k, 6) for k in per_video]
    gts = [torch.tensor([[1.0, 6.0], [2.0, 8.0]]), torch.tensor([[0.0, 9.0]]),
           torch.tensor([[3.0, 12.0], [3.5, 12.5], [20.0, 30.0]])]
    iou2ds = [iou2d_targets(g, torch.full((len(g),), d), n) for g, d in zip(gts, durations,
                                                                             strict=True)]
    s2v = torch.repeat_interleave(torch.arange(3), torch.tensor(per_video))
    ours = mutual_contrastive_loss(map_con, torch.cat(sents), s2v, torch.cat(iou2ds),
                                   torch.cat(gts), mask, num_positive=top_k, margin=0.3,
                                   tau_video=0.1, tau_sent=0.2)
    ref = _reference_contrastive(map_con, sents, iou2ds, gts, mask, top_k, 0.3, 0.1, 0.2)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # the order of sentences in the batch does not matter
    perm = torch.tensor([5, 0, 3, 1, 4, 2])
    again = mutual_contrastive_loss(map_con, torch.cat(sents)[perm], s2v[perm],
                                    torch.cat(iou2ds)[perm], torch.cat(gts)[perm], mask,
                                    num_positive=top_k, margin=0.3, tau_sent=0.2)
    for a, b in zip(again, ours, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_contrastive_weight_schedule():
    assert contrastive_weight(1, 0.05, 7) == 0.05
    assert contrastive_weight(7, 0.05, 7) == 0.05
    assert contrastive_weight(8, 0.05, 7) == pytest.approx(0.0005)


def _batch(b=4, t=20, per_video=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, t, 12, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 15:] = False
    sents = torch.randn(b * per_video, 10, generator=g)
    s2v = torch.arange(b).repeat_interleave(per_video)
    durations = torch.tensor([16.0, 24.0, 8.0, 32.0][:b])
    starts = torch.rand(b * per_video, generator=g) * 0.5
    moments = torch.stack([starts, starts + 0.4], 1) * durations[s2v, None]
    return feats, mask, sents, s2v, {"moments": moments, "durations": durations}


def test_forward_shapes_masking_padding_and_loss_terms():
    torch.manual_seed(0)
    head = build().eval()
    feats, mask, sents, s2v, targets = _batch()
    out = head(feats, mask, sents, s2v)
    assert out.iou_scores.shape == (8, 8, 8) and out.map_con.shape == (4, 8, 8, 8)
    invalid = ~head.mask2d
    assert not out.iou_scores[:, invalid].any() and not out.contrastive_scores[:, invalid].any()
    assert (out.iou_scores[:, head.mask2d] > 0).all()
    feats2 = feats.clone()
    feats2[1, 15:] = 1e3  # garbage in padded frames changes nothing
    torch.testing.assert_close(head(feats2, mask, sents, s2v).iou_scores, out.iou_scores)
    terms = head.loss(out, targets, epoch=1)
    w = terms["contrastive_weight"]
    assert w == 0.05
    torch.testing.assert_close(terms["loss"], terms["iou"] + w * (terms["vid"] + terms["sent"]))
    assert head.loss(out, targets, epoch=8)["contrastive_weight"] == pytest.approx(0.0005)


def test_decode_gives_ranked_moments_inside_the_video():
    head = build().eval()
    feats, mask, sents, s2v, targets = _batch()
    with torch.no_grad():
        out = head(feats, mask, sents, s2v)
    moments = head.decode(out, targets["durations"], top_k=5)
    assert len(moments) == 8
    for q, ms in enumerate(moments):
        d = float(targets["durations"][s2v[q]])
        assert 1 <= len(ms) <= 5
        assert all(0 <= m.start < m.end <= d + 1e-5 for m in ms)
        assert [m.score for m in ms] == sorted((m.score for m in ms), reverse=True)
    full = head.rank(out, targets["durations"])
    assert (full.counts >= 5).all()
    assert full.windows[:, :5].tolist() == head.rank(out, targets["durations"], top_k=5).windows \
        .tolist()


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    head = build()
    feats, mask, sents, s2v, targets = _batch(seed=1)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-5)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        terms = head.loss(head(feats, mask, sents, s2v), targets, epoch=1)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 5)
        opt.step()
        losses.append(terms["loss"].item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_span_delta_survives_the_checkpoint_config_and_older_configs_load_without_it():
    component = get_component("head", "mmn")
    saved = component.make_config({**TINY, "span_delta": 2.0}).model_dump()  # what a run stores
    first = component.build(component.make_config(saved), video_dim=12, text_dim=10)
    again = component.build(component.make_config(saved), video_dim=12, text_dim=10)
    again.load_state_dict(first.state_dict())  # same shapes: 2 x 12 channels into the convs
    assert again.params.span_delta == 2.0 and again.convs[0].weight.shape[1] == 24
    older = {k: v for k, v in saved.items() if k != "span_delta"}  # stored before the option
    assert component.build(component.make_config(older), video_dim=12).params.span_delta == 0.0
