"""``collector: ray``: a run's env workers as Ray actors on a Ray cluster (TorchRL's ``RayCollector``), feeding one
learner with its weights pushed to them; the budget, the update count and the seeds are those of a local run. The
Ray head (127.0.0.1, 2 CPUs) is started with ``ray start`` and stopped by PID (conftest.py)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import lightning as L
import pytest
import torch
from conftest import Recorder, processes

from zoo.errors import ZooError
from zoo.rewards import SparseCollisionReward


@pytest.mark.slow
@pytest.mark.parametrize(("pipeline", "reward_batching"), [("sync", "step"), ("async", "async")])
def test_a_run_collects_with_two_ray_env_workers_to_exactly_its_budget(make_agent, ray_head, pipeline,
                                                                        reward_batching):
    """sync: the reward scores each step on the workers; async: the learner's reward worker scores each batch."""
    import ray

    budget = {"total_frames": 128, "learning_starts": 64, "updates_per_batch": 4}
    agent = make_agent("dqn", collector="ray", ray_address=ray_head, collector_workers=2, pipeline=pipeline,
                       reward=SparseCollisionReward(), reward_batching=reward_batching, **budget)
    logger = Recorder()
    L.Trainer(max_epochs=1, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(agent)

    assert agent.tracker.frames == len(agent.buffer) == 128  # exactly the budget, every step stored
    assert ("next", "reward_terms", "collision") in agent.buffer[:].keys(True)  # every step scored by the reward
    assert agent.trained_updates == 3 * 4 and agent.updates_owed == 0  # 3 batches past learning_starts, as locally
    seeds = next(m for m in logger.metrics if "collector/worker_0_first_seed" in m)
    assert (seeds["collector/worker_0_first_seed"], seeds["collector/worker_1_first_seed"]) == (0, 1)
    if pipeline == "sync":  # a round stacks both workers' shares: their first steps are both just after a reset
        first_of_each_worker = agent.buffer[:]["observation"][[0, 16]]
        assert not torch.equal(*first_of_each_worker)  # disjoint seeds: the two workers drive different roads
    else:  # batches taken as they come: the lag is what the other worker's batch was paid
        lags = [m["pipeline/max_policy_lag_updates"] for m in logger.metrics if "pipeline/max_policy_lag_updates" in m]
        assert len(lags) == 4 and all(0 <= lag <= 2 * 4 for lag in lags)
    assert not ray.is_initialized()  # the run let go of the cluster it joined


def _ray_env_workers() -> list[int]:
    """PIDs of the Ray actors that step envs (Ray renames their process ``ray::Collector``)."""
    return [pid for pid, _, command in processes() if command.startswith("ray::Collector")]


@pytest.mark.slow
def test_a_ray_env_worker_that_dies_ends_the_run_and_its_workers(make_agent, ray_head):
    import ray
    from ray.exceptions import ActorDiedError

    class KillAWorker(L.Callback):
        def on_train_batch_end(self, trainer, *args: Any) -> None:
            if trainer.global_step == 4:  # learning, both workers collecting
                os.kill(_ray_env_workers()[0], signal.SIGKILL)

    agent = make_agent("dqn", collector="ray", ray_address=ray_head, collector_workers=2, total_frames=100_000,
                       learning_starts=32, updates_per_batch=4)
    # whichever notices first ends the run: Ray (the actor died) or the weight sync's gloo connection to that actor
    with pytest.raises((ActorDiedError, RuntimeError), match="The actor died unexpectedly|Connection closed by peer"):
        L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, callbacks=[KillAWorker()]).fit(agent)
    deadline = time.monotonic() + 30
    while _ray_env_workers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_env_workers()  # the other worker was killed with the collector
    assert not ray.is_initialized()


def test_collector_ray_names_the_extra_when_ray_is_missing(make_agent, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ModuleNotFoundError
    with pytest.raises(ZooError, match=r'collector: ray needs the ray package: pip install "drive-zoo\[ray\]"'):
        make_agent("dqn", collector="ray")


def test_collector_options_are_checked(make_agent):
    with pytest.raises(ZooError, match="unknown collector 'slurm'. Valid choices: local, ray"):
        make_agent("dqn", collector="slurm")
    with pytest.raises(ZooError, match="ray_address needs collector: ray, got collector: 'local'"):
        make_agent("dqn", ray_address="127.0.0.1:6379")
