"""The zoo's own image tower ``zoo-bev-conv``: a Hugging Face model inside VisionTextDualEncoder, LoRA on its
convolutions, and untrained builds cached per architecture definition."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.vlm import load_dual_encoder
from zoo.vlm.architectures import build_drive_clip_bev


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


def test_lora_adapts_the_convolutions_of_the_image_tower_on_an_8_bit_base(drive_clip):
    encoder = load_dual_encoder(str(drive_clip), device="cpu", quantization={"bits": 8},
                                lora={"r": 4, "alpha": 8, "towers": ["vision"]})
    adapted = {name.split(".lora_")[0] for name, _ in encoder.model.named_parameters() if ".lora_" in name}
    assert adapted and all(".vision_model.stages." in name for name in adapted)
    convs = [m for name, m in encoder.model.named_modules() if name.endswith(".base_layer") and "vision" in name]
    assert convs and all(isinstance(m, torch.nn.Conv2d) for m in convs)
    encoder.embed_images(torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)).sum().backward()
    grads = [p.grad for name, p in encoder.model.named_parameters() if "lora_B" in name]
    assert all(g is not None for g in grads)


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
