"""zoo.vlm: loading dual encoders (CLIP, SigLIP, VisionTextDualEncoder) in fp32 / 8-bit / 4-bit, LoRA and QLoRA,
saved adapters, and the errors a user gets for bad frames, prompts, model names and options.

Every model is a random tiny one built once per session (zoo.hub.random_models): no download, no network.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo.errors import ZooError
from zoo.hub.random_models import build_random_dual_encoder
from zoo.vlm import load_dual_encoder

FAMILIES = ("clip", "siglip", "vision-text")
QUANTIZATIONS = {"fp32": None, "8bit": {"bits": 8}, "4bit": {"bits": 4}}
EMBED_DIM = 64  # projection width of the tiny models


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """One random tiny model folder per family, built once for the whole session."""
    root = tmp_path_factory.mktemp("vlm_models")
    return {family: build_random_dual_encoder(root / family, family, size="tiny") for family in FAMILIES}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test here may download anything."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ZOO_ALLOW_DOWNLOADS", raising=False)


def _frames(n: int = 3, size: int = 48, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def _bnb_classes() -> dict[str, type]:
    import bitsandbytes as bnb

    return {"8bit": bnb.nn.Linear8bitLt, "4bit": bnb.nn.Linear4bit}


def _tower_linears(model: nn.Module) -> dict[str, nn.Module]:
    """Linear layers inside the transformer blocks of both towers (the layers quantization must convert)."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and (".layers." in name or ".layer." in name)}


