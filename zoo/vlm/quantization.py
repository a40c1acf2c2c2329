"""bitsandbytes quantization from a recipe's ``quantization: {bits: 4|8}`` entry."""

from __future__ import annotations

from typing import Any

from zoo.registry import ZooError


#: towers whose linear layers see 4-D inputs (ConvNeXt's pointwise convolutions), which bitsandbytes'
#: int8 CPU kernel does not take: they stay in full precision (they are small next to a text tower)
CONVOLUTIONAL = ("convnext", "convnextv2")


def quantization_config(spec: dict[str, Any] | None, skip_modules: list[str] | tuple[str, ...] = ()):
    """A ``transformers.BitsAndBytesConfig`` for ``spec``, or ``None`` for full precision.

    ``spec`` keys: ``bits`` (4 or 8), and for 4 bits ``quant_type`` (``"nf4"`` default, or ``"fp4"``),
    ``double_quant`` (bool, default ``False``); ``skip_modules``: module names kept in full precision
    (added to ``skip_modules``). Compute runs in float32 (bitsandbytes' CPU kernels support it; GPUs may
    prefer ``compute_dtype: bfloat16``).

    Example:
        >>> quantization_config({"bits": 4}).bnb_4bit_quant_type
        'nf4'
    """
    if not spec:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    unknown = set(spec) - {"bits", "quant_type", "double_quant", "compute_dtype", "skip_modules"}
    if unknown:
        raise ZooError(f"unknown quantization option(s) {sorted(unknown)}; valid: bits, quant_type, double_quant, "
                       "compute_dtype, skip_modules")
    skip = sorted({*skip_modules, *spec.get("skip_modules", ())}) or None
    bits = spec.get("bits")
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    if bits == 4:
        quant_type = spec.get("quant_type", "nf4")
        if quant_type not in ("nf4", "fp4"):
            raise ZooError(f"unknown 4-bit quant_type {quant_type!r}; valid: nf4, fp4")
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_use_double_quant=bool(spec.get("double_quant", False)),
            bnb_4bit_compute_dtype=getattr(torch, spec.get("compute_dtype", "float32")),
            llm_int8_skip_modules=skip,
        )
    raise ZooError(f"quantization bits must be 4 or 8, got {bits!r}")


def full_precision_modules(config: Any) -> list[str]:
    """Modules of a dual encoder that must not be quantized (see :data:`CONVOLUTIONAL`)."""
    vision = getattr(config, "vision_config", None)
    return ["vision_model"] if getattr(vision, "model_type", None) in CONVOLUTIONAL else []
