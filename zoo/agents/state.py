"""What a training run must carry across a crash besides weights and optimizers: its resume state.

Lightning's checkpoint holds the weights, the optimizer states, the loop counters (global step) and
the callbacks' states. A zoo agent adds, under :data:`RESUME_KEY`, everything its collection side
needs to go on as if it had not stopped:

* the env-step / episode / collision counters (:class:`~zoo.agents.base.EpisodeTracker`),
* the replay buffer (TorchRL's ``ReplayBuffer.state_dict``: storage, writer cursor, sampler), its storage
  cut to the rows written (:class:`ReplayBufferState`),
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
from tensordict import TensorDict

from zoo.errors import ZooError
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


class ReplayBufferState:
    """A TorchRL ``ReplayBuffer`` over a one-dimensional ``LazyTensorStorage`` seen as a :class:`Stateful` part
    that saves only the rows written, not the storage's whole capacity (a 320-step SAC run with a 100 000-transition
    buffer otherwise writes 35 MB of mostly unused rows into every checkpoint).

    :meth:`state_dict` is ``ReplayBuffer.state_dict`` with the storage's tensors cut to its first ``len(storage)``
    rows (the rows written: ``len`` stops at the capacity once the writer's cursor wraps around).
    :meth:`load_state_dict` pads them back to the capacity, so the buffer holds the same rows at the same indices,
    with the same length, writer cursor and sampler state, and goes on filling past them. It also loads a state
    written before this adapter existed (the storage at full capacity).

    Args:
        buffer: the replay buffer.

    Example:
        >>> from torchrl.data import LazyTensorStorage, ReplayBuffer
        >>> buffer = ReplayBuffer(storage=LazyTensorStorage(1000))
        >>> buffer.extend(TensorDict({"observation": torch.ones(3, 4)}, [3]))
        tensor([0, 1, 2])
        >>> ReplayBufferState(buffer).state_dict()["_storage"]["_storage"]["observation"].shape
        torch.Size([3, 4])
    """

    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer

    def state_dict(self) -> dict[str, Any]:
        state = self.buffer.state_dict()
        storage = self.buffer.storage
        if storage.initialized:  # a copy: saving a view would save the whole storage behind it
            state["_storage"]["_storage"] = storage.get(slice(None)).clone().state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["_storage"]
        if saved["initialized"]:
            capacity, held = self.buffer.storage.max_size, saved["_len"]
            if held > capacity:
                raise ZooError(f"the checkpoint's replay buffer holds {held} transitions, more than the "
                               f"buffer_size {capacity} of the recipe")
            rows = TensorDict().load_state_dict(saved["_storage"], strict=False)[:held]
            storage = rows.new_zeros(capacity)
            storage[:held] = rows
            state = {**state, "_storage": {**saved, "_storage": storage.state_dict()}}
        self.buffer.load_state_dict(state)
