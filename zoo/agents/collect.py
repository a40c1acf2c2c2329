"""The collector of a training run: one process, or env worker processes (TorchRL's ``MultiSyncCollector``,
or ``MultiAsyncCollector`` for a pipeline that steps the envs while the learner learns), or env workers on a Ray
cluster (TorchRL's ``RayCollector``), each with its own env seeds and its own copy of the reward module."""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.collectors import BaseCollector, Collector, MultiAsyncCollector, MultiSyncCollector

from zoo import keys
from zoo.envs.config import EnvConfig
from zoo.envs.make import build_env
from zoo.extras import require
from zoo.ray_runtime import connect
from zoo.rewards.base import RewardModule

#: ``ray.init`` options of a Ray instance joined for env workers: no dashboard, Ray's warnings only, and the workers'
#: output left in the Ray session's logs (TorchRL's workers print their whole policy; their errors come back anyway)
RAY_INIT: dict[str, Any] = {"include_dashboard": False, "logging_level": "warning", "log_to_driver": False}


def build_collector(env: EnvConfig, policy: TensorDictModuleBase, *, seed: int, frames_per_batch: int,
                    total_frames: int, workers: int = 1, step_reward: RewardModule | None = None,
                    batch_reward: RewardModule | None = None, device: Any = None, asynchronous: bool = False,
                    backend: str = "local", address: str | None = None, **kwargs: Any) -> BaseCollector:
    """A TorchRL collector over ``workers`` env processes.

    Worker ``w`` builds its envs with seeds ``seed + w * num_envs + i`` (so no two envs share a seed) and
    its own copy of ``step_reward`` (the reward module travels to the worker pickled: a backbone that
    cannot be pickled needs ``reward_batching: collector``, where ``batch_reward`` scores the gathered
    batch in this process). With several workers the policy's weights are sent to the workers before each
    batch (``update_at_each_batch``), so they act with the weights the learner has at that moment.

    ``asynchronous=True`` gives TorchRL's ``MultiAsyncCollector``: every worker (one at least) steps its envs in
    its own process and starts its next batch as soon as it hands one over, so collection goes on while the
    caller learns. The policy's parameters and buffers live in shared memory, so the workers act with the
    learner's weights of the moment (the lag is measured by the agent, :class:`PolicyVersionStamp`); each
    worker yields ``frames_per_batch`` steps.

    Args:
        env: the training env config (``num_envs`` envs per worker).
        policy: the exploration policy.
        seed: seed of the first env of the first worker.
        frames_per_batch: env steps per collected batch, over all workers (rounded down to a multiple of
            ``workers * num_envs``, at least one step each).
        total_frames: env steps to collect in all.
        workers: env worker processes; 1 steps the envs in this process unless ``asynchronous``
            (``num_envs > 1`` still uses TorchRL's ``ParallelEnv`` processes).
        step_reward: reward module attached to each env (scores every step).
        batch_reward: reward module applied to each collected batch (``reward_batching: collector``).
        device: device of the policy and the collected data.
        asynchronous: collect in worker processes while the caller learns (off-policy learners).
        backend: ``"local"`` (processes of this machine) or ``"ray"`` (Ray actors, on any node of the cluster).
        address: with ``"ray"``, the cluster (:func:`zoo.ray_runtime.connect`).
        **kwargs: passed to the TorchRL collector (``init_random_frames`` …).

    Example:
        >>> from zoo.envs import EnvConfig
        >>> collector = build_collector(EnvConfig(), policy, seed=0, frames_per_batch=64,  # doctest: +SKIP
        ...                             total_frames=1_000, workers=2)
    """
    per_step = env.num_envs if asynchronous else workers * env.num_envs  # env steps of one collector step
    frames_per_batch = max(per_step, frames_per_batch - frames_per_batch % per_step)
    common = dict(frames_per_batch=frames_per_batch, total_frames=total_frames, postproc=batch_reward, **kwargs)
    options = dict(auto_register_policy_transforms=False)  # every TorchRL collector: no InitTracker needed
    if workers == 1 and not asynchronous and backend == "local":
        return Collector(build_env(env, seed=seed, reward=step_reward), policy, device=device, **common, **options)
    make_envs = [partial(build_env, env, seed=seed_of_worker(env, seed, w),
                         reward=step_reward.copy_for_env() if step_reward is not None else None)
                 for w in range(workers)]
    if backend == "ray":
        return _ray_collector(make_envs, policy, env.num_envs, address=address, asynchronous=asynchronous,
                              device=device, collector_kwargs=options, **common)  # options of the actors' collectors
    if asynchronous:  # the workers read the shared weights as they change: nothing to push (and wait for)
        return MultiAsyncCollector(make_envs, policy, device=device, update_at_each_batch=False, **common, **options)
    return MultiSyncCollector(make_envs, policy, device=device, update_at_each_batch=True, **common, **options)


def seed_of_worker(env: EnvConfig, seed: int, worker: int) -> int:
    """Seed of the first env of collector worker ``worker`` (its envs take the next ``env.num_envs - 1``): no two
    envs of a run share a seed.

    Example:
        >>> seed_of_worker(EnvConfig(num_envs=4), 100, worker=2)
        108
    """
    return seed + worker * env.num_envs


def _ray_collector(make_envs: list[partial], policy: TensorDictModuleBase, num_envs: int, *, address: str | None,
                   asynchronous: bool, **kwargs: Any) -> BaseCollector:
    """TorchRL's ``RayCollector`` over one Ray actor per env maker (see :func:`build_collector`)."""
    ray = require("ray", "collector: ray")
    # lazy: optional extra "ray" (imports ray: only runs that use it pay for that)
    from torchrl.collectors.distributed import RayCollector

    joined = not ray.is_initialized()
    if joined:
        connect(address, "collector: ray", **RAY_INIT)
    try:
        with warnings.catch_warnings():
            # Each worker takes its share of the random-action steps (init_random_frames / workers) before acting
            # with the policy, also asynchronously: what the caller asks for, though TorchRL warns that it may not.
            warnings.filterwarnings("ignore", message="async distributed data collection with init_random_frames")
            collector = RayCollector(
                make_envs, policy, collector_class=Collector, sync=not asynchronous, update_after_each_batch=True,
                remote_configs={"num_cpus": num_envs},  # the worker's envs (a ParallelEnv beyond one)
                **kwargs)
    except BaseException:
        if joined:  # no Ray instance outlives a collector that could not be built
            ray.shutdown()
        raise
    collector.update_policy_weights_(policy)  # the workers start with the learner's weights
    if joined:  # the Ray instance joined for this collector ends with it
        collector.shutdown = partial(collector.shutdown, shutdown_ray=True)
    return collector


class PolicyVersionStamp(TensorDictModuleBase):
    """The last module of a collector's policy: writes the learner's update count at the moment of acting
    (``policy_version``) into each step, so the policy lag of every stored transition is known exactly.

    Its ``version`` buffer is shared with the collector's workers like the policy's weights: the learner sets it
    (:meth:`set`) and the workers read the value of the moment.

    Example:
        >>> from tensordict import TensorDict
        >>> stamp = PolicyVersionStamp()
        >>> stamp.set(7)
        >>> stamp(TensorDict({}, batch_size=[2]))[keys.POLICY_VERSION].tolist()
        [7, 7]
    """

    in_keys: list = []
    out_keys = [keys.POLICY_VERSION]

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("version", torch.zeros((), dtype=torch.int64))

    def set(self, version: int) -> None:
        self.version.fill_(version)  # in place: the shared storage the workers read

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict.set(keys.POLICY_VERSION, self.version.expand(tensordict.batch_size).clone())
