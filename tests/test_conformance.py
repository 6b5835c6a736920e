"""The conformance kit (`vdi_cli.testing.check_*`): every built-in component passes it, and a
deliberately broken small component of each kind fails with a message that names the member and
what is wrong."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from vdi_cli import testing  # noqa: E402
from vdi_cli.datasets import DatasetReport, finish_report  # noqa: E402
from vdi_cli.masking import build_parsed_query  # noqa: E402
from vdi_cli.registry import get_component, get_registry  # noqa: E402
from vdi_cli.types import Annotation, Token  # noqa: E402


@pytest.fixture(autouse=True)
def _only_builtins(monkeypatch):
    from vdi_cli import plugins

    monkeypatch.setenv("VDI_PLUGINS", "")
    plugins.reset_host()
    yield
    plugins.reset_host()


def _raises(fn, *args, match: str, **kwargs):
    with pytest.raises(AssertionError) as exc:
        fn(*args, **kwargs)
    assert match in str(exc.value), str(exc.value)
    return str(exc.value)


# --- heads ------------------------------------------------------------------------------------

def test_builtin_heads_conform():
    mmn = testing.check_head("mmn", testing.TINY_HEAD)
    assert mmn.notes == [] and "IndexableHead" in mmn.called
    free = testing.check_head("clip-similarity", {})
    assert free.notes == ["training-free: the clip-similarity head has nothing to train"]
    assert free.called["AdaptableHead"] == {"adapt"}
    assert set(get_registry("head").ids()) == {"mmn", "clip-similarity"}


def _mmn(config, **kwargs):
    return get_component("head", "mmn").build(config or testing.TINY_HEAD, **kwargs)


def test_a_head_whose_bound_is_not_an_upper_bound_fails():
    def build(config, video_dim, text_dim):
        head = _mmn(config, video_dim=video_dim, text_dim=text_dim)
        head.score_bound = lambda ip, score_pow=None: torch.as_tensor(ip).numpy() * 0 - 1.0
        return head

    message = _raises(testing.check_head, build, match="score_bound: is below score_proposals")
    assert message.startswith("head 'build': ") and "exact search stops too early" in message


def test_a_head_whose_loss_misses_the_sentences_fails():
    def build(config, video_dim, text_dim):
        head = _mmn(config, video_dim=video_dim, text_dim=text_dim)
        real = head.loss

        def loss(outputs, targets, epoch):
            out = real(outputs, targets, epoch)
            return {**out, "loss": sum(p.sum() for p in head.parameters()) * 0 + out["iou"]
                    .detach() + next(head.parameters()).sum() * 0}
        head.loss = loss
        return head

    _raises(testing.check_head, build, match="its gradient does not reach sent_feats")


def test_a_head_with_half_the_index_pair_fails():
    def build(config, video_dim, text_dim):
        head = _mmn(config, video_dim=video_dim, text_dim=text_dim)
        head.score_bound = None
        return head

    _raises(testing.check_head, build, match="offers encode_proposals, encode_queries, "
            "score_proposals, search_vectors, search_query but not score_bound")


def test_a_head_called_as_factory_config_alone_fails_with_the_call_it_got():
    def build(config):  # the README's old promise: factory(config)
        return _mmn(config, video_dim=32, text_dim=32)

    _raises(testing.check_head, build, match="factory(config, video_dim=, text_dim=): raised "
            "TypeError")


# --- backbones --------------------------------------------------------------------------------

def _tiny(**kwargs):
    arch = testing.register_tiny_open_clip()
    return {"arch": arch}, f"open_clip:{arch}"


def test_builtin_backbones_conform(tmp_path, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    config, bid = _tiny()
    tiny = testing.check_backbone("open-clip", config, backbone_id=bid)
    assert tiny.component.embed_dim == 32 and tiny.component.patch_grid == (4, 4)
    shapes = testing.check_backbone("tiny-shapes")
    assert shapes.component.embed_dim == 128
    testing.check_backbone("tiny-shapes-v2")


def test_hf_clip_conforms(tmp_path):
    from vdi_cli.compat.torchvision_shim import ensure_torchvision

    ensure_torchvision()
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 77},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 48, "patch_size": 16},
        projection_dim=24)
    folder = tmp_path / "tiny-clip"
    transformers.CLIPModel(config).save_pretrained(str(folder))
    report = testing.check_backbone("hf-clip", {"model": str(folder)},
                                    backbone_id=f"hf-clip:{folder}")
    assert report.component.patch_grid == (3, 3)


class _Wrapped:
    """A loaded backbone with one member replaced (everything else forwarded)."""

    def __init__(self, inner, **override):
        self._inner, self._override = inner, override

    def __getattr__(self, name):
        return self._override[name] if name in self._override else getattr(self._inner, name)


def _spec_with(component, override):
    """A backbone spec class whose loaded backbone has the members `override(loaded)` returns
    replaced (the tiny open_clip one otherwise)."""

    class Spec:
        def __init__(self, config, weights=None, backbone_id=""):
            self.inner = component.build(config, weights=weights, backbone_id=backbone_id)
            self.id, self.weights_id = self.inner.id, self.inner.weights_id

        def load(self, device="cpu", precision="auto"):
            loaded = self.inner.load(device, precision)
            return _Wrapped(loaded, **override(loaded))

    return Spec


def test_a_backbone_with_too_few_patches_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    config, bid = _tiny()
    component = get_component("backbone", "open-clip")

    def one_patch(loaded):
        def encode_pixels(pixels):
            g, p = loaded.encode_pixels(pixels)
            return g, p[:, :1]
        return {"encode_pixels": encode_pixels}

    _raises(testing.check_backbone, _spec_with(component, one_patch),
            component.make_config(config), backbone_id=bid,
            match="encode_pixels()[1] (patches): expected shape (2, 16, 32)")


def test_a_backbone_whose_text_is_not_trainable_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    config, bid = _tiny()
    component = get_component("backbone", "open-clip")

    def detached(loaded):
        return {"encode_text": lambda tokens, pool="eot": loaded.encode_text(tokens, pool).detach()}

    _raises(testing.check_backbone, _spec_with(component, detached),
            component.make_config(config), backbone_id=bid,
            match="encode_text: is not differentiable into named_text_parameters")


# --- parsers ----------------------------------------------------------------------------------

def _spacy_available() -> bool:
    try:
        get_component("parser", "spacy").build().model_name()
    except Exception:  # noqa: BLE001
        return False
    return True


def test_spacy_parser_conforms():
    if not _spacy_available():
        pytest.skip("no spaCy English pipeline installed")
    report = testing.check_parser("spacy")
    assert report.called["CachingParser"] == {"cache_config"}


class FirstTwoWords:
    """A rule parser: the first two words are the noun chunk."""

    def __init__(self, config=None):
        self.config = config

    def parse(self, text):
        words = text.split()
        tokens = [Token(w) for w in words]
        return build_parsed_query(text, tokens, [(0, min(2, len(words)))], parser="first-two")

    def parse_many(self, texts):
        return [self.parse(t) for t in texts]


def test_a_small_rule_parser_conforms_and_a_reordering_one_fails():
    report = testing.check_parser(FirstTwoWords)
    assert "CachingParser" not in report.called

    class Reordering(FirstTwoWords):
        def parse_many(self, texts):
            return [self.parse(t) for t in reversed(texts)]

    _raises(testing.check_parser, Reordering, match="parser 'Reordering': parse_many: the result "
            "for 'a person opens the door and walks out of the room' is the parse of 'someone is "
            "laughing': one result per text, in the same order")


def test_a_parser_that_keeps_chunks_in_qd_fails():
    class Unmasked(FirstTwoWords):
        def parse(self, text):
            q = super().parse(text)
            from dataclasses import replace

            return replace(q, dynamic_masked=tuple(False for _ in q.tokens))

    _raises(testing.check_parser, Unmasked, match="a noun chunk must be masked in Qd")


# --- sequence models --------------------------------------------------------------------------

@pytest.mark.parametrize("sid,config", [("transformer", None), ("lstm", None),
                                        ("lstm", {"bidirectional": True})])
def test_builtin_sequence_models_conform(sid, config):
    report = testing.check_sequence_model(sid, config)
    assert report.called["SequenceModel"] == {"__call__", "parameters"}


def test_a_sequence_model_that_reads_padding_fails():
    class MeanOverTime(torch.nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.proj = torch.nn.Linear(dim, dim)

        def forward(self, x, pad_mask=None):
            return self.proj(x) + x.mean(1, keepdim=True)  # padded frames leak into every output

    _raises(testing.check_sequence_model, lambda config, dim: MeanOverTime(dim),
            match="outputs at real frames change when padded frames change")


# --- objectives -------------------------------------------------------------------------------

@pytest.mark.parametrize("oid", ["visual-context", "spatial-dynamic"])
def test_builtin_objectives_conform(oid):
    report = testing.check_objective(oid)
    assert "diagnose" in report.called["DiagnosedObjective"]
    assert set(get_registry("objective").ids()) == {"visual-context", "spatial-dynamic"}


def test_an_objective_that_trains_no_text_fails():
    from types import SimpleNamespace

    class FramesOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(weight=0.5)
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, inputs):
            return (inputs.frames.mean() * self.scale) ** 2

    _raises(testing.check_objective, lambda config, dim, patch_count: FramesOnly(),
            match="its gradient reaches none of text_query / text_static / text_dynamic")


# --- dataset formats --------------------------------------------------------------------------

def _samples(tmp_path):
    (tmp_path / "sta.txt").write_text("AAA 0.0 6.9##a person puts a book on a shelf.\n"
                                      "BBB 20.8 40.0##person plays on a phone.\n")
    (tmp_path / "Charades_v1_test.csv").write_text("id,subject,length\nAAA,x,10.5\nBBB,y,30\n")
    mmn = {"v1": {"duration": 20.0, "timestamps": [[2, 25], [5, 9]],
                  "sentences": ["The coach helps.", "a ball flies"]}}
    (tmp_path / "a.json").write_text(json.dumps(mmn))
    tacos = {"s1.avi": {"num_frames": 900, "fps": 30.0, "timestamps": [[30, 300]],
                        "sentences": ["a man cuts a carrot"]}}
    (tmp_path / "tacos.json").write_text(json.dumps(tacos))
    cd = {"v2": {"video_duration": 30.0, "timestamps": [[1.5, 8.0]],
                 "sentences": ["person opens a door"]}}
    (tmp_path / "cd.json").write_text(json.dumps(cd))
    (tmp_path / "q.jsonl").write_text(json.dumps(
        {"qid": 7, "query": "a dog runs", "vid": "v", "duration": 150,
         "relevant_windows": [[10, 20], [40, 60]]}) + "\n")
    (tmp_path / "bad.json").write_text("{not json")
    return {"charades-sta": tmp_path / "sta.txt", "mmn-json": tmp_path / "a.json",
            "tacos": tmp_path / "tacos.json", "charades-cd": tmp_path / "cd.json",
            "activitynet-cd": tmp_path / "cd.json", "qvhighlights": tmp_path / "q.jsonl"}


def test_builtin_dataset_formats_conform(tmp_path):
    samples = _samples(tmp_path)
    readers = {c.id for c in get_registry("dataset").all() if not c.extra.get("generator")}
    assert readers == set(samples)
    for fmt, path in samples.items():
        bad = tmp_path / "bad.json" if fmt != "charades-sta" else tmp_path / "Charades_v1_test.csv"
        testing.check_dataset_format(fmt, path, bad_path=bad)


def test_a_dataset_format_that_does_not_clip_fails(tmp_path):
    class Unclipped:
        def __init__(self, config=None):
            pass

        def read(self, path):
            report = DatasetReport("unclipped", str(path))
            report.videos["v"] = 10.0
            report.annotations.append(Annotation("v", 10.0, "a dog runs", 2.0, 12.0))
            return finish_report(report, {})

    (tmp_path / "x.txt").write_text("v 2 12 a dog runs\n")
    _raises(testing.check_dataset_format, Unclipped, tmp_path / "x.txt",
            match="moment [2.0, 12.0] must satisfy 0 <= start < end <= duration (10.0)")


# --- video readers ----------------------------------------------------------------------------

def test_builtin_video_reader_conforms():
    pytest.importorskip("av")
    from vdi_plugins.video_pyav import open_video

    report = testing.check_video_reader(open_video)
    assert report.called["VideoReader"] == {"info", "frames", "close"}


def test_a_video_reader_giving_bgr_floats_fails():
    pytest.importorskip("av")
    from vdi_plugins.video_pyav import open_video

    class FloatFrames:
        def __init__(self, reader):
            self.reader, self.info = reader, reader.info

        def frames(self):
            from dataclasses import replace

            for f in self.reader.frames():
                yield replace(f, image=f.image[..., ::-1].astype("float32") / 255)

        def close(self):
            self.reader.close()

    def broken(path, options):
        return FloatFrames(open_video(path=path, options=options))

    _raises(testing.check_video_reader, broken,
            match="frames(): image must be RGB uint8 [H, W, 3], got ndarray of shape (48, 64, 3) "
            "and dtype float32")
