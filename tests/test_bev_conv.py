"""The zoo's own image tower ``zoo-bev-conv``: a Hugging Face model inside VisionTextDualEncoder, LoRA on its
convolutions, QLoRA on its quantized layers, and untrained builds cached per architecture definition."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.vlm import load_dual_encoder
from zoo.vlm.architectures import build_drive_clip_bev
from zoo.vlm.lora import _is_quantized


@pytest.fixture(scope="module")
def drive_clip(tmp_path_factory):
    return build_drive_clip_bev(tmp_path_factory.mktemp("drive-clip") / "model")


def test_the_tower_saves_and_loads_as_a_hugging_face_model(drive_clip):
    config = json.loads((drive_clip / "config.json").read_text())
    assert config["vision_config"]["model_type"] == "zoo-bev-conv"
    encoder = load_dual_encoder(str(drive_clip), device="cpu")
    frames = torch.randint(0, 256, (3, 3, 96, 96), dtype=torch.uint8)
    images = encoder.embed_images(frames)
    assert images.shape == (3, 128) and torch.allclose(images.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(images[0], images[1])


def _adapted_layers(encoder) -> dict[str, torch.nn.Module]:
    """The layers LoRA wraps (``<name>.base_layer``), by the wrapper's name."""
    return {name.removesuffix(".base_layer"): module for name, module in encoder.model.named_modules()
            if name.endswith(".base_layer")}


def test_qlora_adapts_exactly_the_quantized_layers_of_the_image_path(drive_clip):
    """Module census: on an 8-bit base every adapted layer is one bitsandbytes quantized, and the image path has
    one (the projection: the conv tower has no layer bitsandbytes can quantize); nothing else trains."""
    encoder = load_dual_encoder(str(drive_clip), device="cpu", quantization={"bits": 8},
                                lora={"r": 4, "alpha": 8, "towers": ["vision"]})
    adapted = _adapted_layers(encoder)
    assert adapted and all(map(_is_quantized, adapted.values())), adapted
    assert [name.rsplit(".", 1)[-1] for name in adapted] == ["visual_projection"]
    quantized = [name for name, m in encoder.model.named_modules() if _is_quantized(m) and "visual_projection" in name]
    assert quantized  # the layer the adapter sits on is stored in 8 bits
    for name, p in encoder.model.named_parameters():
        p.requires_grad_(".lora_" in name)
    encoder.embed_images(torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)).sum().backward()
    grads = {name: p.grad for name, p in encoder.model.named_parameters() if "lora_B" in name}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_qlora_on_both_towers_adapts_only_quantized_layers(drive_clip):
    encoder = load_dual_encoder(str(drive_clip), device="cpu", quantization={"bits": 4},
                                lora={"r": 4, "towers": ["vision", "text"]})
    adapted = _adapted_layers(encoder)
    assert any("text_model" in name for name in adapted) and any("visual_projection" in name for name in adapted)
    assert all(map(_is_quantized, adapted.values()))


def test_lora_without_quantization_adapts_the_convolutions_of_the_image_tower(drive_clip):
    encoder = load_dual_encoder(str(drive_clip), device="cpu", lora={"r": 4, "alpha": 8, "towers": ["vision"]})
    adapted = _adapted_layers(encoder)
    assert adapted and all(".vision_model.stages." in name for name in adapted)
    assert all(isinstance(m, torch.nn.Conv2d) for m in adapted.values())
    encoder.embed_images(torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)).sum().backward()
    grads = [p.grad for name, p in encoder.model.named_parameters() if "lora_B" in name]
    assert grads and all(g is not None for g in grads)


def test_an_untrained_build_is_cached_per_architecture_definition(tmp_path, monkeypatch):
    from zoo.hub import packaging

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    built: list[dict] = []
    monkeypatch.setattr(packaging, "build_once", lambda target, build: built.append(target) or target)
    builder = "zoo.vlm.architectures:build_drive_clip_bev"
    first = packaging.untrained_folder("drive-clip-bev-tiny", builder, {"size": "tiny"})
    other = packaging.untrained_folder("drive-clip-bev-tiny", builder, {"size": "small"})
    assert first != other and first.name.startswith("drive-clip-bev-tiny.untrained-seed0-")
    assert packaging.untrained_folder("drive-clip-bev-tiny", builder, {"size": "tiny"}) == first


def test_the_paired_gain_of_a_model_over_itself_is_zero_and_over_another_has_an_interval(drive_clip):
    import datasets

    from zoo.train.contrastive import paired_gain, split_rewards

    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (40, 3, 96, 96), dtype=torch.uint8, generator=generator)
    within = [i % 10 >= 8 for i in range(40)]  # the last 2 frames of each 10-frame episode precede a collision
    rows = datasets.Dataset.from_dict({"episode_seed": [i // 10 for i in range(40)], "collision_within_horizon": within,
                                       "crashed": [False] * 40, "time_to_collision": [1.0 + i % 10 for i in range(40)]})
    model = split_rewards(load_dual_encoder(str(drive_clip), device="cpu"), frames)
    same = paired_gain(model, model, rows, replicates=50)
    assert same["episodes"] == 4 and same["auroc_collision_1s"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    other = load_dual_encoder(str(build_drive_clip_bev(drive_clip.parent / "other", seed=1)), device="cpu")
    gain = paired_gain(split_rewards(other, frames), model, rows, replicates=50)["auroc_collision_1s"]
    assert gain["value"] != 0 and gain["low"] <= gain["high"]


def test_the_shipped_roundabout_adapter_is_qlora_on_quantized_layers():
    """The shipped adapter loads on its 8-bit base and every layer it adapts is one bitsandbytes quantized."""
    encoder = load_dual_encoder("drive-clip-bev-tiny.lora-roundabout", device="cpu")
    adapted = _adapted_layers(encoder)
    assert adapted and all(map(_is_quantized, adapted.values())), adapted
    assert any("visual_projection" in name for name in adapted)
