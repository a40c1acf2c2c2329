"""``zoo.create_reward_model``: a VLM reward module from a backbone and a head name."""

from __future__ import annotations

from typing import Any

from zoo.registry import Registry, ZooError
from zoo.rewards.base import RewardModule, init_arguments
from zoo.rewards.synthesis import HierarchicalReward
from zoo.rewards.vlm import CLGReward, LORDReward, RoboCLIPReward, VLMRMReward, VLMSRReward

HEADS: Registry[type] = Registry("reward head")
for _name, _cls in (("clg", CLGReward), ("vlm-sr", VLMSRReward), ("vlm-rm", VLMRMReward), ("lord", LORDReward),
                    ("roboclip", RoboCLIPReward)):
    HEADS.register(_name, _cls)


PROMPT_ARGUMENTS = ("positive", "negative", "goal", "baseline")


def create_reward_model(
    name_or_path: str,
    *,
    head: str = "clg",
    prompts: dict[str, str] | None = None,
    quantization: dict[str, Any] | None = None,
    lora: dict[str, Any] | None = None,
    adapter: str | None = None,
    synthesis: dict[str, Any] | bool | None = None,
    device: str | None = None,
    **head_kwargs: Any,
) -> RewardModule:
    """A VLM reward module on any Hugging Face dual encoder.

    Args:
        name_or_path: hub id (in the local cache) or folder of a CLIP, SigLIP or VisionTextDualEncoder model.
        head: ``clg``, ``vlm-sr``, ``vlm-rm``, ``lord`` or ``roboclip``.
        prompts: the head's text goals by argument name, e.g. ``{"positive": ..., "negative": ...}`` for CLG,
            ``{"goal": ..., "baseline": ...}`` for VLM-RM.
        quantization: ``{"bits": 4|8}``.
        lora: fresh LoRA adapters to fine-tune (``{"r": 8, "towers": ["vision"]}`` …).
        adapter: folder with saved LoRA adapters.
        synthesis: wrap the head in :class:`HierarchicalReward` (``True`` or its keyword arguments).
        device: where the backbone runs.
        **head_kwargs: other head arguments (``alpha``, ``crop``, ``batch_size`` …).

    Example:
        >>> reward = zoo.create_reward_model("path/to/clip", head="clg", quantization={"bits": 8})  # doctest: +SKIP
        >>> reward = zoo.create_reward_model("path/to/clip", synthesis={"theta_min": -0.05})  # doctest: +SKIP
    """
    cls = HEADS.get(head)
    prompts = dict(prompts or {})
    accepted = set(init_arguments(cls)) - {"model"}
    valid_prompts = sorted(p for p in accepted if p in PROMPT_ARGUMENTS)
    bad = sorted(set(prompts) - set(valid_prompts))
    if bad:
        raise ZooError(f"head {head!r} takes no prompt {bad}; its prompts are: {', '.join(valid_prompts)}")
    unknown = sorted(set(head_kwargs) - accepted)
    if unknown:
        raise ZooError(f"head {head!r} has no argument {unknown}; valid: {', '.join(sorted(accepted))}")
    for key, text in prompts.items():
        if not isinstance(text, str) or not text.strip():
            raise ZooError(f"prompt {key!r} must be a non-empty string, got {text!r}")
    reward: RewardModule = cls(name_or_path, quantization=quantization, lora=lora, adapter=adapter, device=device,
                               **prompts, **head_kwargs)
    if synthesis:
        reward = HierarchicalReward(reward, **(synthesis if isinstance(synthesis, dict) else {}))
    return reward
