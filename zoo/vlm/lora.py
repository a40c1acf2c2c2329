"""LoRA adapters through peft, with per-family default targets and towers addressed by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from zoo.errors import ZooError

# Names of attention projections across the architectures transformers ships (CLIP, SigLIP, ViT, BERT …).
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj", "o_proj", "query", "key", "value")
#: module names that open each tower: dual encoders (CLIP …), chat VLMs (LLaVA, Qwen-VL …), encoder-decoders;
#: a dual encoder's projection into the shared space ends its tower
TOWERS = {"vision": ("vision_model", "vision_tower", "visual", "encoder", "visual_projection"),
          "text": ("text_model", "language_model", "decoder", "text_projection")}
#: the projections into the shared space: adapted by default only where they are quantized (QLoRA, below)
PROJECTIONS = ("visual_projection", "text_projection")


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
    """The attention projections (LoRA's usual targets) that this model's linear layers are named after."""
    present = set(linear_module_suffixes(model))
    targets = [name for name in ATTENTION_PROJECTIONS if name in present]
    if not targets:
        raise ZooError(f"no attention projections found to adapt; set lora.target_modules "
                       f"(linear layers: {', '.join(sorted(present)[:30])})")
    return targets


def tower_of(module_name: str) -> str | None:
    """The tower a module belongs to: the first component of its name that opens a tower (see ``TOWERS``).

    Example:
        >>> tower_of("decoder.bert.encoder.layer.0.attention.self.query")
        'text'
    """
    for part in module_name.split("."):
        for tower, names in TOWERS.items():
            if part in names:
                return tower
    return None


def _tower_targets(model: nn.Module, tower: str) -> list[str]:
    """The layers of a tower that get adapters by default.

    On a quantized base (QLoRA), the layers bitsandbytes quantized, its projection included: the adapters
    are the trainable part of exactly the layers that were made small and frozen (bitsandbytes quantizes linear
    layers only, so a ``zoo-bev-conv`` image path, all convolutions, is adapted at its projection alone).
    Without quantization, or in a tower where nothing was quantized: the tower's linear layers but its
    projection, else its convolutions. Among the chosen layers, the attention projections when there are any.
    """
    modules = [(name.rsplit(".", 1)[-1], module) for name, module in model.named_modules() if tower_of(name) == tower]
    present = {suffix for suffix, module in modules if _is_quantized(module)}
    if not present:
        present = {suffix for suffix, module in modules if _is_linear(module) and suffix not in PROJECTIONS}
    if not present:
        present = {suffix for suffix, module in modules if _is_plain_conv(module)}
    if not present:
        return default_lora_targets(model)
    return [n for n in ATTENTION_PROJECTIONS if n in present] or sorted(present)


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__.startswith("Linear")  # bitsandbytes' too


def _is_quantized(module: nn.Module) -> bool:
    """A bitsandbytes layer (``Linear8bitLt``, ``Linear4bit``), not the LoRA wrapper peft puts around one."""
    return type(module).__module__.startswith("bitsandbytes")


def _is_plain_conv(module: nn.Module) -> bool:
    """A 2-D convolution peft's LoRA adapts (not grouped: depthwise convolutions have no low-rank update)."""
    return isinstance(module, nn.Conv2d) and module.groups == 1


def _is_adaptable(module: nn.Module) -> bool:
    return _is_linear(module) or _is_plain_conv(module)


def linear_module_suffixes(model: nn.Module) -> list[str]:
    """Distinct last name components of the model's linear layers (what ``target_modules`` can name)."""
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_linear(module)}
    return sorted(n for n in names if n)


def apply_lora(model: nn.Module, spec: LoraSpec | dict[str, Any]):
    """Wrap ``model`` with fresh LoRA adapters (a ``peft.PeftModel``); only the adapters train.

    Raises:
        ZooError: unknown tower, or targets that match no module (the message lists the names that exist).
    """
    from peft import LoraConfig, get_peft_model  # lazy: peft is slow to import

    spec = LoraSpec(**spec) if isinstance(spec, dict) else spec
    bad = [t for t in spec.towers if t not in TOWERS]
    if bad or not spec.towers:
        raise ZooError(f"unknown LoRA tower(s) {bad or spec.towers}; valid: {', '.join(TOWERS)}")
    wanted = {t: spec.target_modules or _tower_targets(model, t) for t in spec.towers}
    targets = sorted({t for names in wanted.values() for t in names})
    modules = dict(model.named_modules())
    names = [name for name, module in modules.items()
             if _is_adaptable(module) and name.rsplit(".", 1)[-1] in wanted.get(tower_of(name), ())
             # nn.MultiheadAttention reads its out_proj weight directly: an adapter there would never run
             and not isinstance(modules.get(name.rpartition(".")[0]), nn.MultiheadAttention)]
    if not names:
        raise ZooError(f"LoRA target_modules {targets} match no module in towers {spec.towers}; "
                       f"linear layers are named: {', '.join(linear_module_suffixes(model))}")
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=names)
    return get_peft_model(model, config)
