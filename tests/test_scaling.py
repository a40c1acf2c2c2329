"""Scale on one machine and beyond: env worker processes set from the recipe (TorchRL multi-process
collectors), and Lightning DDP on CPU (gloo) with per-rank env seeds and averaged gradients."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import mlflow
import pytest
import torch

from zoo.agents import PPO, SAC
from zoo.agents.state import RANK_SEED_STRIDE
from zoo.envs import EnvConfig
from zoo.errors import ZooError

ZOO = str(Path(sys.executable).parent / "zoo")


def _fit(agent) -> None:
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(agent)


def test_collector_workers_must_be_positive():
    with pytest.raises(ZooError, match="collector_workers must be >= 1, got 0"):
        SAC(env=EnvConfig("highway-fast"), collector_workers=0)


@pytest.mark.slow
def test_off_policy_agent_collects_with_two_env_workers_each_scoring_with_its_own_vlm_reward(tmp_path):
    from zoo.hub.random_models import build_random_dual_encoder
    from zoo.rewards import CLGReward, HierarchicalReward

    reward = HierarchicalReward(CLGReward(str(build_random_dual_encoder(tmp_path / "clip")), device="cpu"))
    agent = SAC(env=EnvConfig("highway-fast", bev_size=64), reward=reward, collector_workers=2, total_frames=64,
                frames_per_batch=32, learning_starts=32, updates_per_batch=2, batch_size=8, buffer_size=128,
                hidden_sizes=(32,))
    _fit(agent)
    assert agent.tracker.frames == 64 and len(agent.buffer) == 64
    stored = agent.buffer[:]
    # every transition was scored by the reward module in its worker: the semantic term is there
    assert ("next", "reward_terms", "semantic") in stored.keys(True)
    # workers run different seeds: their first observations differ (rows come worker by worker)
    first_of_each_worker = stored["observation"][[0, 16]]
    assert not torch.equal(first_of_each_worker[0], first_of_each_worker[1])


@pytest.mark.slow
def test_on_policy_agent_collects_with_two_env_workers():
    seen = []

    class Recording(PPO):
        def prepare(self, rollout):
            seen.append(tuple(rollout.batch_size))
            return super().prepare(rollout)

    agent = Recording(env=EnvConfig("highway-fast", action="continuous"), collector_workers=2, total_frames=64,
                      frames_per_batch=32, epochs=1, minibatch_size=16, hidden_sizes=(32,))
    _fit(agent)
    assert agent.tracker.frames == 64
    assert seen == [(2, 16), (2, 16)]  # [workers, time]: GAE runs along each worker's own trajectory


#: a callback that saves each rank's weights and first collected observations, loaded by the DDP run
PROBE = '''
import lightning as L
import torch


class Probe(L.Callback):
    def on_train_end(self, trainer, agent):
        torch.save({"params": {k: v.detach().clone() for k, v in agent.state_dict().items()},
                    "frames": agent.tracker.frames, "observations": agent.buffer[:16]["observation"]},
                   f"rank{trainer.global_rank}.pt")
'''

DDP_RECIPE = """
seed_everything: 0
torch_threads: 1
trainer:
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: zoo.tracking.ZooMLFlowLogger
    init_args:
      experiment_name: ddp
  callbacks:
    - class_path: probe.Probe
model:
  class_path: zoo.agents.SAC
  init_args:
    env:
      scenario: highway-fast
    hidden_sizes: [32]
    total_frames: 64
    frames_per_batch: 32
    learning_starts: 32
    updates_per_batch: 4
    buffer_size: 128
    batch_size: 16
"""


@pytest.mark.slow
def test_ddp_on_cpu_averages_gradients_over_ranks_with_their_own_env_seeds(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "recipe.yaml").write_text(DDP_RECIPE)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(tmp_path)]))}
    result = subprocess.run([ZOO, "fit", "--config", "recipe.yaml", "--trainer.strategy", "ddp",
                             "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["frames"] == ranks[1]["frames"] == 64
    # each rank stepped its own envs (seeds RANK_SEED_STRIDE apart) …
    assert RANK_SEED_STRIDE > 0 and not torch.equal(ranks[0]["observations"], ranks[1]["observations"])
    # … and yet the weights are identical: DDP averaged the gradients of the manual optimisation steps
    for name, value in ranks[0]["params"].items():
        torch.testing.assert_close(value, ranks[1]["params"][name], rtol=0, atol=0, msg=name)
    # rank 0 alone logged and checkpointed: one MLflow run, one checkpoint folder
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert run.info.status == "FINISHED"
    assert [p.parent.name for p in (tmp_path / "runs" / "ddp").glob("*/checkpoints")] == [run.info.run_id]
