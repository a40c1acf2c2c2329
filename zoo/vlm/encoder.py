"""A Hugging Face dual encoder (CLIP, SigLIP, VisionTextDualEncoder …) as image and text embedders."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.vlm.loading import FrameTransform, load_backbone, pick_device, resolve_backbone

# bitsandbytes' 8-bit matmul logs, on every call, the fp16 cast it always does on CPU.
logging.getLogger("bitsandbytes.autograd._functions").addFilter(
    lambda record: not record.getMessage().startswith("MatMul8bitLt: inputs will be cast"))


#: the largest frame side a reward model accepts: every frame is resized on float tensors (4 bytes a value), so
#: one 6000x6000 frame would cost about a gigabyte; the zoo's BEV frames are 64-512 pixels
MAX_FRAME_SIDE = 2048


def check_frames(frames: torch.Tensor) -> torch.Tensor:
    """Validate a batch of BEV frames: uint8, shape ``[..., 3, H, W]`` (channels first), H and W at most
    :data:`MAX_FRAME_SIDE`."""
    if not isinstance(frames, torch.Tensor):
        raise ZooError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise ZooError(f"frames must be uint8 (0-255), got {frames.dtype}; pass the env's `pixels` unchanged")
    if frames.ndim < 3:
        raise ZooError(f"frames must have shape [..., 3, H, W], got {tuple(frames.shape)}")
    if frames.shape[-3] != 3:
        hint = " (channels last? use frames.permute(..., 2, 0, 1))" if frames.shape[-1] == 3 else ""
        raise ZooError(f"frames must be RGB channels first [..., 3, H, W], got {tuple(frames.shape)}{hint}")
    if max(frames.shape[-2:]) > MAX_FRAME_SIDE:
        raise ZooError(f"frames must be at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE} pixels, got "
                       f"{frames.shape[-2]}x{frames.shape[-1]}; BEV frames are a few hundred pixels: resize it first")
    return frames


class DualEncoder(nn.Module):
    """L2-normalised image and text embeddings from a Hugging Face dual encoder.

    Build it with :func:`load_dual_encoder`. Frames are preprocessed on tensors (resize, centre crop,
    normalise with the checkpoint's image-processor settings) so batches never go through PIL.

    Args:
        model: a model with ``get_image_features`` and ``get_text_features`` (possibly peft-wrapped).
        tokenizer: its tokenizer.
        image_processor: its image processor (only its settings are read).
        source: where it was loaded from (part of the cache fingerprint).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, image_processor: Any, source: str) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.transform = FrameTransform(image_processor)
        text_config = getattr(model.config, "text_config", model.config)
        limits = [getattr(text_config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
        self.max_text_length = min(v for v in limits if v is not None and v < 1_000_000)
        # SigLIP was trained on texts padded to the full length; others use dynamic padding.
        self.pad_to_max = "siglip" in model.config.model_type

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` → normalised float ``[B, 3, h, w]`` at the model's input size."""
        return self.transform(check_frames(frames).to(self.device))

    def embed_images(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings ``[..., D]`` for uint8 frames ``[..., 3, H, W]``."""
        lead = check_frames(frames).shape[:-3]
        out = self.model.get_image_features(pixel_values=self.preprocess(frames.reshape(-1, *frames.shape[-3:])))
        return F.normalize(_pooled(out).float(), dim=-1).reshape(*lead, -1)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ZooError(f"texts must be a non-empty list of non-empty strings, got {texts!r}")
        lengths = [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]
        for text, length in zip(texts, lengths):
            if length > self.max_text_length:
                warnings.warn(f"text of {length} tokens truncated to the model's {self.max_text_length}: {text!r}",
                              stacklevel=3)
        tokens = self.tokenizer(list(texts), padding="max_length" if self.pad_to_max else True, truncation=True,
                                max_length=self.max_text_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Normalised text embeddings ``[N, D]``; texts over the model's length are truncated with a warning."""
        out = self.model.get_text_features(**self.tokenize(texts))
        return F.normalize(_pooled(out).float(), dim=-1)


def _pooled(output: Any) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def load_dual_encoder(
    name_or_path: str | os.PathLike,
    *,
    quantization: dict[str, Any] | None = None,
    lora: dict[str, Any] | None = None,
    adapter: str | os.PathLike | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> DualEncoder:
    """Load any Hugging Face dual encoder by hub id or local folder.

    Args:
        name_or_path: any source :func:`zoo.hub.resolve.resolve_model` takes: zoo name (``drive-clip-bev-tiny``),
            ``models:/`` URI, folder, or hub id (in the local cache here). A LoRA adapter folder loads its
            base (with the adapter's quantization unless ``quantization`` is given), then the adapter.
        quantization: ``{"bits": 4|8, ...}`` for bitsandbytes (see :func:`zoo.vlm.quantization_config`).
        lora: fresh LoRA adapters (see :class:`zoo.vlm.LoraSpec`), for fine-tuning.
        adapter: a folder with saved LoRA adapters to load on top of the (possibly quantized) base.
        device: ``"cpu"``, ``"cuda"`` …; default CUDA when available.
        trust_remote_code: allow model code from the checkpoint (off unless you ask for it).

    Example:
        >>> enc = load_dual_encoder("path/to/clip", quantization={"bits": 8})  # doctest: +SKIP
        >>> enc.embed_texts(["The road is clear with no car accidents"]).shape  # doctest: +SKIP
        torch.Size([1, 512])
    """
    from transformers import (  # lazy: transformers is slow to import
        AutoImageProcessor,
        AutoModel,
        AutoTokenizer,
    )

    backbone = resolve_backbone(name_or_path, "reward", quantization=quantization, lora=lora, adapter=adapter)
    source = str(backbone.path)
    model = load_backbone(AutoModel, backbone, lora=lora, device=pick_device(device),
                          trust_remote_code=trust_remote_code)
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ZooError(f"{source} is a {type(model).__name__}, not a dual encoder (CLIPModel, SiglipModel, "
                       "VisionTextDualEncoderModel …)")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    image_processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    encoder = DualEncoder(model, tokenizer, image_processor, source)
    encoder.quantization = dict(backbone.quantization or {})
    encoder.adapter = backbone.adapter
    return encoder.eval()
