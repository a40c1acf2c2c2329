"""The reward methods of the paper's grid, each a reward fragment of the shipped recipes (docs/method.md#baselines).

Every method trains the same learner (SAC by default, or DQN) with the hyper-parameters of its base recipe
(:data:`BASE_RECIPES`, under ``recipes/base/``); only the reward entry (and how it is batched) changes, read from the
method's reward fragment under ``recipes/rewards/`` — the files ``zoo fit --config recipes/base/sac.yaml --config
recipes/rewards/<reward>.yaml`` composes (docs/recipes.md). VLM rewards use one backbone for all methods (default
the shipped ``drive-clip-bev-tiny``, on the full frame it was trained and calibrated on), so the table compares
reward *heads*, not backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.shipped import recipes_dir

#: the shipped recipes (the repo's ``recipes/``, or the installed package's: :mod:`zoo.shipped`)
RECIPES = recipes_dir()
#: per learner, the base recipe whose hyper-parameters every method shares: SAC, the papers' learner (their
#: hyper-parameters where they transfer, docs/method.md#rl-setup); DQN, highway-env's usual meta-action learner
#: (the quickstart's), which learns within a few thousand steps where SAC does not yet
BASE_RECIPES = {"sac": "base/sac.yaml", "dqn": "base/dqn.yaml"}
#: the folder of the reward fragments under ``recipes/``: ``<reward>.yaml`` each, setting ``model.init_args.reward``
#: and ``reward_batching``
REWARD_FRAGMENTS = "rewards"
#: the learner of a grid that names none (runs that predate the ``algorithm`` tag are SAC)
DEFAULT_ALGORITHM = "sac"
DEFAULT_BACKBONE = "drive-clip-bev-tiny"


@dataclass(frozen=True)
class Method:
    """One row of the paper's table.

    Attributes:
        label: the name the paper's table uses.
        fragment: the reward fragment, ``recipes/rewards/<fragment>.yaml``.
        overrides: ``init_args`` merged into the fragment's reward entry (the no-reward-after-collision variants).
    """

    label: str
    fragment: str
    overrides: dict[str, Any] = field(default_factory=dict)


METHODS: Registry[Method] = Registry("benchmark method")
METHODS.register("sparse", Method("TIRL (sparse)", "sparse"))
METHODS.register("engineered", Method("engineered (Chen-SAC-like)", "engineered"))
METHODS.register("vlm-sr", Method("VLM-SR", "vlm-sr"))
METHODS.register("vlm-rm", Method("VLM-RM", "vlm-rm"))
METHODS.register("lord", Method("LORD", "lord"))
METHODS.register("roboclip", Method("RoboCLIP", "roboclip"))
METHODS.register("vlm-rl", Method("VLM-RL", "vlm-rl"))
METHODS.register("vlm-rl-nrac", Method("VLM-RL, no reward after collision", "vlm-rl", {"collision_penalty": 0.0}))
METHODS.register("drivevlm-rl", Method("DriveVLM-RL", "drivevlm-rl"))
METHODS.register("drivevlm-rl-nrac", Method("DriveVLM-RL, no reward after collision", "drivevlm-rl",
                                            {"collision_penalty": 0.0}))


def read_recipe(name: str) -> dict[str, Any]:
    """A recipe file under ``recipes/`` (``base/sac.yaml``, ``rewards/vlm-rl.yaml``) as plain data, ``${...}``
    interpolations resolved; a composed recipe's ``compose`` list is not followed."""
    from omegaconf import OmegaConf  # lazy: omegaconf is slow to import

    path = RECIPES / name
    if not path.is_file():
        raise ZooError(f"recipe {name!r} not found under {RECIPES}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def method_reward(name: str, backbone: str = DEFAULT_BACKBONE) -> tuple[dict[str, Any], str]:
    """The reward entry (``class_path`` / ``init_args``) and ``reward_batching`` of method ``name``, from its fragment.

    A VLM head gets ``backbone`` as its ``model`` and the full frame (``crop: none``).

    Example:
        >>> entry, batching = method_reward("vlm-rl-nrac")
        >>> entry["init_args"]["collision_penalty"], batching
        (0.0, 'collector')
    """
    method = METHODS.get(name)
    model = read_recipe(f"{REWARD_FRAGMENTS}/{method.fragment}.yaml")["model"]["init_args"]
    entry = model["reward"]
    if method.overrides:
        entry.setdefault("init_args", {}).update(method.overrides)
    semantic = entry.get("init_args", {}).get("semantic")
    head = semantic["init_args"] if isinstance(semantic, dict) else entry.get("init_args", {})
    if "model" in head:
        head.update(model=backbone, crop="none")
    return entry, model.get("reward_batching", "step")
