"""The checkpoint `make demo` searches with (examples/demo-checkpoint): its weights are the ones
recorded, it holds only what training changed (the head), and it loads and ranks moments."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

FOLDER = Path(__file__).resolve().parents[1] / "examples" / "demo-checkpoint"


def test_shipped_weights_are_the_recorded_ones_and_only_the_head():
    info = json.loads((FOLDER / "info.json").read_text())
    data = (FOLDER / "model.safetensors").read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["model_sha256"]
    assert len(data) < 4 * 2**20
    from vdi_cli.checkpoints import load_tensors

    tensors = load_tensors(FOLDER)
    assert tensors and all(k.startswith("head.") for k in tensors)
    config = json.loads((FOLDER / "config.json").read_text())
    assert (config["backbone"]["id"], config["head"]["id"]) == ("tiny-shapes", "mmn")
    assert "--seed 0" in (FOLDER / "train.sh").read_text()


def test_shipped_checkpoint_retrieves_in_a_synthetic_test_video(tmp_path):
    from vdi_cli.pipeline.retrieve import Retriever, expand_inputs
    from vdi_cli.store import open_db
    from vdi_plugins.synthetic.generate import generate

    generate(tmp_path / "shapes", videos=1, seed=0, test_videos=2, fps=2)
    annotations = json.loads((tmp_path / "shapes" / "test_iid.json").read_text())
    vid = sorted(annotations)[0]
    query = annotations[vid]["sentences"][0]
    video = tmp_path / "shapes" / "videos" / f"{vid}.mp4"
    result = Retriever(open_db(tmp_path / "vdi.db"), checkpoint=str(FOLDER)).search(
        expand_inputs(video), [query], top_k=5)
    moments = result.videos[0].moments[0]
    assert len(moments) == 5 and all(0 <= m.start < m.end <= result.videos[0].duration + 1e-6
                                     for m in moments)
    assert result.model["backbone"] == "tiny-shapes" and result.model["head"] == "mmn"
