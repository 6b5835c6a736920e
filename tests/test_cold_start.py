"""What makes a cold `vdi search` / repeat `vdi retrieve` cheap keeps its results: the shared
default tokenizer gives the tokens `open_clip.get_tokenizer` gives, the text-only load that
adopts the file's tensors gives the full model's sentence features, and the few-sentence text
encode on one thread leaves the thread count as it was."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.testing import register_tiny_open_clip  # noqa: E402

TEXTS = ["a red square moves to the LEFT!", "the blue circle " * 30]


def test_plain_clip_shares_open_clips_default_tokenizer(tmp_path):
    import json

    register_tiny_open_clip()
    import open_clip

    from vdi_cli.testing import TINY_CONFIG

    short = {**TINY_CONFIG, "text_cfg": {**TINY_CONFIG["text_cfg"], "context_length": 16}}
    (tmp_path / "vdi-tiny-ctx16.json").write_text(json.dumps(short))
    open_clip.add_model_config(tmp_path / "vdi-tiny-ctx16.json")

    from vdi_plugins.backbones_open_clip import _tokenizer_for

    shared = _tokenizer_for(open_clip, "ViT-B-32")
    assert shared is open_clip.tokenizer._tokenizer
    reference = open_clip.get_tokenizer("ViT-B-32")
    assert torch.equal(shared(TEXTS), reference(TEXTS))
    assert torch.equal(shared(TEXTS, context_length=16), reference(TEXTS, context_length=16))
    assert _tokenizer_for(open_clip, "vdi-tiny") is shared  # plain CLIP text, context 77
    own = _tokenizer_for(open_clip, "vdi-tiny-ctx16")  # context 16, not the default's 77
    assert own is not shared and own(TEXTS).shape == (2, 16)


def test_text_only_load_adopting_float32_tensors_equals_the_full_model(tmp_path):
    register_tiny_open_clip()
    import open_clip
    from safetensors.torch import save_file

    from vdi_cli.backbones import load_backbone

    torch.manual_seed(3)
    net = open_clip.create_model("vdi-tiny", pretrained=None)
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    full = load_backbone("open_clip:vdi-tiny", weights=str(weights))
    text = load_backbone("open_clip:vdi-tiny", weights=str(weights), text_only=True)
    assert text.text_only and not getattr(full, "text_only", False)
    tokens = full.tokenize(TEXTS)
    expected = net.encode_text(tokens).detach()
    assert torch.allclose(full.encode_text(tokens), expected, atol=1e-6)
    assert torch.equal(text.encode_text(tokens), full.encode_text(tokens))
    params = dict(text.named_text_parameters())
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params.values())


def test_few_sentences_encode_on_one_thread_and_restore_the_count(tmp_path, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    from vdi_cli.pipeline.retrieve import Retriever
    from vdi_cli.store import open_db

    register_tiny_open_clip()
    r = Retriever(open_db(tmp_path / "vdi.db"), training_free=True, backbone="open_clip:vdi-tiny")
    before = torch.get_num_threads()
    seen = []
    encode = r.loaded.model.encode_texts
    monkeypatch.setattr(r.loaded.model, "encode_texts",
                        lambda texts: seen.append(torch.get_num_threads()) or encode(texts))
    few = r.encode(TEXTS)
    many = r.encode([f"sentence {i}" for i in range(9)])
    assert seen == [1, before] and torch.get_num_threads() == before
    assert few.shape[0] == 2 and many.shape[0] == 9
    assert torch.equal(r.encode(TEXTS[:1])[0], few[0])  # cached, same vector


def test_a_repeat_retrieve_skips_the_probe_of_an_unchanged_extracted_video(tmp_path, monkeypatch):
    from vdi_cli.commands.retrieve_cmd import _decoded_before
    from vdi_cli.store import open_db
    from vdi_cli.testing import invoke, make_video

    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VDI_DB", str(tmp_path / "vdi.db"))
    video = make_video(tmp_path / "a.mp4", seconds=4, fps=2, size=(32, 32))
    db = open_db()
    assert not _decoded_before(db, video)  # never extracted
    done = invoke(["extract", str(video), "-b", "tiny-shapes"])
    assert done.exit_code == 0, done.stderr
    assert _decoded_before(db, video)
    video.write_bytes(b"not a video any more")  # changed: probed (and refused) again
    assert not _decoded_before(db, video)
    r = invoke(["retrieve", str(video), "a red square", "--training-free", "-b", "tiny-shapes"])
    assert r.exit_code == 1 and "Error: " in r.stderr and "Traceback" not in r.stderr
    assert not _decoded_before(db, tmp_path / "missing.mp4")
