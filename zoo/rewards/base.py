"""The reward-module contract shared by every reward in the zoo.

A reward module is a TorchRL :class:`~torchrl.envs.Transform`. It reads keys of a transition's
next state (BEV frame, vehicle state, highway-env's reward …) and writes the learner's ``reward``
plus each of its terms under ``("reward_terms", name)``. The same object works

* on an environment: ``TransformedEnv(env, reward)`` scores each step as it happens;
* on stored data: ``reward(tensordict)`` relabels a batch of transitions (replay buffer, dataset),
  reading and writing under ``"next"``.

So a recipe swaps one ``class_path`` to change the reward.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from abc import abstractmethod
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded
from torchrl.envs import Transform

from zoo import keys
from zoo.envs.config import RenderNeeds


def init_arguments(cls: type) -> list[str]:
    """Keyword arguments of a reward class's ``__init__``, following ``**kwargs`` up to its bases."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is RewardModule:
            break
        if "__init__" not in klass.__dict__:
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())
        names += [p.name for p in params if p.name != "self" and p.name not in names
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def _public_path(cls: type) -> str:
    """The shortest importable path of ``cls`` (``zoo.rewards.CLGReward`` rather than ``zoo.rewards.vlm...``)."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        module = ".".join(parts[:end])
        try:
            if getattr(importlib.import_module(module), cls.__qualname__, None) is cls:
                return f"{module}.{cls.__qualname__}"
        except ImportError:
            continue
    return f"{cls.__module__}.{cls.__qualname__}"


class RewardModule(Transform):
    """Base class: subclasses name their ``terms`` and implement :meth:`compute`.

    Convention (as scikit-learn's ``get_params``): every ``__init__`` argument is kept as an attribute of
    the same name, so :meth:`config` can write the module back as a recipe entry.
    """

    #: names of the terms written under ``("reward_terms", name)``
    terms: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__(in_keys=[], out_keys=[keys.REWARD])

    def render_needs(self) -> RenderNeeds:
        """What this reward reads that the env must render (frames, a window of frames, the simulator's objects);
        default nothing: the vehicle state and highway-env's reward are always there. See :func:`render_needs`."""
        return RenderNeeds()

    @abstractmethod
    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        """Return ``{"reward": r, term: value, ...}``; every value shaped like ``next_state[...,  1]``."""

    def _write(self, next_state: TensorDictBase) -> TensorDictBase:
        values = self.compute(next_state)
        reward = values.pop(keys.REWARD)
        next_state.set(keys.REWARD, reward.to(torch.float32))
        for name in self.terms:
            next_state.set((keys.REWARD_TERMS, name), values[name].to(torch.float32))
        return next_state

    # On an env: called with the freshly stepped next state.
    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._write(next_tensordict)

    # On stored transitions: relabel under "next".
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        self._write(tensordict.get("next") if "next" in tensordict.keys() else tensordict)
        return tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        for name in self.terms:
            tensordict_reset.set((keys.REWARD_TERMS, name), torch.zeros(*tensordict_reset.batch_size, 1))
        return tensordict_reset

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        if self.terms:
            shape = observation_spec.shape
            observation_spec[keys.REWARD_TERMS] = Composite(
                {name: Unbounded(shape=(*shape, 1), dtype=torch.float32, device=observation_spec.device)
                 for name in self.terms},
                shape=shape,
            )
        return observation_spec

    def config(self) -> dict[str, Any]:
        """This module as a recipe entry: ``{"class_path": ..., "init_args": {...}}``.

        Arguments are collected along the class hierarchy as far as ``**kwargs`` forward them;
        nested reward modules are written as entries too.
        """
        names = init_arguments(type(self))
        args = {name: getattr(self, name) for name in names}
        # nested components (reward modules, a gate …) are written as entries too
        args = {k: v.config() if callable(getattr(v, "config", None)) else v for k, v in args.items()}
        return {"class_path": _public_path(type(self)), "init_args": args}

    def copy_for_env(self) -> RewardModule:
        """A copy to attach to another environment; heavy members (a backbone, a cache) are shared."""
        return copy.deepcopy(self, memo={id(m): m for m in self._shared_members()})

    def _shared_members(self) -> list[Any]:
        return []

    def stats(self) -> dict[str, float]:
        """Counters worth logging (cache hits …), by name."""
        return {}

    def resume_state(self) -> dict[str, Any]:
        """What a training checkpoint keeps of this module so that a resumed run goes on where it stopped
        (a cache, pending work of a reward worker …), as tensors and plain data; the weights are not part
        of it (the recipe rebuilds them). Default: the resume states of nested reward modules."""
        return {name: child.resume_state() for name, child in self.named_children()
                if isinstance(child, RewardModule)}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`resume_state` returned."""
        for name, child in self.named_children():
            if isinstance(child, RewardModule) and name in state:
                child.load_resume_state(state[name])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(terms={list(self.terms)})"


def render_needs(*rewards: RewardModule | None) -> RenderNeeds:
    """What the env must render for all of ``rewards`` together (``None`` stands for no reward, which reads nothing):
    the one answer agents and ``zoo reward calibrate`` build their envs from, with
    :meth:`zoo.envs.EnvConfig.rendering`.

    Example:
        >>> env = EnvConfig("highway-fast").rendering(render_needs(reward))  # doctest: +SKIP
    """
    needs = RenderNeeds()
    for reward in rewards:
        if reward is not None:
            needs |= reward.render_needs()
    return needs
