"""The built-in sequence models honour padding: padded frames never change valid outputs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.registry import get_component  # noqa: E402


@pytest.mark.parametrize("model_id", ["transformer", "lstm"])
def test_shape_and_padding_invariance(model_id):
    torch.manual_seed(0)
    model = get_component("sequence-model", model_id).build({"dropout": 0.0}, dim=16).eval()
    x = torch.randn(2, 6, 16)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    y = model(x, pad)
    assert y.shape == (2, 6, 16)
    x2 = x.clone()
    x2[1, 4:] = 100.0  # garbage in the padded frames
    y2 = model(x2, pad)
    torch.testing.assert_close(y[1, :4], y2[1, :4])
    # and a sequence alone equals the same sequence padded inside a batch
    alone = model(x[1:2, :4], None)
    torch.testing.assert_close(alone[0], y[1, :4], atol=1e-5, rtol=1e-5)


def test_transformer_heads_must_divide_dim():
    from vdi_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="does not divide"):
        get_component("sequence-model", "transformer").build({"heads": 3}, dim=16)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_lstm_reads_exactly_a_moment_that_starts_later(bidirectional):
    """scope=moment: the visible frames are a window inside the video, not a prefix. The LSTM
    must read exactly that window (as if run on the sliced frames), whatever the other rows."""
    torch.manual_seed(0)
    model = get_component("sequence-model", "lstm").build(
        {"bidirectional": bidirectional}, dim=16).eval()
    x = torch.randn(3, 12, 16)
    pad = torch.ones(3, 12, dtype=torch.bool)
    pad[0, 5:9] = False  # a moment in the middle
    pad[1, 7:] = False  # a moment at the end
    pad[2, :3] = False  # a prefix, as before
    y = model(x, pad)
    for row, (s, e) in enumerate([(5, 9), (7, 12), (0, 3)]):
        alone = model(x[row:row + 1, s:e], None)[0]
        torch.testing.assert_close(y[row, s:e], alone, atol=1e-5, rtol=1e-5)
    # the frames outside the moment never reach the outputs inside it
    x2 = x.clone()
    x2[pad] = 100.0
    torch.testing.assert_close(model(x2, pad)[~pad], y[~pad])
