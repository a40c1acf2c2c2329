"""A highway-env scenario as a TorchRL environment: ``build_env`` from an :class:`~zoo.envs.config.EnvConfig`, and
``make_env``, the same from keywords."""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from torchrl.envs import EnvBase, GymWrapper, ParallelEnv, RewardSum, SerialEnv, StepCounter, TransformedEnv

from zoo.envs.config import DEFAULT_ACTION, EnvConfig
from zoo.envs.driving import DrivingEnv


def _gym_env(config: EnvConfig) -> EnvBase:
    """One env of ``config`` as TorchRL sees it (what each worker process builds)."""
    return GymWrapper(DrivingEnv(config), categorical_action_encoding=True)


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


def build_env(config: EnvConfig, *, seed: int | None = None, reward: Any = None,
              parallel: bool = True) -> DrivingTorchRLEnv:
    """The TorchRL env of ``config``: ``config.num_envs`` envs batched along the first dimension.

    Keys (see :mod:`zoo.keys`): ``observation`` and/or ``pixels``, ``vehicle_state/*``,
    ``env_reward``, ``reward`` (and ``reward_terms/*`` with a reward module), ``step_count``, ``episode_reward``.

    Args:
        config: the environment; every env of the batch is ``DrivingEnv(config)``.
        seed: base seed (environment ``i`` gets ``seed + i``).
        reward: a :class:`zoo.rewards.RewardModule` (a TorchRL transform) that writes ``reward``; without one,
            ``reward`` is highway-env's own engineered reward, as the simulator returns it.
        parallel: with ``num_envs > 1``, step them in worker processes (else serially in-process).

    Returns:
        A ``TransformedEnv`` that is also a context manager: leaving ``with`` closes it. Worker
        processes (``num_envs > 1``) are closed at the latest when the env is garbage-collected or the
        interpreter exits, so a script needs neither ``env.close()`` nor a ``__main__`` guard.

    Example:
        >>> from zoo.envs import EnvConfig
        >>> with build_env(EnvConfig("highway-fast", obs="bev", bev_size=64), seed=0) as env:
        ...     td = env.rollout(3)
        >>> td["pixels"].shape
        torch.Size([3, 3, 64, 64])
    """
    factory = partial(_gym_env, config)
    if config.num_envs == 1:
        base: EnvBase = factory()
    elif parallel:
        base = _parallel_env(config.num_envs, factory)
    else:
        base = SerialEnv(config.num_envs, factory)
    env = DrivingTorchRLEnv(base, reward)  # None: an empty Compose, the simulator's reward as it is
    if isinstance(base, ParallelEnv):
        _close_workers_when_unused(env)
    env.append_transform(StepCounter())
    env.append_transform(RewardSum())
    if seed is not None:
        env.set_seed(seed)
    return env


def make_env(
    scenario: str = "highway-fast",
    *,
    action: str | None = DEFAULT_ACTION,
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
) -> DrivingTorchRLEnv:
    """Build a driving scenario as a TorchRL env from keywords: :func:`build_env` of the
    :class:`~zoo.envs.config.EnvConfig` they spell.

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
        reward: a :class:`zoo.rewards.RewardModule`; default: highway-env's engineered reward (see :func:`build_env`).
        config: extra highway-env config overrides.
        parallel: with ``num_envs > 1``, step them in worker processes (else serially in-process).

    Returns:
        The env of :func:`build_env`, a context manager.

    Example:
        >>> import zoo
        >>> with zoo.make_env("highway-fast", obs="both", bev_size=64) as env:
        ...     td = env.rollout(3)
        >>> td["pixels"].shape
        torch.Size([3, 3, 64, 64])
    """
    env = EnvConfig(scenario, action=action or DEFAULT_ACTION, obs=obs, bev_size=bev_size, bev_range_m=bev_range_m,
                    frame_window=frame_window, num_envs=num_envs, objects=objects, condition=condition,
                    config=dict(config or {}))
    return build_env(env, seed=seed, reward=reward, parallel=parallel)
