"""``make_env``: a highway-env scenario as a TorchRL environment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from torchrl.envs import EnvBase, GymWrapper, ParallelEnv, RewardSum, SerialEnv, StepCounter, TransformedEnv

from zoo.envs.driving import ACTION_MODES, OBS_MODES, DrivingEnv
from zoo.envs.presets import CONDITIONS, SCENARIOS
from zoo.registry import ZooError, check_choice


@dataclass
class EnvConfig:
    """Everything that defines the training environment, as a recipe spells it.

    Attributes:
        scenario: a name from ``zoo.list_scenarios()``.
        action: ``"continuous"`` or ``"discrete"``; ``None`` lets the agent choose its native one.
        obs: ``"kinematics"``, ``"bev"`` or ``"both"``.
        bev_size: side of the square BEV frame in pixels.
        bev_range_m: metres of road across the BEV frame.
        frame_window: BEV frames in ``pixels_window`` (current one last); 1 writes no window.
        num_envs: environments stepped in parallel (separate processes when > 1).
        objects: also write ``keys.OBJECTS`` (boxes of the other road users in the BEV frame; needs a BEV ``obs``).
        config: extra highway-env config overrides.
    """

    scenario: str = "highway-fast"
    action: str | None = None
    obs: str = "kinematics"
    bev_size: int = 96
    bev_range_m: float = 60.0
    frame_window: int = 1
    num_envs: int = 1
    objects: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        preset = SCENARIOS.get(self.scenario)  # raises with the valid names
        check_choice("obs", self.obs, OBS_MODES)
        if self.action is not None:
            check_choice("action", self.action, ACTION_MODES)
            if self.action not in preset.action_modes:
                raise ZooError(f"scenario {self.scenario!r} supports action modes {list(preset.action_modes)}, "
                               f"not {self.action!r}")
        if self.frame_window < 1:
            raise ZooError(f"frame_window must be >= 1, got {self.frame_window}")
        if self.num_envs < 1:
            raise ZooError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.objects and self.obs == "kinematics":
            raise ZooError("objects=True gives boxes in the BEV frame, so it needs obs 'bev' or 'both', not "
                           "'kinematics'")

    def make(self, **overrides: Any) -> TransformedEnv:
        return make_env(**{**asdict(self), **overrides})


def _gym_env(scenario: str, obs: str, action: str, bev_size: int, bev_range_m: float, frame_window: int,
             objects: bool, condition: str, config: dict) -> EnvBase:
    driving = DrivingEnv(SCENARIOS.get(scenario), obs=obs, action=action, bev_size=bev_size,
                         bev_range_m=bev_range_m, frame_window=frame_window, objects=objects, condition=condition,
                         config=config)
    return GymWrapper(driving, categorical_action_encoding=True)


def make_env(
    scenario: str = "highway-fast",
    *,
    action: str | None = "discrete",
    obs: str = "kinematics",
    bev_size: int = 96,
    bev_range_m: float = 60.0,
    frame_window: int = 1,
    num_envs: int = 1,
    objects: bool = False,
    condition: str = "default",
    seed: int | None = None,
    reward: Any = None,
    config: dict[str, Any] | None = None,
    parallel: bool = True,
) -> TransformedEnv:
    """Build a driving scenario as a TorchRL env.

    Keys (see :mod:`zoo.keys`): ``observation`` and/or ``pixels``, ``vehicle_state/*``,
    ``env_reward``, ``reward`` (and ``reward_terms/*``), ``step_count``, ``episode_reward``.

    Args:
        scenario: preset name (``zoo.list_scenarios()``).
        action: ``"continuous"`` (steer, throttle in [-1, 1]) or ``"discrete"`` (meta-actions).
        obs: ``"kinematics"``, ``"bev"`` (BEV frame) or ``"both"``.
        bev_size: BEV frame side in pixels.
        bev_range_m: metres of road across the BEV frame.
        frame_window: BEV frames in ``pixels_window`` (current one last; needs ``obs`` with frames).
        num_envs: number of environments; batched along the first dimension.
        objects: also write ``objects`` (boxes of the other road users in the BEV frame, see
            :meth:`zoo.envs.driving.DrivingEnv.objects`); needs ``obs`` ``"bev"`` or ``"both"``.
        condition: ``"default"``, or ``"unseen"`` for the scenario's held-out traffic
            (``zoo.envs.presets.CONDITIONS``, docs/envs.md).
        seed: base seed (environment ``i`` gets ``seed + i``).
        reward: a :class:`zoo.rewards.RewardModule`; default: highway-env's engineered reward.
        config: extra highway-env config overrides.
        parallel: with ``num_envs > 1``, step them in worker processes (else serially in-process).

    Example:
        >>> import zoo
        >>> env = zoo.make_env("highway-fast", obs="both", bev_size=64)
        >>> td = env.rollout(3)
        >>> td["pixels"].shape
        torch.Size([3, 3, 64, 64])
    """
    from zoo.rewards import EngineeredReward

    config = EnvConfig(scenario, action or "discrete", obs, bev_size, bev_range_m, frame_window, num_envs, objects,
                       dict(config or {}))
    check_choice("condition", condition, CONDITIONS)
    factory = partial(_gym_env, config.scenario, config.obs, config.action, config.bev_size, config.bev_range_m,
                      config.frame_window, config.objects, condition, config.config)
    if num_envs == 1:
        base: EnvBase = factory()
    else:
        base = (ParallelEnv if parallel else SerialEnv)(num_envs, factory)
    env = TransformedEnv(base, reward if reward is not None else EngineeredReward())
    env.append_transform(StepCounter())
    env.append_transform(RewardSum())
    if seed is not None:
        env.set_seed(seed)
    return env