# -- loading ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quant", QUANTIZATIONS, ids=str)
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_loads_in_each_precision_with_unit_norm_embeddings(model_dirs, family, quant):
    encoder = load_dual_encoder(model_dirs[family], quantization=QUANTIZATIONS[quant], device="cpu")
    linears = _tower_linears(encoder.model)
    assert len(linears) >= 12  # 2 layers x 2 towers x (attention + MLP)
    if quant == "fp32":
        import bitsandbytes as bnb

        bnb_types = (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit)
        assert not any(isinstance(m, bnb_types) for m in encoder.model.modules())
        assert all(type(m) is nn.Linear for m in linears.values()), {n: type(m) for n, m in linears.items()}
        assert all(p.dtype == torch.float32 for p in encoder.model.parameters())
    else:
        expected = _bnb_classes()[quant]
        wrong = {n: type(m).__name__ for n, m in linears.items() if not isinstance(m, expected)}
        assert not wrong, f"not {expected.__name__}: {wrong}"
    assert encoder.quantization == (QUANTIZATIONS[quant] or {})

    with torch.no_grad():
        images = encoder.embed_images(_frames(3, size=48))
        texts = encoder.embed_texts(["the road is clear", "two cars have collided", "a car"])
    assert images.shape == (3, EMBED_DIM) and texts.shape == (3, EMBED_DIM)
    assert images.dtype == torch.float32 and texts.dtype == torch.float32
    assert torch.allclose(images.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(texts.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.isfinite(images).all() and torch.isfinite(texts).all()
    # frames of any size are resized to the model's input; different frames, different embeddings
    with torch.no_grad():
        other = encoder.embed_images(_frames(1, size=96, seed=1))
    assert other.shape == (1, EMBED_DIM)
    assert not torch.allclose(images[0], images[1])


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_quantized_embeddings_stay_close_to_full_precision(model_dirs, quant):
    frames = _frames(4)
    with torch.no_grad():
        full = load_dual_encoder(model_dirs["clip"], device="cpu").embed_images(frames)
        low = load_dual_encoder(model_dirs["clip"], quantization=QUANTIZATIONS[quant], device="cpu").embed_images(frames)
    cosine = (full * low).sum(-1)
    assert (cosine > 0.9).all(), cosine  # quantization noise, not a different model


# -- LoRA ------------------------------------------------------------------------------------------------------
def _lora_params(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if "lora_" in name}


@pytest.mark.parametrize("family", [
    "clip", "siglip", "vision-text"])
def test_lora_wraps_the_model_in_peft_and_adapts_both_towers(model_dirs, family):
    from peft import PeftModel

    plain = load_dual_encoder(model_dirs[family], device="cpu")
    assert not isinstance(plain.model, PeftModel) and not _lora_params(plain.model)
    encoder = load_dual_encoder(model_dirs[family], lora={"r": 4}, device="cpu")
    assert isinstance(encoder.model, PeftModel)
    lora = _lora_params(encoder.model)
    assert lora and all(p.shape[0] == 4 or p.shape[1] == 4 for p in lora.values())
    assert any("text_model" in name for name in lora)
    assert any("vision_model" in name for name in lora)


@pytest.mark.parametrize("family", FAMILIES)
def test_reward_module_with_lora_trains_only_the_adapters(model_dirs, family):
    reward = zoo.create_reward_model(str(model_dirs[family]), head="clg", lora={"r": 4}, device="cpu")
    trainable = {name for name, p in reward.encoder.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert trainable == {name for name in dict(reward.encoder.named_parameters()) if "lora_" in name}
    reward_without = zoo.create_reward_model(str(model_dirs[family]), head="clg", device="cpu")
    assert not any(p.requires_grad for p in reward_without.encoder.parameters())


def _qlora_backward(encoder) -> dict[str, torch.Tensor | None]:
    for name, p in encoder.named_parameters():
        p.requires_grad_("lora_" in name)
    encoder.train()
    images = encoder.embed_images(_frames(2))
    texts = encoder.embed_texts(["the road is clear", "two cars have collided"])
    loss = -(images @ texts.T).diagonal().sum()
    loss.backward()
    return {name: p.grad for name, p in encoder.named_parameters() if "lora_" in name}


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
@pytest.mark.parametrize("family", FAMILIES)
def test_qlora_backward_gives_gradients_to_the_adapters_of_the_transformer_blocks(model_dirs, family, quant):
    encoder = load_dual_encoder(model_dirs[family], quantization=QUANTIZATIONS[quant], lora={"r": 4}, device="cpu")
    grads = _qlora_backward(encoder)
    base_grads = [p.grad for name, p in encoder.named_parameters() if "lora_" not in name]
    assert all(g is None for g in base_grads)  # the quantized base stays frozen
    blocks = {n: g for n, g in grads.items() if ".layers." in n or ".layer." in n}
    assert blocks
    # lora_B starts at zero, so lora_A's gradient is zero at first; lora_B's must be non-zero
    assert all(g is not None for g in blocks.values())
    assert all(g.abs().sum() > 0 for n, g in blocks.items() if "lora_B" in n)


@pytest.mark.parametrize("family", [
    "clip",
    "siglip",
    "vision-text",
])
def test_every_lora_adapter_is_used_in_the_forward_pass(model_dirs, family):
    encoder = load_dual_encoder(model_dirs[family], quantization={"bits": 4}, lora={"r": 4}, device="cpu")
    grads = _qlora_backward(encoder)
    dead = [name for name, g in grads.items() if "lora_B" in name and (g is None or g.abs().sum() == 0)]
    assert not dead


@pytest.mark.parametrize("family", [
    "clip", "siglip",
    "vision-text",
])
def test_lora_on_the_vision_tower_only_adapts_only_vision_modules(model_dirs, family):
    encoder = load_dual_encoder(model_dirs[family], lora={"r": 4, "towers": ["vision"]}, device="cpu")
    lora = _lora_params(encoder.model)
    assert lora
    assert all("vision_model" in name for name in lora), [n for n in lora if "vision_model" not in n]


def test_lora_on_the_vit_tower_with_explicit_targets(model_dirs):
    """Workaround for the ViT default targets: name the projections explicitly."""
    encoder = load_dual_encoder(model_dirs["vision-text"], device="cpu",
                                lora={"r": 4, "towers": ["vision"], "target_modules": ["q_proj", "v_proj"]})
    lora = _lora_params(encoder.model)
    assert lora and all("vision_model" in name for name in lora)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in lora} == {"q_proj", "v_proj"}


def test_lora_on_the_text_tower_only(model_dirs):
    encoder = load_dual_encoder(model_dirs["clip"], lora={"r": 4, "towers": ["text"]}, device="cpu")
    lora = _lora_params(encoder.model)
    assert lora and all("text_model" in name for name in lora)


def test_lora_target_matching_nothing_lists_the_module_names(model_dirs):
    with pytest.raises(ZooError, match="match no module") as info:
        load_dual_encoder(model_dirs["clip"], lora={"r": 4, "target_modules": ["no_such_layer"]}, device="cpu")
    message = str(info.value)
    assert "no_such_layer" in message
    for name in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"):
        assert name in message


def test_unknown_lora_tower_is_refused(model_dirs):
    with pytest.raises(ZooError, match="vision, text"):
        load_dual_encoder(model_dirs["clip"], lora={"r": 4, "towers": ["audio"]}, device="cpu")


def test_lora_and_adapter_together_are_refused(model_dirs, tmp_path):
    with pytest.raises(ZooError, match="not both"):
        load_dual_encoder(model_dirs["clip"], lora={"r": 4}, adapter=tmp_path, device="cpu")


def test_adapter_folder_without_config_is_refused(model_dirs, tmp_path):
    with pytest.raises(ZooError, match="adapter_config.json"):
        load_dual_encoder(model_dirs["clip"], adapter=tmp_path, device="cpu")


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_adapters_save_small_and_load_back_on_a_quantized_base(model_dirs, tmp_path, quant):
    family = "clip"
    q = QUANTIZATIONS[quant]
    encoder = load_dual_encoder(model_dirs[family], quantization=q, lora={"r": 4}, device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():  # "train" the adapters: lora_B starts at zero (an identity adapter)
        for name, p in encoder.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    frames = _frames(3)
    texts = ["the road is clear", "a car"]
    with torch.no_grad():
        before_images, before_texts = encoder.embed_images(frames), encoder.embed_texts(texts)
        base = load_dual_encoder(model_dirs[family], quantization=q, device="cpu")
        base_images = base.embed_images(frames)
    assert not torch.allclose(before_images, base_images, atol=1e-3)  # the adapters do something

    folder = tmp_path / "adapter"
    encoder.model.save_pretrained(folder)
    files = {p.name for p in folder.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files
    adapter_bytes = (folder / "adapter_model.safetensors").stat().st_size
    model_bytes = (Path(model_dirs[family]) / "model.safetensors").stat().st_size
    assert adapter_bytes < model_bytes / 5, (adapter_bytes, model_bytes)
    assert not any(f.startswith("model") for f in files)  # no copy of the base weights

    loaded = load_dual_encoder(model_dirs[family], quantization=q, adapter=folder, device="cpu")
    assert loaded.adapter == str(folder)
    assert any(isinstance(m, _bnb_classes()[quant]) for m in loaded.model.modules())
    with torch.no_grad():
        after_images, after_texts = loaded.embed_images(frames), loaded.embed_texts(texts)
    assert torch.allclose(after_images, before_images, atol=1e-4)
    assert torch.allclose(after_texts, before_texts, atol=1e-4)


def test_reward_model_on_a_saved_adapter_scores_like_the_adapted_encoder(model_dirs, tmp_path):
    encoder = load_dual_encoder(model_dirs["clip"], quantization={"bits": 8}, lora={"r": 4}, device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in encoder.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    encoder.model.save_pretrained(tmp_path / "adapter")
    reward = zoo.create_reward_model(str(model_dirs["clip"]), head="lord", quantization={"bits": 8},
                                     adapter=str(tmp_path / "adapter"), device="cpu")
    frames = _frames(2)
    with torch.no_grad():
        expected = 1 - encoder.embed_images(frames) @ encoder.embed_texts([reward.negative])[0]
    assert torch.allclose(reward.score(reward.image_embeddings(frames))["reward"], expected, atol=1e-4)
    assert str(tmp_path / "adapter") in reward.fingerprint  # cache entries of other adapters never collide


# -- bad input ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_encoder(model_dirs):
    return load_dual_encoder(model_dirs["clip"], device="cpu")


def test_float_frames_are_refused(clip_encoder):
    with pytest.raises(ZooError, match="uint8"):
        clip_encoder.embed_images(torch.rand(2, 3, 32, 32))


def test_channels_last_frames_are_refused_with_a_hint(clip_encoder):
    frames = _frames(2).permute(0, 2, 3, 1).contiguous()  # [B, H, W, 3]
    with pytest.raises(ZooError, match="channels") as info:
        clip_encoder.embed_images(frames)
    assert "permute" in str(info.value)


@pytest.mark.parametrize("shape", [(2, 4, 32, 32), (32, 32), (2, 1, 32, 32)], ids=str)
def test_frames_of_a_wrong_shape_are_refused(clip_encoder, shape):
    with pytest.raises(ZooError, match=r"\[\.\.\., 3, H, W\]"):
        clip_encoder.embed_images(torch.zeros(shape, dtype=torch.uint8))


@pytest.mark.parametrize("shape", [(3, 48, 48), (2, 2, 3, 48, 48)], ids=str)
def test_frames_with_other_leading_dims_embed_or_are_refused_clearly(model_dirs, clip_encoder, shape):
    """Whatever check_frames accepts must either embed (one embedding per frame) or raise a ZooError."""
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    reward = zoo.create_reward_model(str(model_dirs["clip"]), head="clg", device="cpu")
    for embed in (clip_encoder.embed_images, reward.image_embeddings):
        try:
            with torch.no_grad():
                out = embed(frames)
        except ZooError:
            continue
        assert out.shape[-1] == EMBED_DIM and out.numel() == EMBED_DIM * frames[..., 0, 0, 0].numel()


def test_frames_that_are_not_tensors_are_refused(clip_encoder):
    import numpy as np

    with pytest.raises(ZooError, match="torch.Tensor"):
        clip_encoder.embed_images(np.zeros((1, 3, 32, 32), dtype=np.uint8))


@pytest.mark.parametrize("texts", [[], [""], ["  "], "a bare string", ["ok", ""]], ids=repr)
def test_empty_texts_are_refused(clip_encoder, texts):
    with pytest.raises(ZooError, match="non-empty"):
        clip_encoder.embed_texts(texts)


@pytest.mark.parametrize("prompts", [{"positive": ""}, {"negative": "   "}, {"positive": None}], ids=str)
def test_empty_prompts_are_refused_by_create_reward_model(model_dirs, prompts):
    with pytest.raises(ZooError, match="non-empty string"):
        zoo.create_reward_model(str(model_dirs["clip"]), head="clg", prompts=prompts, device="cpu")


def test_a_prompt_for_another_head_is_refused_naming_the_valid_ones(model_dirs):
    with pytest.raises(ZooError, match="takes no prompt") as info:
        zoo.create_reward_model(str(model_dirs["clip"]), head="clg", prompts={"goal": "A car is driving safely"},
                                device="cpu")
    assert "goal" in str(info.value) and "negative, positive" in str(info.value)
    with pytest.raises(ZooError, match="baseline, goal"):
        zoo.create_reward_model(str(model_dirs["clip"]), head="vlm-rm", prompts={"negative": "a crash"},
                                device="cpu")


def test_unknown_head_is_refused(model_dirs):
    with pytest.raises(ZooError, match="clg"):
        zoo.create_reward_model(str(model_dirs["clip"]), head="clip-score", device="cpu")


@pytest.mark.parametrize("family", FAMILIES)
def test_text_over_the_max_length_warns_and_still_embeds(model_dirs, family):
    encoder = load_dual_encoder(model_dirs[family], device="cpu")
    long_text = " ".join(["the road is clear with no car accidents"] * 10)
    assert len(encoder.tokenizer(long_text)["input_ids"]) > encoder.max_text_length
    with pytest.warns(UserWarning, match="truncated"):
        embedding = encoder.embed_texts([long_text])
    assert embedding.shape == (1, EMBED_DIM)
    assert torch.allclose(embedding.norm(dim=-1), torch.ones(1), atol=1e-5)
    with warnings.catch_warnings():  # a short text does not warn
        warnings.simplefilter("error", UserWarning)
        encoder.embed_texts(["a car"])


def test_hub_id_not_available_offline_is_refused_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("ZOO_ALLOW_DOWNLOADS", raising=False)
    with pytest.raises(ZooError) as info:
        load_dual_encoder("nobody/no-such-model", device="cpu")
    message = str(info.value)
    assert "nobody/no-such-model" in message
    assert "offline" in message
    assert "local folder" in message and "--local-dir" in message


def test_a_folder_without_config_is_refused(tmp_path):
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ZooError, match="config.json"):
        load_dual_encoder(tmp_path / "empty-model", device="cpu")


@pytest.mark.parametrize("bits", [3, 16, None])
def test_quantization_bits_must_be_4_or_8(model_dirs, bits):
    with pytest.raises(ZooError, match="4 or 8") as info:
        load_dual_encoder(model_dirs["clip"], quantization={"bits": bits}, device="cpu")
    assert repr(bits) in str(info.value)


def test_unknown_quantization_options_are_refused(model_dirs):
    with pytest.raises(ZooError, match="bits, quant_type"):
        load_dual_encoder(model_dirs["clip"], quantization={"bits": 4, "group_size": 64}, device="cpu")
    with pytest.raises(ZooError, match="nf4, fp4"):
        load_dual_encoder(model_dirs["clip"], quantization={"bits": 4, "quant_type": "int4"}, device="cpu")


def test_unknown_crop_is_refused_naming_the_valid_ones(model_dirs):
    with pytest.raises(ZooError, match="none, right_half") as info:
        zoo.create_reward_model(str(model_dirs["clip"]), head="clg", crop="left_half", device="cpu")
    assert "left_half" in str(info.value)


def test_unknown_random_model_lists_the_valid_names(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    with pytest.raises(ZooError, match="random:clip-huge") as info:
        load_dual_encoder("random:clip-huge", device="cpu")
    message = str(info.value)
    for name in ("random:clip-tiny", "random:siglip-tiny", "random:vision-text-tiny", "random:clip-vit-b-32"):
        assert name in message
    assert not any(tmp_path.iterdir())  # nothing was built


def test_random_model_is_built_once_under_zoo_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    encoder = load_dual_encoder("random:siglip-tiny", device="cpu")
    folder = tmp_path / "random" / "siglip-tiny"
    assert encoder.source == str(folder) and (folder / "config.json").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    again = load_dual_encoder("random:siglip-tiny", device="cpu")
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    frames = _frames(2)
    with torch.no_grad():
        assert torch.equal(encoder.embed_images(frames), again.embed_images(frames))
    assert [p.name for p in (tmp_path / "random").iterdir()] == ["siglip-tiny"]  # no staging folder left
