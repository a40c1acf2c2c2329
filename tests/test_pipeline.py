"""The decoupled pipeline (``pipeline: async``): the envs step in a collector process while the learner trains,
with the same number of gradient updates as the sync loop, a bounded and logged policy lag, and the resume
guarantees of the sync loop (the SIGKILL resume and Ctrl-C cases run in test_resume.py and test_async_reward.py)."""

from __future__ import annotations

import multiprocessing
from typing import Any

import lightning as L
import pytest
import torch
from conftest import Recorder

from zoo.agents.state import RESUME_KEY
from zoo.errors import ZooError


class Census(L.Callback):
    """Counts the gradient updates and the child processes alive while the learner trains."""

    def __init__(self) -> None:
        self.updates = 0
        self.children: set[int] = set()

    def on_train_batch_end(self, *args: Any) -> None:
        self.updates += 1
        self.children |= {p.pid for p in multiprocessing.active_children()}


def _fit(agent, callback: L.Callback, logger=None) -> None:
    L.Trainer(max_epochs=1, logger=logger or False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[callback]).fit(agent)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["dqn", "sac"])
def test_async_pipeline_collects_in_its_own_process_with_the_updates_of_sync(make_agent, case):
    budget = {"total_frames": 128, "learning_starts": 64, "updates_per_batch": 4}
    sync, asynchronous = Census(), Census()
    _fit(make_agent(case, **budget), sync)
    agent, logger = make_agent(case, pipeline="async", **budget), Recorder()
    _fit(agent, asynchronous, logger)

    assert agent.tracker.frames == len(agent.buffer) == 128  # exactly the budget, every step stored
    assert asynchronous.updates == sync.updates == agent.learner_updates == 3 * 4  # 3 batches past learning_starts
    assert agent.updates_owed == 0
    assert asynchronous.children and not sync.children  # the envs stepped in a collector process while it learned
    assert not multiprocessing.active_children()  # and it is gone
    lags = [m for m in logger.metrics if "pipeline/policy_lag_updates" in m]
    assert len(lags) == 4  # one per stored batch
    # a worker runs at most one batch ahead of the learner: the lag is bounded by one batch's updates
    assert all(0 <= m["pipeline/policy_lag_updates"] <= m["pipeline/max_policy_lag_updates"] <= 4 for m in lags)
    assert "policy_version" not in agent.buffer[:].keys()  # book-keeping, not training data


def test_a_checkpoint_carries_the_updates_still_owed_into_the_resumed_fit(make_agent, fit_updates, tmp_path):
    agent = make_agent("dqn", updates_per_batch=4)
    trainer = fit_updates(agent, n=3)  # 3 of the first batch's 4 updates
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    saved = torch.load(tmp_path / "mid.ckpt", weights_only=True)[RESUME_KEY]["parts"]
    assert saved["updates"] == {"updates_owed": 1} and saved["attributes"] == {"updates": 3}

    resumed = make_agent("dqn", updates_per_batch=4, total_frames=saved["tracker"]["frames"])  # nothing to collect
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(resumed, ckpt_path=tmp_path / "mid.ckpt")
    assert resumed.updates == 4 and resumed.updates_owed == 0  # the owed update was paid, none lost


def test_async_pipeline_needs_an_off_policy_agent(make_agent):
    with pytest.raises(ZooError, match="pipeline='async' needs an off-policy agent"):
        make_agent("ppo-continuous", pipeline="async")
    with pytest.raises(ZooError, match="unknown pipeline 'parallel'. Valid choices: sync, async"):
        make_agent("dqn", pipeline="parallel")
