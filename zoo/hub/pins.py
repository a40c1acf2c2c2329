"""What a policy was trained with, pinned in its folder so that a later load can tell when it changed.

A policy folder's card (``zoo.json``) and ``agent.yaml`` carry ``pins``::

    {"reward_models": {"drive-clip-bev-tiny": "<sha256 of its safetensors>", ...},
     "scenario": {"name": "highway-fast", "version": 1}}

A zoo name resolves to whatever is shipped now, so the name alone does not say which weights scored the
training frames; the digest (:func:`zoo.hub.resolve.weights_digest`) does. Loading warns (:class:`ZooWarning`)
when a pinned name now resolves to other weights, or the scenario preset has another version.
"""

from __future__ import annotations

import warnings
from typing import Any

from zoo.errors import ZooError, ZooWarning
from zoo.hub.resolve import model_weights_digest

#: reward-entry arguments whose value names a model that decides the reward (backbone, describer, gate detector)
MODEL_ARGUMENTS = ("model", "describer", "detector")
#: values of those arguments that name no model (the gate reading the simulator's own boxes)
NOT_MODELS = ("oracle",)


def reward_model_names(entry: Any) -> list[str]:
    """Names of the models a reward recipe entry (``class_path`` / ``init_args``, nested) loads, in order."""
    names: list[str] = []
    if isinstance(entry, dict):
        for key, value in entry.items():
            if key in MODEL_ARGUMENTS and isinstance(value, str) and value not in NOT_MODELS:
                names.append(value)
            else:
                names += reward_model_names(value)
    elif isinstance(entry, list):
        for value in entry:
            names += reward_model_names(value)
    return list(dict.fromkeys(names))


def training_pins(reward_entry: Any, scenario: str) -> dict[str, Any]:
    """The pins of a policy trained with ``reward_entry`` on ``scenario``: model digests as they resolve now.

    Example:
        >>> training_pins(agent.hparams["reward"], "highway-fast")  # doctest: +SKIP
        {'reward_models': {'drive-clip-bev-tiny': '44721e96…'}, 'scenario': {'name': 'highway-fast', 'version': 1}}
    """
    from zoo.envs.presets import SCENARIOS  # lazy: would load gymnasium, numpy

    return {"reward_models": {name: model_weights_digest(name) for name in reward_model_names(reward_entry)},
            "scenario": {"name": scenario, "version": SCENARIOS.get(scenario).version}}


def pin_drift(pins: dict[str, Any]) -> list[str]:
    """One line per pin that no longer holds: a model name resolving to other weights, another preset version."""
    from zoo.envs.presets import SCENARIOS  # lazy: would load gymnasium, numpy

    drift = []
    for name, pinned in (pins.get("reward_models") or {}).items():
        try:
            current = model_weights_digest(name)
        except ZooError as err:
            drift.append(f"reward model {name!r} (sha256 {pinned}) no longer resolves: {err}")
            continue
        if current != pinned:
            drift.append(f"reward model {name!r} was sha256 {pinned} in training, now resolves to sha256 {current}")
    scenario = pins.get("scenario") or {}
    if scenario.get("name") in SCENARIOS:
        version = SCENARIOS.get(scenario["name"]).version
        if version != scenario.get("version"):
            drift.append(f"scenario {scenario['name']!r} was preset version {scenario.get('version')} in training, "
                         f"is version {version} now")
    return drift


def warn_on_drift(pins: dict[str, Any] | None, policy: str) -> None:
    """Warn (:class:`ZooWarning`, one line each) about every pin of ``policy`` that no longer holds."""
    for change in pin_drift(pins or {}):
        warnings.warn(f"policy {policy}: {change}; its recorded reward and metrics may not be reproduced",
                      ZooWarning, stacklevel=3)
