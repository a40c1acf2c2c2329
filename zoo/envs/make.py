"""``make_env``: a highway-env scenario as a TorchRL environment."""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from torchrl.envs import EnvBase, GymWrapper, ParallelEnv, RewardSum, SerialEnv, StepCounter, TransformedEnv

from zoo.envs.driving import ACTION_MODES, OBS_MODES, DrivingEnv
from zoo.envs.presets import CONDITIONS, SCENARIOS
from zoo.errors import ZooError
from zoo.registry import check_choice


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


class DrivingTorchRLEnv(TransformedEnv):
    """The env ``make_env`` returns: a ``TransformedEnv`` that is also a context manager.

    ``with zoo.make_env(..., num_envs=2) as env:`` closes the worker processes on leaving the block,
    exception or not. Without ``with`` they are closed when the env is garbage-collected or, at the
    latest, at interpreter exit (see ``_close_workers_when_unused``).
    """

    def __enter__(self) -> DrivingTorchRLEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(raise_if_closed=False)


@contextmanager
def _main_script_hidden_from_workers() -> Iterator[None]:
    """Start worker processes without re-running the user's script in them.

    The ``spawn`` start method (TorchRL's default) re-imports ``__main__`` in every child, so a script
    without an ``if __name__ == "__main__":`` guard would build its envs again inside each worker and
    crash. Env workers only run zoo code (``_gym_env``), so they need nothing from the script: with
    ``__main__``'s file and module name hidden, multiprocessing treats it like an interactive session.
    """
    main = sys.modules["__main__"]
    file = main.__dict__.pop("__file__", None)
    spec = main.__dict__.get("__spec__")
    main.__spec__ = None
    try:
        yield
    finally:
        main.__spec__ = spec
        if file is not None:
            main.__file__ = file


def _parallel_env(num_envs: int, factory: partial) -> ParallelEnv:
    """``num_envs`` worker processes, started now (not lazily on first use) so that they start
    without the user's script, and daemonic so that a process that exits never waits for them."""
    env = ParallelEnv(num_envs, factory, daemon=True)
    with _main_script_hidden_from_workers():
        env.start()
    return env


def _close_workers_when_unused(env: TransformedEnv) -> None:
    """Close ``env``'s worker processes when it is garbage-collected or at interpreter exit.

    Without this a script that never calls ``env.close()`` (or raises first) hangs at exit:
    multiprocessing's exit handler joins the workers, which still wait for commands.
    ``weakref.finalize`` runs its callbacks at exit before that handler (registered later, run first).
    """
    weakref.finalize(env, partial(env.base_env.close, raise_if_closed=False))


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

    Returns:
        A ``TransformedEnv`` that is also a context manager: leaving ``with`` closes it. Worker
        processes (``num_envs > 1``) are closed at the latest when the env is garbage-collected or the
        interpreter exits, so a script needs neither ``env.close()`` nor a ``__main__`` guard.

    Example:
        >>> import zoo
        >>> with zoo.make_env("highway-fast", obs="both", bev_size=64) as env:
        ...     td = env.rollout(3)
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
    elif parallel:
        base = _parallel_env(num_envs, factory)
    else:
        base = SerialEnv(num_envs, factory)
    env = DrivingTorchRLEnv(base, reward if reward is not None else EngineeredReward())
    if isinstance(base, ParallelEnv):
        _close_workers_when_unused(env)
    env.append_transform(StepCounter())
    env.append_transform(RewardSum())
    if seed is not None:
        env.set_seed(seed)
    return env
