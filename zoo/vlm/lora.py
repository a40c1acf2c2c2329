"""LoRA adapters through peft, with per-family default targets and towers addressed by name."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from zoo.registry import ZooError

# Attention projections of each tower architecture (what the LoRA paper adapts).
_ATTENTION_PROJECTIONS = {
    "clip": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "clip_vision_model": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "clip_text_model": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "siglip": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "siglip_vision_model": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "siglip_text_model": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "vit": ["query", "key", "value"],
    "deit": ["query", "key", "value"],
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
}
TOWERS = {"vision": "vision_model", "text": "text_model"}


@dataclass
class LoraSpec:
    """A recipe's ``lora:`` entry.

    Attributes:
        r: adapter rank.
        alpha: scaling numerator (``lora_alpha``).
        dropout: dropout on the adapter input.
        target_modules: module-name suffixes to adapt; default: the attention projections of the family.
        towers: which towers get adapters: any of ``"vision"``, ``"text"``.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None
    towers: list[str] = field(default_factory=lambda: ["vision", "text"])


def default_lora_targets(model: nn.Module) -> list[str]:
    """Attention projection names for the model's family (dual encoders: union over both towers)."""
    config = model.config
    types = {config.model_type}
    for sub in ("vision_config", "text_config"):
        if getattr(config, sub, None) is not None:
            types.add(getattr(config, sub).model_type)
    targets = sorted({name for t in types for name in _ATTENTION_PROJECTIONS.get(t, [])})
    if not targets:
        raise ZooError(f"no default LoRA targets for model type(s) {sorted(types)}; set lora.target_modules "
                       f"(linear layers: {', '.join(linear_module_suffixes(model)[:30])})")
    return targets


def linear_module_suffixes(model: nn.Module) -> list[str]:
    """Distinct last name components of the model's linear layers (what ``target_modules`` can name)."""
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, nn.Linear) or type(module).__name__.startswith("Linear")}
    return sorted(n for n in names if n)


def apply_lora(model: nn.Module, spec: LoraSpec | dict[str, Any]):
    """Wrap ``model`` with fresh LoRA adapters (a ``peft.PeftModel``); only the adapters train.

    Raises:
        ZooError: unknown tower, or targets that match no module (the message lists the names that exist).
    """
    from peft import LoraConfig, get_peft_model

    spec = LoraSpec(**spec) if isinstance(spec, dict) else spec
    bad = [t for t in spec.towers if t not in TOWERS]
    if bad or not spec.towers:
        raise ZooError(f"unknown LoRA tower(s) {bad or spec.towers}; valid: {', '.join(TOWERS)}")
    targets = spec.target_modules or default_lora_targets(model)
    prefixes = "|".join(TOWERS[t] for t in spec.towers)
    pattern = rf"(?:.*\.)?(?:{prefixes})\..*\.(?:{'|'.join(map(re.escape, targets))})"
    if not any(re.fullmatch(pattern, name) for name, _ in model.named_modules()):
        raise ZooError(f"LoRA target_modules {targets} match no module in towers {spec.towers}; "
                       f"linear layers are named: {', '.join(linear_module_suffixes(model))}")
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=pattern)
    return get_peft_model(model, config)
