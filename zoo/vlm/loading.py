"""What every Hugging Face backbone load shares: resolving the source, quantization, LoRA, frame preprocessing.

The dual encoders of the static pathway (:mod:`zoo.vlm.encoder`) and the generative describers of the
dynamic pathway (:mod:`zoo.vlm.describer`) load through these pieces, so a zoo name, an adapter folder,
``quantization`` and ``lora`` mean the same thing for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError
from zoo.hub.resolve import check_safetensors, resolve_model
from zoo.vlm.lora import apply_lora
from zoo.vlm.quantization import quantization_config


@dataclass(frozen=True)
class BackboneSource:
    """A backbone resolved to a local folder, with the adapter and quantization to load it with.

    Attributes:
        path: the Hugging Face folder of the (base) model.
        adapter: a saved LoRA adapter folder to load on top, or ``None``.
        quantization: the ``quantization`` entry to load the base with (the adapter's own when not given).
        card: the zoo card of ``path`` (``None`` for a plain Hugging Face folder).
    """

    path: Path
    adapter: str | None
    quantization: dict[str, Any] | None
    card: dict[str, Any] | None


def resolve_backbone(source: str | os.PathLike, kind: str, *, quantization: dict[str, Any] | None = None,
                     lora: dict[str, Any] | None = None, adapter: str | os.PathLike | None = None) -> BackboneSource:
    """Resolve ``source`` (any :func:`zoo.hub.resolve.resolve_model` source) for a backbone of the zoo kind ``kind``.

    A LoRA adapter folder (its card has ``adapter_of``) resolves to its base, with the adapter to load on
    top and the adapter's quantization unless ``quantization`` is given.

    Raises:
        ZooError: both ``lora`` and ``adapter``; a zoo model of another kind; extra adapters on an adapter.
    """
    if lora is not None and adapter is not None:
        raise ZooError("give either `lora` (new adapters) or `adapter` (saved adapters), not both")
    resolved = resolve_model(source)
    if resolved.card and resolved.card["kind"] != kind:
        raise ZooError(f"{source!r} is a {resolved.card['kind']} model, not a {kind} model")
    if resolved.card and "adapter_of" in resolved.card:
        if adapter is not None or lora is not None:
            raise ZooError(f"{source!r} is already a LoRA adapter; load its base to add other adapters")
        adapter = resolved.path
        quantization = quantization if quantization is not None else resolved.card.get("quantization")
        resolved = resolve_model(resolved.card["adapter_of"])
    return BackboneSource(Path(resolved.path), str(adapter) if adapter else None, quantization, resolved.card)


def pick_device(device: str | None) -> str:
    """``device``, or CUDA when available, else CPU."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def load_backbone(model_class: Any, source: BackboneSource, *, lora: dict[str, Any] | None, device: str,
                  trust_remote_code: bool) -> nn.Module:
    """``model_class.from_pretrained`` on ``source`` (bitsandbytes-quantized when asked), then its LoRA adapters.

    Args:
        model_class: a transformers auto class or model class.
        source: from :func:`resolve_backbone`.
        lora: fresh LoRA adapters (:class:`zoo.vlm.LoraSpec` fields), or ``None``.
        device: where the model goes.
        trust_remote_code: allow model code from the checkpoint.
    """
    from zoo.vlm.bev_conv import register  # lazy: would load transformers

    register()  # the zoo's own image tower, so AutoModel can build the zoo's models
    bnb = quantization_config(source.quantization)
    # safetensors only: transformers would otherwise fall back to unpickling pytorch_model.bin
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "use_safetensors": True}
    if bnb is not None:
        kwargs.update(quantization_config=bnb, device_map=device)
    try:
        model = model_class.from_pretrained(str(source.path), **kwargs)
    except ValueError as err:
        if "trust_remote_code" not in str(err):
            raise
        raise ZooError(f"{source.path} needs its own model code to load; the zoo runs such code only when asked: "
                       "pass trust_remote_code=True if you trust its source") from None
    if bnb is None:
        model = model.to(device)
    if source.adapter is not None:
        from peft import PeftModel  # lazy: peft is slow to import

        if not (Path(source.adapter) / "adapter_config.json").is_file():
            raise ZooError(f"{source.adapter} is not a LoRA adapter folder (no adapter_config.json)")
        check_safetensors(source.adapter)  # peft would otherwise unpickle adapter_model.bin
        model = PeftModel.from_pretrained(model, source.adapter)
    elif lora is not None:
        model = apply_lora(model, lora)
    return model


class FrameTransform(nn.Module):
    """uint8 frames ``[B, C, H, W]`` → normalised floats at a model's input size, on tensors (no PIL).

    Reads an image processor's settings: resize of the short side then centre crop (CLIP's recipe) when it
    has ``shortest_edge``, else a resize to ``size``; normalisation by ``image_mean`` / ``image_std``. ``C``
    may be a multiple of the processor's channels (frames stacked as channels): the statistics repeat.

    Args:
        image_processor: a Hugging Face image processor (only its settings are read).
    """

    def __init__(self, image_processor: Any) -> None:
        super().__init__()
        size = getattr(image_processor, "size", None) or {}
        crop = getattr(image_processor, "crop_size", None) or {}
        self.shortest_edge = size.get("shortest_edge")
        if getattr(image_processor, "do_center_crop", False) and crop:
            self.image_size = (crop["height"], crop["width"])
        elif self.shortest_edge:
            self.image_size = (self.shortest_edge, self.shortest_edge)
        else:
            self.image_size = (size["height"], size["width"])
        self.register_buffer("mean", torch.tensor(image_processor.image_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(image_processor.image_std).view(-1, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        channels = frames.shape[-3]
        if channels % len(self.mean):
            raise ZooError(f"frames have {channels} channels, not a multiple of the model's {len(self.mean)}")
        x = frames.to(torch.float32) / 255.0  # on the frames' device: the caller puts them beside the model
        if self.shortest_edge:
            h, w = x.shape[-2:]
            scale = self.shortest_edge / min(h, w)
            x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bicubic",
                              antialias=True, align_corners=False)
            top = (x.shape[-2] - self.image_size[0]) // 2
            left = (x.shape[-1] - self.image_size[1]) // 2
            x = x[..., top:top + self.image_size[0], left:left + self.image_size[1]]
        else:
            x = F.interpolate(x, size=self.image_size, mode="bicubic", antialias=True, align_corners=False)
        repeat = channels // len(self.mean)
        mean, std = (stat.to(x.device).repeat(repeat, 1, 1) for stat in (self.mean, self.std))
        return (x.clamp(0, 1) - mean) / std
