"""The reward methods of the paper's grid, each a reward recipe entry (docs/method.md#baselines).

Every method trains the same learner (SAC by default, or DQN; hyper-parameters of :data:`BASE_RECIPES`); only the
reward entry (and how it is batched) changes, read from the method's own recipe under ``recipes/``. VLM rewards use one
backbone for all methods (default the shipped ``drive-clip-bev-tiny``, on the full frame it was trained
and calibrated on), so the table compares reward *heads*, not backbones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.shipped import recipes_dir

#: the shipped recipes (the repo's ``recipes/``, or the installed package's: :mod:`zoo.shipped`)
RECIPES = recipes_dir()
#: per learner, the recipe whose hyper-parameters every method shares: SAC, the papers' learner (their
#: hyper-parameters where they transfer, docs/method.md#rl-setup); DQN, highway-env's usual meta-action learner
#: (the quickstart's), which learns within a few thousand steps where SAC does not yet
BASE_RECIPES = {"sac": "sac_vlmrl_highway.yaml", "dqn": "dqn_highway.yaml"}
#: the learner of a grid that names none (runs that predate the ``algorithm`` tag are SAC)
DEFAULT_ALGORITHM = "sac"
DEFAULT_BACKBONE = "drive-clip-bev-tiny"


@dataclass(frozen=True)
class Method:
    """One row of the paper's table.

    Attributes:
        label: the name the paper's table uses.
        recipe: file under ``recipes/`` whose ``model.init_args.reward`` (and ``reward_batching``) the method uses;
            ``None`` for a reward given in full by ``reward``.
        reward: the reward entry when there is no recipe, else ``init_args`` overrides merged into the recipe's.
        semantic: overrides of the semantic head inside a synthesis reward (``HierarchicalReward``).
    """

    label: str
    recipe: str | None = None
    reward: dict[str, Any] = field(default_factory=dict)
    semantic: dict[str, Any] = field(default_factory=dict)


METHODS: Registry[Method] = Registry("benchmark method")
METHODS.register("sparse", Method("TIRL (sparse)", reward={"class_path": "zoo.rewards.SparseCollisionReward"}))
METHODS.register("engineered", Method("engineered (Chen-SAC-like)", recipe="sac_highway.yaml"))
METHODS.register("vlm-sr", Method("VLM-SR", recipe="sac_vlmsr_highway.yaml"))
METHODS.register("vlm-rm", Method("VLM-RM", recipe="sac_vlmrm_highway.yaml"))
METHODS.register("lord", Method("LORD", recipe="sac_lord_highway.yaml"))
METHODS.register("roboclip", Method("RoboCLIP", recipe="sac_roboclip_highway.yaml"))
METHODS.register("vlm-rl", Method("VLM-RL", recipe="sac_vlmrl_highway.yaml"))
METHODS.register("vlm-rl-nrac", Method("VLM-RL, no reward after collision", recipe="sac_vlmrl_highway.yaml",
                                       reward={"collision_penalty": 0.0}))
METHODS.register("drivevlm-rl", Method("DriveVLM-RL", recipe="sac_drivevlmrl_highway.yaml"))
METHODS.register("drivevlm-rl-nrac", Method("DriveVLM-RL, no reward after collision",
                                            recipe="sac_drivevlmrl_highway.yaml", reward={"collision_penalty": 0.0}))


def read_recipe(name: str) -> dict[str, Any]:
    """A recipe under ``recipes/`` as plain data, ``${...}`` interpolations resolved."""
    from omegaconf import OmegaConf

    path = RECIPES / name
    if not path.is_file():
        raise ZooError(f"recipe {name!r} not found under {RECIPES}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def method_reward(name: str, backbone: str = DEFAULT_BACKBONE) -> tuple[dict[str, Any], str]:
    """The reward entry (``class_path`` / ``init_args``) and ``reward_batching`` of method ``name``.

    A VLM head gets ``backbone`` as its ``model`` and the full frame (``crop: none``).

    Example:
        >>> entry, batching = method_reward("vlm-rl-nrac")
        >>> entry["init_args"]["collision_penalty"], batching
        (0.0, 'collector')
    """
    method = METHODS.get(name)
    if method.recipe is None:
        return copy.deepcopy(method.reward), "step"
    model = read_recipe(method.recipe)["model"]["init_args"]
    entry = copy.deepcopy(model["reward"])
    entry.setdefault("init_args", {}).update(method.reward)
    semantic = entry["init_args"].get("semantic")
    head = semantic["init_args"] if isinstance(semantic, dict) else entry["init_args"]
    if "model" in head:
        head.update(model=backbone, crop="none")
    head.update(method.semantic)
    return entry, model.get("reward_batching", "step")
