"""``zoo.create_reward_model``: a VLM reward module from a backbone and a head name."""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError
from zoo.hub.resolve import resolve_model
from zoo.registry import Registry
from zoo.rewards.base import RewardModule, init_arguments
from zoo.rewards.dynamic import DualPathwayReward
from zoo.rewards.synthesis import HierarchicalReward
from zoo.rewards.vlm import CLGReward, LORDReward, RoboCLIPReward, VLMRMReward, VLMSRReward

HEADS: Registry[type] = Registry("reward head")
for _cls in (CLGReward, VLMSRReward, VLMRMReward, LORDReward, RoboCLIPReward, DualPathwayReward):
    HEADS.register(_cls.head, _cls)


PROMPT_ARGUMENTS = ("positive", "negative", "goal", "baseline", "dynamic_positive")


def create_reward_model(
    name_or_path: str,
    pretrained: bool = True,
    *,
    head: str | None = None,
    prompts: dict[str, str] | None = None,
    quantization: dict[str, Any] | None = None,
    lora: dict[str, Any] | None = None,
    adapter: str | None = None,
    synthesis: dict[str, Any] | bool | None = None,
    device: str | None = None,
    **head_kwargs: Any,
) -> RewardModule:
    """A VLM reward module: a zoo model by name, or any Hugging Face dual encoder.

    A zoo model's card supplies the defaults (head, prompts, synthesis …); keyword arguments override them.

    Args:
        name_or_path: zoo name (``drive-clip-bev-tiny``, see :func:`zoo.list_models`), ``models:/<name>@<alias>``
            URI, folder, or hub id in the local cache: any source :func:`zoo.hub.resolve.resolve_model` takes.
        pretrained: load trained weights; ``False`` builds a zoo architecture freshly initialised.
        head: ``clg``, ``vlm-sr``, ``vlm-rm``, ``lord``, ``roboclip`` or ``dual-pathway`` (DriveVLM-RL: CLG + the
            gated dynamic pathway; ``gate``, ``describer`` … as keyword arguments) (default: the card's, else ``clg``).
        prompts: the head's text goals by argument name, e.g. ``{"positive": ..., "negative": ...}`` for CLG,
            ``{"goal": ..., "baseline": ...}`` for VLM-RM.
        quantization: ``{"bits": 4|8}``.
        lora: fresh LoRA adapters to fine-tune (``{"r": 8, "towers": ["vision"]}`` …).
        adapter: folder with saved LoRA adapters.
        synthesis: wrap the head in :class:`HierarchicalReward` (``True`` or its keyword arguments).
        device: where the backbone runs.
        **head_kwargs: other head arguments (``alpha``, ``crop``, ``batch_size`` …).

    Example:
        >>> reward = zoo.create_reward_model("drive-clip-bev-tiny", synthesis=True)  # doctest: +SKIP
        >>> reward = zoo.create_reward_model("models:/drive-clip@champion")  # doctest: +SKIP
        >>> reward = zoo.create_reward_model("path/to/clip", head="clg", quantization={"bits": 8})  # doctest: +SKIP
        >>> reward = zoo.create_reward_model("path/to/clip", synthesis={"theta_min": -0.05})  # doctest: +SKIP
    """
    resolved = resolve_model(name_or_path, pretrained=pretrained)
    defaults = dict((resolved.card or {}).get("reward") or {})
    head = head or defaults.get("head", "clg")
    defaults.pop("head", None)
    prompts = {**(defaults.pop("prompts", None) or {}), **(prompts or {})}
    synthesis = defaults.pop("synthesis", None) if synthesis is None else synthesis
    head_kwargs = {**defaults, **head_kwargs}
    cls = HEADS.get(head)
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
    # the name is what a recipe or checkpoint records; an untrained architecture only exists as its folder
    model = str(name_or_path) if pretrained else str(resolved.path)
    reward: RewardModule = cls(model, quantization=quantization, lora=lora, adapter=adapter, device=device,
                               **prompts, **head_kwargs)
    if synthesis:
        reward = HierarchicalReward(reward, **(synthesis if isinstance(synthesis, dict) else {}))
    return reward
