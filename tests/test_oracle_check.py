"""examples/oracle_check.py: what the oracle feeds the head, the text sides, and one real
end-to-end epoch on a generated world (the full check is a minutes-long job, not a test)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def check(load_example):
    return load_example("oracle_check")


def _ann(vid, start, end, query, action):
    return SimpleNamespace(video_id=vid, start=start, end=end, query=query,
                           extra={"actions": action})


def test_oracle_meaning_is_the_sum_of_colour_shape_and_action_vectors(check):
    words = check.Words(8, seed=0)
    a = _ann("v", 0, 1, "the red square slides left quickly", "left")
    expected = words.vec("red") + words.vec("square") + words.vec("action:left")
    assert torch.allclose(words.meaning(a), expected)
    # the verb's wording does not matter, the action class does
    b = _ann("v", 0, 1, "a red square drifts leftward", "left")
    assert torch.equal(words.meaning(b), words.meaning(a))


def test_oracle_frames_carry_the_event_only_while_it_runs(check):
    words = check.Words(4, seed=0)
    sample = SimpleNamespace(video_id="v", duration=3.0)
    anns = [_ann("v", 1.0, 2.0, "the blue circle grows", "grow")]
    frames = check.oracle_frames([sample], anns, words, fps=2.0, noise=0.0,
                                 gen=torch.Generator().manual_seed(0))["v"]
    assert frames.shape == (6, 4)  # t = 0, 0.5, ..., 2.5
    m = words.meaning(anns[0])
    for i, t in enumerate([0.0, 0.5, 1.0, 1.5, 2.0, 2.5]):
        assert torch.equal(frames[i], m if 1.0 <= t <= 2.0 else torch.zeros(4)), t


def test_bag_of_words_text_is_the_mean_of_trainable_word_vectors(check):
    train = [_ann("v", 0, 1, "the red square grows", "grow"),
             _ann("v", 2, 3, "a blue circle sinks slowly", "down")]
    text = check.TextSide("bow", {"train": train}, check.Words(8, 0), None, standardise=False)
    out = text(train)
    rows = [text.index[w] for w in ("the", "red", "square", "grows")]
    assert torch.allclose(out[0], text.bag.weight[rows].mean(0))
    rows = [text.index[w] for w in ("a", "blue", "circle", "sinks", "slowly")]
    assert out.shape == (2, 8) and torch.allclose(out[1], text.bag.weight[rows].mean(0))
    assert text.params and all(p.requires_grad for p in text.params)


def test_standardised_text_has_zero_mean_unit_std_on_training_queries(check):
    from vdi_cli.backbones import load_backbone

    backbone = load_backbone("tiny-shapes")
    train = [_ann("v", 0, 1, q, "grow") for q in ("the red square grows", "a blue circle sinks",
                                                  "the green cross hops", "a white square rises")]
    test = [_ann("w", 0, 1, "the yellow circle blinks", "blink")]
    text = check.TextSide("clip-standardised", {"train": train, "test": test},
                          check.Words(128, 0), backbone, standardise=False)
    z = text(train)
    assert torch.allclose(z.mean(0), torch.zeros(128), atol=1e-5)
    assert torch.allclose(z.std(0), torch.ones(128), atol=1e-4)
    assert text(test).shape == (1, 128) and not text.params


def test_one_epoch_on_a_generated_world_scores_every_action(check, tmp_path):
    from vdi_plugins.synthetic.generate import generate

    generate(tmp_path, videos=6, seed=3, test_videos=3, fps=4, size=32)
    results = check.main(["--data", str(tmp_path), "--epochs", "1", "--text", "bow"])
    test_iid = json.loads((tmp_path / "test_iid.json").read_text()).values()
    per_action = results["test_iid"]["per_action"]
    assert set(per_action) == {a for v in test_iid for a in v["actions"]}
    for recall, prior, queries in per_action.values():
        assert 0 <= recall <= 100 and 0 <= prior <= 100 and queries >= 1
    assert sum(q for *_, q in per_action.values()) == sum(len(v["sentences"]) for v in test_iid)


def test_tower_text_side_trains_what_it_is_told_and_pools_as_asked(check):
    from vdi_cli.backbones import load_backbone

    backbone = load_backbone("tiny-shapes")
    anns = [_ann("v", 0, 1, "the red square grows", "grow"),
            _ann("v", 1, 2, "a blue circle slides left slowly", "left")]
    text = check.TextSide("tower", {"train": anns}, check.Words(128, 0), backbone, False,
                          pool="mean", trainable="token-embeddings")
    named = dict(backbone.named_text_parameters())
    assert text.params == [named["token_embedding.weight"]]
    assert [n for n, p in named.items() if p.requires_grad] == ["token_embedding.weight"]
    with torch.no_grad():
        want = backbone.encode_text(backbone.tokenize([a.query for a in anns]), pool="mean")
        torch.testing.assert_close(text(anns), want, atol=1e-5, rtol=1e-5)
