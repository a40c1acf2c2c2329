"""A Hugging Face dual encoder (CLIP, SigLIP, VisionTextDualEncoder …) as image and text embedders."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import ZooError

# bitsandbytes' 8-bit matmul logs, on every call, the fp16 cast it always does on CPU.
logging.getLogger("bitsandbytes.autograd._functions").addFilter(
    lambda record: not record.getMessage().startswith("MatMul8bitLt: inputs will be cast"))


def check_frames(frames: torch.Tensor) -> torch.Tensor:
    """Validate a batch of BEV frames: uint8, shape ``[..., 3, H, W]`` (channels first)."""
    if not isinstance(frames, torch.Tensor):
        raise ZooError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise ZooError(f"frames must be uint8 (0-255), got {frames.dtype}; pass the env's `pixels` unchanged")
    if frames.ndim < 3:
        raise ZooError(f"frames must have shape [..., 3, H, W], got {tuple(frames.shape)}")
    if frames.shape[-3] != 3:
        hint = " (channels last? use frames.permute(..., 2, 0, 1))" if frames.shape[-1] == 3 else ""
        raise ZooError(f"frames must be RGB channels first [..., 3, H, W], got {tuple(frames.shape)}{hint}")
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
        size = getattr(image_processor, "size", None) or {}
        crop = getattr(image_processor, "crop_size", None) or {}
        self.shortest_edge = size.get("shortest_edge")
        if getattr(image_processor, "do_center_crop", False) and crop:
            self.image_size = (crop["height"], crop["width"])
        elif self.shortest_edge:
            self.image_size = (self.shortest_edge, self.shortest_edge)
        else:
            self.image_size = (size["height"], size["width"])
        self.register_buffer("mean", torch.tensor(image_processor.image_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(image_processor.image_std).view(3, 1, 1), persistent=False)
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
        x = check_frames(frames).to(self.device, torch.float32) / 255.0
        if self.shortest_edge:  # resize the short side, then centre-crop (CLIP's recipe)
            h, w = x.shape[-2:]
            scale = self.shortest_edge / min(h, w)
            x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bicubic",
                              antialias=True, align_corners=False)
            top = (x.shape[-2] - self.image_size[0]) // 2
            left = (x.shape[-1] - self.image_size[1]) // 2
            x = x[..., top:top + self.image_size[0], left:left + self.image_size[1]]
        else:
            x = F.interpolate(x, size=self.image_size, mode="bicubic", antialias=True, align_corners=False)
        return (x.clamp(0, 1) - self.mean) / self.std

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


RANDOM_PREFIX = "random:"


def _random_model(spec: str) -> Path:
    from zoo.vlm.tiny import FAMILIES, SIZES, build_random_dual_encoder

    family, _, size = spec.rpartition("-")
    if family not in FAMILIES or size not in SIZES:
        choices = [f"{RANDOM_PREFIX}{f}-{s}" for f in FAMILIES for s in SIZES]
        raise ZooError(f"unknown random model {RANDOM_PREFIX + spec!r}; valid: {', '.join(choices)}")
    folder = Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo")) / "random" / f"{family}-{size}"
    if not (folder / "config.json").is_file():
        staging = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        build_random_dual_encoder(staging, family, size, seed=0)
        try:
            staging.rename(folder)
        except OSError:  # another process finished first
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    return folder


def resolve_pretrained(name_or_path: str | os.PathLike) -> str:
    """A local folder as is; a hub id if it is in the local Hugging Face cache (offline first).

    A hub id that is not cached is refused with instructions, unless ``ZOO_ALLOW_DOWNLOADS=1``.
    ``random:<family>-<size>`` (e.g. ``random:clip-tiny``) names a randomly initialised model built from
    a config (:mod:`zoo.vlm.tiny`) and saved under ``$ZOO_CACHE`` (default ``~/.cache/zoo``): it runs
    the real loading path, its rewards mean nothing.

    Raises:
        ZooError: not a model folder, or an id not available offline.
    """
    if str(name_or_path).startswith(RANDOM_PREFIX):
        return str(_random_model(str(name_or_path)[len(RANDOM_PREFIX):]))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ZooError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(str(name_or_path), "config.json")
    if isinstance(cached, str) or os.environ.get("ZOO_ALLOW_DOWNLOADS") == "1":
        return str(name_or_path)
    raise ZooError(
        f"model {str(name_or_path)!r} is neither a local folder nor in the local Hugging Face cache. The zoo "
        "works offline (this machine has no network): download it where there is network (`hf download "
        f"{name_or_path} --local-dir DIR`) and pass DIR, or set ZOO_ALLOW_DOWNLOADS=1 to let transformers fetch it.")


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
        name_or_path: hub id (must be in the local cache here) or a folder with config, weights,
            tokenizer and image-processor files.
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
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    from zoo.vlm.lora import apply_lora
    from zoo.vlm.quantization import quantization_config

    if lora is not None and adapter is not None:
        raise ZooError("give either `lora` (new adapters) or `adapter` (saved adapters), not both")
    source = resolve_pretrained(name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bnb = quantization_config(quantization)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if bnb is not None:
        kwargs.update(quantization_config=bnb, device_map=device)
    model = AutoModel.from_pretrained(source, **kwargs)
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ZooError(f"{source} is a {type(model).__name__}, not a dual encoder (CLIPModel, SiglipModel, "
                       "VisionTextDualEncoderModel …)")
    if bnb is None:
        model = model.to(device)
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ZooError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, str(adapter))
    elif lora is not None:
        model = apply_lora(model, lora)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    image_processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    encoder = DualEncoder(model, tokenizer, image_processor, source)
    encoder.quantization = dict(quantization or {})
    encoder.adapter = str(adapter) if adapter else None
    return encoder.eval()
