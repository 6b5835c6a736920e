"""examples/text_probe.py: pairwise cosine and linear probes by hand, and the probe of a real
checkpoint whose text tower says the same thing for every sentence."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def probe(load_example):
    return load_example("text_probe")


def test_mean_pairwise_cosine_by_hand(probe):
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    # pairs: (1, 2) 0, (1, 3) 1/sqrt 2, (2, 3) 1/sqrt 2 -> mean sqrt(2) / 3
    assert probe.mean_pairwise_cosine(x) == pytest.approx(math.sqrt(2) / 3, abs=1e-6)
    assert probe.mean_pairwise_cosine(torch.ones(4, 3) * 5) == pytest.approx(1.0, abs=1e-6)


def test_linear_probe_separable_constant_and_unseen_labels(probe):
    x = torch.eye(3).repeat(2, 1)
    y = ["a", "b", "c"] * 2
    assert probe.linear_probe(x, y, torch.eye(3), ["a", "b", "c"]) == (1.0, 1.0)
    # constant features: only the bias is learnt, so the training majority is predicted
    train_acc, test_acc = probe.linear_probe(torch.ones(4, 2), ["a", "a", "a", "b"],
                                             torch.ones(3, 2), ["a", "b", "a"])
    assert (train_acc, test_acc) == (0.75, pytest.approx(2 / 3))
    # a label never seen in training is always wrong
    assert probe.linear_probe(x, y, torch.eye(3)[:2], ["a", "z"])[1] == 0.5


def test_probe_of_a_checkpoint_whose_tower_is_constant(probe, tmp_path):
    from vdi_cli.backbones import load_backbone
    from vdi_cli.checkpoints import save_checkpoint
    from vdi_cli.model import build_model
    from vdi_plugins.synthetic.generate import generate

    generate(tmp_path / "world", videos=6, seed=3, test_videos=3, fps=4, size=32)
    backbone = load_backbone("tiny-shapes")
    model = build_model(backbone, "mmn", {"hidden_size": 8})
    tensors = model.state_tensors()
    tensors["text.ln_final.weight"] = torch.zeros_like(tensors["text.ln_final.weight"])
    config = {"backbone": {"id": backbone.id, "weights": backbone.weights_id},
              "head": {"id": "mmn", "config": model.head_config}}
    save_checkpoint(tmp_path / "ckpt", config, tensors)

    out = tmp_path / "probe.json"
    results = probe.main(["--data", str(tmp_path / "world"), str(tmp_path / "ckpt"),
                          "--json", str(out)])
    assert json.loads(out.read_text()).keys() == results.keys()
    frozen, constant = results["frozen tiny-shapes"], results[str(tmp_path / "ckpt")]
    # the pretrained tower tells the training queries' objects apart; sentences differ
    assert frozen["object"][0] == 1.0 and frozen["mean_pairwise_cosine"] < 0.9
    # ln_final's scale at 0: every sentence is the same vector, the probe predicts the majority
    assert constant["mean_pairwise_cosine"] == pytest.approx(1.0, abs=1e-5)
    train = [a for v in json.loads((tmp_path / "world" / "train.json").read_text()).values()
             for a in v["actions"]]
    test = [a for v in json.loads((tmp_path / "world" / "test_iid.json").read_text()).values()
            for a in v["actions"]]
    majority = Counter(sorted(train)).most_common(1)[0][0]
    assert constant["action"][0] == pytest.approx(train.count(majority) / len(train))
    assert constant["action"][1] == pytest.approx(test.count(majority) / len(test))


def _bag_of_words(same: dict[str, str]):
    """A deterministic text encoder: the sum of a fixed random vector per word, after each
    phrase in `same` is replaced by its value (a tower that learnt the two as one)."""
    vectors: dict[str, torch.Tensor] = {}

    def vector(word: str) -> torch.Tensor:
        if word not in vectors:
            g = torch.Generator().manual_seed(sum(ord(c) * 31 ** i for i, c in enumerate(word)))
            vectors[word] = torch.randn(64, generator=g)
        return vectors[word]

    def encode(texts: list[str]) -> torch.Tensor:
        out = []
        for text in texts:
            for phrase, as_phrase in same.items():
                text = text.replace(phrase, as_phrase)
            out.append(sum(vector(w) for w in text.split()))
        return torch.stack(out)

    return encode


def test_verb_neighbours_find_synonyms_a_tower_has_learnt(probe):
    from vdi_plugins.synthetic import verbs

    nouns = ["the red square", "a blue circle", "the green cross"]
    # each held-out synonym encoded as the second trained synonym of its class
    same = {t.replace("{np} ", ""): verbs.TRAINED[a][1].replace("{np} ", "")
            for a in verbs.NOVEL_VERB_ACTIONS for t in verbs.HELD_OUT[a]}
    learnt = probe.verb_neighbours(_bag_of_words(same), nouns)
    assert len(learnt["phrases"]) == sum(len(v) for v in verbs.HELD_OUT.values())
    assert learnt["nearest_is_own"] == 1.0 and learnt["mean_rank_own"] == 1.0
    assert all(r["cos_own"] > r["cos_other"] for r in learnt["phrases"])
    assert all(r["nearest"] == same[r["held_out"]] for r in learnt["phrases"])
    # a tower that never met the held-out words places them at random
    unknown = probe.verb_neighbours(_bag_of_words({}), nouns)
    assert unknown["nearest_is_own"] < 0.5 and unknown["mean_rank_own"] > 4


def test_probe_of_a_version_4_world_reads_the_novel_verbs(probe, tmp_path):
    from vdi_plugins.synthetic.generate import generate

    generate(tmp_path / "world", videos=30, seed=2, test_videos=10, fps=1, size=32, version=4)
    results = probe.main(["--data", str(tmp_path / "world")])
    frozen = results["frozen tiny-shapes-v2"]  # a version-4 world's default tower
    assert 0.0 <= frozen["action_novel_verb"][1] <= 1.0
    assert frozen["verbs"]["trained_phrases"] == 36 and len(frozen["verbs"]["phrases"]) == 14
    assert frozen["verbs"]["mean_rank_own"] < 6  # the first release: ~11 (test_tiny_shapes)
