"""bitsandbytes quantization from a recipe's ``quantization: {bits: 4|8}`` entry."""

from __future__ import annotations

from typing import Any

import torch

from zoo.errors import ZooError


def quantization_config(spec: dict[str, Any] | None):
    """A ``transformers.BitsAndBytesConfig`` for ``spec``, or ``None`` for full precision.

    ``spec`` keys: ``bits`` (4 or 8), and for 4 bits ``quant_type`` (``"nf4"`` default, or ``"fp4"``),
    ``double_quant`` (bool, default ``False``); ``skip_modules``: module names kept in full precision.
    Compute runs in float32 (bitsandbytes' CPU kernels support it; GPUs may
    prefer ``compute_dtype: bfloat16``).

    Example:
        >>> quantization_config({"bits": 4}).bnb_4bit_quant_type
        'nf4'
    """
    if not spec:
        return None
    from transformers import BitsAndBytesConfig  # lazy: transformers is slow to import

    unknown = set(spec) - {"bits", "quant_type", "double_quant", "compute_dtype", "skip_modules"}
    if unknown:
        raise ZooError(f"unknown quantization option(s) {sorted(unknown)}; valid: bits, quant_type, double_quant, "
                       "compute_dtype, skip_modules")
    skip = list(spec.get("skip_modules", ())) or None
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

