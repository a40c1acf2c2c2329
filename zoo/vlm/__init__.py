"""Hugging Face vision-language backbones: loading, bitsandbytes quantization, peft LoRA.

Heavy imports (transformers, peft, bitsandbytes) happen inside the functions, so ``import zoo``
stays light.
"""

from zoo.vlm.describer import RiskDescriber, load_describer
from zoo.vlm.encoder import DualEncoder, load_dual_encoder
from zoo.vlm.lora import LoraSpec, apply_lora, default_lora_targets
from zoo.vlm.quantization import quantization_config

__all__ = ["DualEncoder", "LoraSpec", "RiskDescriber", "apply_lora", "default_lora_targets", "load_describer",
           "load_dual_encoder", "quantization_config"]
