"""Randomly initialised dual encoders built from configs and saved in Hugging Face format.

They exercise the real loading path (config, safetensors, tokenizer, image processor) with no
download: the tests use them, the speed benchmark uses a CLIP ViT-B/32-sized one, and recipes may
use one until a trained reward model is shipped. Their rewards carry no meaning.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.registry import check_choice

FAMILIES = ("clip", "siglip", "vision-text")
SIZES = ("tiny", "vit-b-32")
_WORDS = ("the road is clear with no car accidents two cars have collided each other on a driving safely "
          "ahead obstacles pedestrian crossing vehicle lane highway merge fast slow stopped").split()


def _tokenizer(folder: Path, max_length: int):
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(_WORDS)),
             *"abcdefghijklmnopqrstuvwxyz0123456789.,", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab))
    return BertTokenizerFast(str(folder / "vocab.txt"), model_max_length=max_length), len(vocab)


def build_random_dual_encoder(folder: str | Path, family: str = "clip", size: str = "tiny", seed: int = 0) -> Path:
    """Save a random dual encoder of ``family`` (clip, siglip, vision-text) and ``size`` to ``folder``.

    ``tiny``: 2 layers of width 64 per tower, 32×32 images (widths are multiples of 64 so that
    bitsandbytes' 4-bit CPU kernels accept them). ``vit-b-32``: CLIP ViT-B/32's architecture.

    Example:
        >>> path = build_random_dual_encoder(tmp_path / "clip")  # doctest: +SKIP
        >>> encoder = zoo.vlm.load_dual_encoder(path)  # doctest: +SKIP
    """
    from transformers import (BertConfig, CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig,
                              SiglipImageProcessor, SiglipModel, ViTConfig, ViTImageProcessor,
                              VisionTextDualEncoderConfig, VisionTextDualEncoderModel)

    check_choice("family", family, FAMILIES)
    check_choice("size", size, SIZES)
    folder = Path(folder)
    big = size == "vit-b-32"
    text_len = 77 if big else 16
    tokenizer, vocab_size = _tokenizer(folder, text_len)
    vision = dict(hidden_size=768 if big else 64, intermediate_size=3072 if big else 128,
                  num_hidden_layers=12 if big else 2, num_attention_heads=12 if big else 2,
                  image_size=224 if big else 32, patch_size=32 if big else 8)
    text = dict(vocab_size=vocab_size, hidden_size=512 if big else 64, intermediate_size=2048 if big else 128,
                num_hidden_layers=12 if big else 2, num_attention_heads=8 if big else 2,
                max_position_embeddings=text_len)
    projection = 512 if big else 64
    image = vision["image_size"]
    torch.manual_seed(seed)
    if family == "clip":
        model = CLIPModel(CLIPConfig(text_config={**text, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
                                     vision_config=vision, projection_dim=projection))
        processor = CLIPImageProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image})
    elif family == "siglip":
        model = SiglipModel(SiglipConfig(text_config={**text, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
                                         vision_config=vision))
        processor = SiglipImageProcessor(size={"height": image, "width": image})
    else:
        config = VisionTextDualEncoderConfig.from_vision_text_configs(
            ViTConfig(**{**vision, "num_channels": 3}),
            BertConfig(**{k: v for k, v in text.items()}, pad_token_id=0), projection_dim=projection)
        model = VisionTextDualEncoderModel(config)
        processor = ViTImageProcessor(size={"height": image, "width": image})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
