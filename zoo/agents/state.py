"""What a training run must carry across a crash besides weights and optimizers: its resume state.

Lightning's checkpoint holds the weights, the optimizer states, the loop counters (global step) and
the callbacks' states. A zoo agent adds, under :data:`RESUME_KEY`, everything its collection side
needs to go on as if it had not stopped:

* the env-step / episode / collision counters (:class:`~zoo.agents.base.EpisodeTracker`),
* the replay buffer (TorchRL's ``ReplayBuffer.state_dict``: storage, writer cursor, sampler),
* the reward module's own state (embedding cache, pending work of an async reward worker …:
  :meth:`zoo.rewards.base.RewardModule.resume_state`),
* the RNG states of Python, NumPy and torch.

The parts come from :meth:`zoo.agents.base.Agent.resumable`: any object with ``state_dict()`` and
``load_state_dict(state)`` can join by adding itself there. Every value is a tensor or plain
Python data, so checkpoints still load with ``torch.load(weights_only=True)``.

Environments are not snapshotted (a simulator's internal state is not a tensor): after a resume the
collector starts fresh episodes, seeded by :func:`training_env_seed` so that it does not replay the
episodes the run began with.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

import numpy as np
import torch

from zoo.evaluation.rollout import EVAL_SEED_OFFSET

#: key of the zoo's resume state inside a Lightning checkpoint
RESUME_KEY = "zoo_resume_state"
#: env seeds of data-parallel rank ``r`` start at ``seed + r * RANK_SEED_STRIDE``
RANK_SEED_STRIDE = 10_000


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU) RNG states as tensors and plain data (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))


def collect_state(parts: dict[str, Stateful]) -> dict[str, Any]:
    """The resume state of ``parts`` (name → object with ``state_dict``) plus the RNG states."""
    return {"parts": {name: part.state_dict() for name, part in parts.items()}, "rng": rng_state()}


def restore_state(parts: dict[str, Stateful], state: dict[str, Any]) -> None:
    """Load a :func:`collect_state` result into ``parts``; parts the checkpoint lacks keep their fresh state
    (a checkpoint written before a part existed still resumes)."""
    saved = state.get("parts", {})
    for name, part in parts.items():
        if name in saved:
            part.load_state_dict(saved[name])
    if "rng" in state:
        set_rng_state(state["rng"])


def training_env_seed(seed: int, rank: int = 0, frames_done: int = 0) -> int:
    """Seed of the first training env of data-parallel ``rank`` after ``frames_done`` env steps.

    Ranks get disjoint ranges (``RANK_SEED_STRIDE`` apart) and a resumed run shifts by the steps already
    taken, so neither replays another's episodes; the result stays below ``EVAL_SEED_OFFSET``, so
    evaluation seeds remain held out.

    Example:
        >>> training_env_seed(0, rank=1)
        10000
    """
    return (seed + rank * RANK_SEED_STRIDE + frames_done) % EVAL_SEED_OFFSET


class RewardState:
    """A reward module seen as a :class:`Stateful` part: its :meth:`~zoo.rewards.base.RewardModule.resume_state`
    (cache, pending work), not its ``nn.Module`` state dict (the backbone's weights come from the recipe)."""

    def __init__(self, reward: Any) -> None:
        self.reward = reward

    def state_dict(self) -> dict[str, Any]:
        return self.reward.resume_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reward.load_resume_state(state)


class AttributeState:
    """Plain attributes of an object (an agent's update counter …) seen as a :class:`Stateful` part."""

    def __init__(self, owner: Any, names: tuple[str, ...]) -> None:
        self.owner, self.names = owner, names

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self.owner, name) for name in self.names}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.names:
            setattr(self.owner, name, state[name])
