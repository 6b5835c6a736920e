"""Backbones: the tiny open_clip model, ids, weights (local files, missing offline), hf-clip."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vdi_cli.backbones import file_sha256, load_backbone, resolve_backbone  # noqa: E402
from vdi_cli.errors import UnknownComponentError, VdiError  # noqa: E402
from vdi_cli.registry import get_registry  # noqa: E402
from vdi_cli.testing import register_tiny_open_clip, tiny_backbone  # noqa: E402
from vdi_plugins.backbones_open_clip import parse_open_clip_id  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return tiny_backbone()


def _frames(n=3, h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_builtin_backbones_are_registered():
    reg = get_registry("backbone")
    assert {"clip-vit-b32", "clip-vit-b16", "clip-vit-l14", "open-clip", "hf-clip"} <= set(
        reg.ids()
    )
    spec = resolve_backbone("clip-vit-b32")  # nothing loaded, nothing downloaded
    assert (spec.arch, spec.tag, spec.weights_id, spec.id) == (
        "ViT-B-32", "openai", "openai", "clip-vit-b32"
    )
    assert resolve_backbone("clip-vit-l14").arch == "ViT-L-14"
    # options that change a preset change its id too, so cache keys never collide
    changed = resolve_backbone("clip-vit-b32", options={"arch": "ViT-B-16"})
    assert (changed.id, changed.weights_id) == ("open_clip:ViT-B-16@openai", "openai")
    assert resolve_backbone("clip-vit-b32", options={"pretrained": "none"}).id == (
        "open_clip:ViT-B-32"
    )


def test_open_clip_id_parsing():
    assert parse_open_clip_id("open_clip:ViT-B-32@laion2b_s34b_b79k") == (
        "ViT-B-32", "laion2b_s34b_b79k"
    )
    assert parse_open_clip_id("open_clip:ViT-B-16") == ("ViT-B-16", None)
    for bad in ("open_clip:", "open_clip:@openai", "open_clip:ViT-B-32@"):
        with pytest.raises(VdiError, match="open_clip:ARCH@TAG"):
            parse_open_clip_id(bad)
    spec = resolve_backbone("open_clip:ViT-B-16@openai")
    assert (spec.arch, spec.tag, spec.weights_id, spec.id) == (
        "ViT-B-16", "openai", "openai", "open_clip:ViT-B-16@openai"
    )
    assert resolve_backbone("open_clip:ViT-B-16").weights_id == "random:0"
    with pytest.raises(UnknownComponentError, match="clip-vit-b32"):
        resolve_backbone("clip-vit-b23")


def test_tiny_backbone_shapes_and_joint_space(tiny):
    assert (tiny.embed_dim, tiny.patch_grid, tiny.image_size) == (32, (4, 4), 32)
    assert (tiny.id, tiny.weights_id) == ("open_clip:vdi-tiny", "random:0")
    frames = _frames()
    g, p = tiny.encode_frames(frames)
    assert g.shape == (3, 32) and p.shape == (3, 16, 32) and g.dtype == torch.float32
    pixels = tiny.preprocess(frames)
    assert pixels.shape == (3, 3, 32, 32)
    visual = tiny.module.visual
    visual.output_tokens = False
    try:
        reference = tiny.module.encode_image(pixels)  # open_clip's own image embedding
    finally:
        visual.output_tokens = True
    assert torch.allclose(g, reference, atol=1e-5)


def test_preprocess_resizes_short_side_and_centre_crops(tiny):
    # a 40 x 80 frame whose left and right quarters are white: after resizing the short side to
    # 32 (-> 32 x 64) and cropping the centre 32 x 32, no white is left
    img = np.zeros((1, 40, 80, 3), np.uint8)
    img[:, :, :20] = 255
    img[:, :, 60:] = 255
    x = tiny.preprocess(img)
    black = (0 - torch.tensor(tiny.mean)) / torch.tensor(tiny.std)
    assert torch.allclose(x[0, :, :, 2:30], black.view(3, 1, 1).expand(3, 32, 28), atol=1e-4)


def test_preprocess_normalises_like_clip_into_contiguous_nchw(tiny):
    # no resize at 32 x 32: the output is exactly (x / 255 - mean) / std per channel, NCHW
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    x = tiny.preprocess(img)
    ref = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 255.0
    ref = (ref - torch.tensor(tiny.mean).view(1, 3, 1, 1)) / torch.tensor(tiny.std).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and x.is_contiguous() and x.shape == (2, 3, 32, 32)
    assert torch.allclose(x, ref, atol=1e-5)


def test_mean_text_pooling_by_hand(tiny):
    from vdi_cli.errors import VdiError

    texts = ["a person opens the door", "someone runs"]
    full, short = tiny.tokenize(texts), tiny.tokenize(texts, context_length=16)
    m = tiny.module
    with torch.no_grad():
        x = m.token_embedding(full) + m.positional_embedding
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))
        ends = full.argmax(-1)  # the end token: start + 5 words + end, start + 2 words + end
        assert ends.tolist() == [6, 3]
        want = torch.stack([x[i, : e + 1].mean(0) for i, e in enumerate(ends.tolist())])
        want = want @ m.text_projection
        got = tiny.encode_text(full, pool="mean")
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # exact under trimmed padding too, and not CLIP's end-token vector
    torch.testing.assert_close(tiny.encode_text(short, pool="mean"), got, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, tiny.encode_text(full), atol=1e-3)
    with pytest.raises(VdiError, match="unknown text pooling 'max'"):
        tiny.encode_text(full, pool="max")


def test_random_weights_are_the_same_every_load(tiny):
    again = tiny_backbone()
    assert torch.equal(again.module.visual.proj, tiny.module.visual.proj)


def test_text_tower_short_context_and_training(tiny):
    texts = ["a person opens the door", "someone runs"]
    full = tiny.tokenize(texts)
    short = tiny.tokenize(texts, context_length=16)
    assert full.shape == (2, 77) and short.shape == (2, 16) and full.dtype == torch.long
    e_full, e_short = tiny.encode_text(full), tiny.encode_text(short)
    assert e_full.shape == (2, 32)
    assert torch.allclose(e_full, tiny.module.encode_text(full), atol=1e-5)
    assert torch.allclose(e_short, e_full, atol=1e-5)  # causal mask: padding changes nothing
    names = {n for n, _ in tiny.named_text_parameters()}
    assert "token_embedding.weight" in names and "text_projection" in names
    assert not any(n.startswith("visual.") or n == "logit_scale" for n in names)
    tiny.module.zero_grad()
    e_short.pow(2).sum().backward()
    assert tiny.module.token_embedding.weight.grad is not None
    assert tiny.module.visual.proj.grad is None
    state = tiny.text_state_dict()
    assert set(state) == names
    tiny.load_text_state_dict(state)
    with pytest.raises(VdiError, match="does not fit"):
        tiny.load_text_state_dict({"visual.proj": state["text_projection"]})


def test_local_weights_file_and_local_dir(tiny, tmp_path):
    import json

    from safetensors.torch import save_file

    from vdi_cli.testing import TINY_CONFIG

    register_tiny_open_clip()
    state = {k: v.clone() * 0.5 for k, v in tiny.module.state_dict().items()}
    ckpt = tmp_path / "tiny.safetensors"
    save_file(state, str(ckpt))
    loaded = load_backbone("open_clip:vdi-tiny", weights=str(ckpt))
    assert loaded.weights_id == "sha256:" + file_sha256(ckpt)
    assert torch.allclose(loaded.module.visual.proj, tiny.module.visual.proj * 0.5)
    folder = tmp_path / "dir"
    folder.mkdir()
    save_file(state, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    from_dir = load_backbone("open_clip:vdi-tiny", weights=f"local-dir:{folder}")
    assert from_dir.weights_id == loaded.weights_id
    assert torch.allclose(from_dir.module.visual.proj, loaded.module.visual.proj)
    with pytest.raises(VdiError, match="does not exist"):
        _ = resolve_backbone("clip-vit-b32", weights=str(tmp_path / "nope.pt")).weights_id
    with pytest.raises(VdiError, match="open_clip_config.json"):
        load_backbone("clip-vit-b32", weights=f"local-dir:{tmp_path}")


def test_missing_pretrained_weights_fail_fast_offline(monkeypatch, tmp_path):
    import open_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_download(*args, **kwargs):
        raise AssertionError("must not try to download when offline")

    monkeypatch.setattr(open_clip, "download_pretrained", no_download)
    monkeypatch.setattr(open_clip, "create_model", no_download)  # fails before building
    with pytest.raises(VdiError) as exc:  # at once: no download attempt, no model built
        load_backbone("clip-vit-b32")
    msg, hint = exc.value.message, exc.value.hint
    assert "'openai'" in msg and "ViT-B-32" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "timm/vit_base_patch32_clip_224.openai" in msg  # where it would come from
    assert "cache" in msg
    assert "--weights" in hint and "local-dir:" in hint


def test_unknown_tag_and_arch():
    with pytest.raises(VdiError, match="no pretrained tag 'bogus'.*") as exc:
        load_backbone("open_clip:ViT-B-32@bogus")
    assert "openai" in exc.value.hint
    with pytest.raises(VdiError, match="no architecture 'ViT-Q-99'"):
        load_backbone("open_clip:ViT-Q-99")


def test_vit_b32_random_weights_have_a_7x7_grid():
    b = load_backbone("open_clip:ViT-B-32")
    assert (b.embed_dim, b.patch_grid, b.image_size) == (512, (7, 7), 224)
    g, p = b.encode_frames(_frames(1, 60, 80))
    assert g.shape == (1, 512) and p.shape == (1, 49, 512)


def test_precision_and_device_errors():
    with pytest.raises(VdiError, match="fp16 needs a cuda device"):
        load_backbone("open_clip:vdi-tiny", precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(VdiError, match="no CUDA device"):
            load_backbone("open_clip:vdi-tiny", device="cuda")


# --- the transformers backend -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from vdi_cli.compat.torchvision_shim import ensure_torchvision

    ensure_torchvision()
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 77},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 48, "patch_size": 16},
        projection_dim=24,
    )
    folder = tmp_path_factory.mktemp("hf") / "tiny-clip"
    CLIPModel(config).save_pretrained(str(folder))
    return folder


def test_hf_clip_tiny_model(hf_folder):
    b = load_backbone(f"hf-clip:{hf_folder}")
    assert (b.embed_dim, b.patch_grid, b.image_size) == (24, (3, 3), 48)
    assert b.weights_id == "sha256:" + file_sha256(hf_folder / "model.safetensors")
    frames = _frames(2)
    g, p = b.encode_frames(frames)
    assert g.shape == (2, 24) and p.shape == (2, 9, 24)
    model = b.module
    with torch.no_grad():
        out = model.vision_model(pixel_values=b.preprocess(frames))
        assert torch.allclose(g, model.visual_projection(out.pooler_output), atol=1e-5)
        tokens = model.visual_projection(model.vision_model.post_layernorm(
            out.last_hidden_state[:, 1:]))
    assert torch.allclose(p, tokens, atol=1e-5)
    ids = b.tokenize(["a person opens the door"], context_length=16)
    assert ids.shape == (1, 16) and ids[0, 0].item() == 49406  # CLIP's start token
    e = b.encode_text(ids)
    assert e.shape == (1, 24)
    with torch.no_grad():  # mean pooling: the final states from the start token to the end token
        states = model.text_model(input_ids=ids).last_hidden_state[0]
        end = int(ids[0].argmax())
        want = model.text_projection(states[: end + 1].mean(0))
        torch.testing.assert_close(b.encode_text(ids, pool="mean")[0], want)
    e.sum().backward()
    assert model.text_model.embeddings.token_embedding.weight.grad is not None
    assert all(n.startswith(("text_model.", "text_projection.")) for n, _ in
               b.named_text_parameters())


def test_hf_clip_hub_id_offline_and_bad_ids(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VdiError, match="openai/clip-vit-base-patch32") as exc:
        load_backbone("hf-clip:openai/clip-vit-base-patch32")
    assert "HF_HUB_OFFLINE=1" in exc.value.message and "hf-clip:/path" in exc.value.hint
    with pytest.raises(VdiError, match="after the prefix"):
        resolve_backbone("hf-clip:")
    with pytest.raises(VdiError, match="not --weights"):
        resolve_backbone("hf-clip:x", weights="w.bin")


@pytest.mark.gpu
def test_cuda_half_precision_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cpu = load_backbone("open_clip:ViT-B-32")
    gpu = load_backbone("open_clip:ViT-B-32", device="cuda")
    assert gpu.visual_dtype == torch.float16
    frames = _frames(4, 120, 160)
    g_cpu, p_cpu = cpu.encode_frames(frames)
    g_gpu, p_gpu = gpu.encode_frames(frames)
    cos_g = torch.nn.functional.cosine_similarity(g_cpu, g_gpu.cpu(), dim=-1)
    cos_p = torch.nn.functional.cosine_similarity(p_cpu, p_gpu.cpu(), dim=-1)
    assert cos_g.min() > 0.999 and cos_p.min() > 0.995
    assert torch.allclose(g_cpu, g_gpu.cpu(), atol=5e-2, rtol=5e-2)


def test_check_device_refuses_what_torch_cannot_use_before_any_model():
    """`--device banana` was torch's RuntimeError after the weights had loaded (11-17 s)."""
    from vdi_cli.backbones import check_device

    assert check_device("cpu") == "cpu" and check_device("cpu:0") == "cpu:0"
    cases = {
        "banana": "unknown device 'banana'$",
        "cdua": r"unknown device 'cdua' \(did you mean 'cuda'\?\)",
        "CPU": r"did you mean 'cpu'",
        "meta": "device 'meta' is not one vdi runs on",
        "cuda:99": "cuda:99",  # no CUDA here, or fewer than 100 GPUs
    }
    for device, pattern in cases.items():
        with pytest.raises(VdiError, match=pattern) as exc:
            check_device(device)
        assert exc.value.hint
    if torch.cuda.is_available():
        with pytest.raises(VdiError, match="does not exist: this machine has"):
            check_device(f"cuda:{torch.cuda.device_count()}")
