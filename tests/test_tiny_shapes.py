"""The shipped tiny-shapes backbone: the file has its recorded hash, loads offline, and knows
the synthetic world's words (its pretraining's held-out-from-VMR colour included)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vdi_plugins.tiny_shapes import WEIGHTS, WEIGHTS_INFO  # noqa: E402


def test_shipped_weights_match_the_recorded_hash_and_size():
    info = json.loads(WEIGHTS_INFO.read_text())
    data = WEIGHTS.read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert len(data) == info["bytes"] < 20_000_000
    assert info["command"].startswith("python -m vdi_plugins.tiny_shapes.pretrain --steps")


@pytest.fixture(scope="module")
def backbone():
    from vdi_cli.backbones import load_backbone

    return load_backbone("tiny-shapes")


def test_loads_offline_with_the_recorded_weights_id(backbone):
    info = json.loads(WEIGHTS_INFO.read_text())
    assert backbone.id == "tiny-shapes"
    assert backbone.weights_id == "sha256:" + info["sha256"]
    assert (backbone.embed_dim, tuple(backbone.patch_grid), backbone.image_size) == (128, (6, 6),
                                                                                       48)
    g, p = backbone.encode_frames(np.zeros((2, 64, 64, 3), dtype=np.uint8))
    assert g.shape == (2, 128) and p.shape == (2, 36, 128)


def test_it_matches_captions_to_frames_better_than_chance(backbone):
    from vdi_plugins.tiny_shapes.pretrain import retrieval_top1, still_batch

    frames, captions = still_batch(np.random.default_rng(12345), 50)
    assert retrieval_top1(backbone, frames, captions) > 0.3  # chance is 0.02


def test_colour_words_pick_the_right_frame(backbone):
    from vdi_plugins.synthetic.world import COLOURS, ObjectState, render

    names = ["red", "blue", "green", "purple"]
    frames = np.stack([render("snow", [ObjectState("square", COLOURS[c], 32, 32, 10)], 64)
                       for c in names])
    with torch.no_grad():
        img = torch.nn.functional.normalize(backbone.encode_frames(frames)[0], dim=-1)
        txt = torch.nn.functional.normalize(backbone.encode_text(backbone.tokenize(
            [f"a big {c} square in the middle in the snow" for c in names])), dim=-1)
    assert (txt @ img.t()).argmax(1).tolist() == [0, 1, 2, 3]
