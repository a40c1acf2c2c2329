"""Shared fixtures: tiny agents, one-update training, isolated working folders for MLflow stores."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

# No telemetry, no network, before anything imports mlflow.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Models the tests build (random:<family>-<size>) go to a temp folder, not the user's ~/.cache/zoo.
os.environ["ZOO_CACHE"] = tempfile.mkdtemp(prefix="zoo-test-cache-")

#: the smallest budget an agent trains on: two collector batches of 32 env steps, small networks
TINY: dict[str, Any] = {"hidden_sizes": (32,), "total_frames": 64, "frames_per_batch": 32, "seed": 0}
#: replay settings so that an off-policy agent learns right after its first collected batch
TINY_OFF_POLICY: dict[str, Any] = {"learning_starts": 32, "batch_size": 16, "buffer_size": 256,
                                   "updates_per_batch": 1}
TINY_ON_POLICY: dict[str, Any] = {"epochs": 1, "minibatch_size": 16}

#: one tiny configuration per algorithm / action mode / encoder the tests cover
AGENT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dqn": ("DQN", {"env": {"scenario": "highway-fast"}, **TINY_OFF_POLICY}),
    "sac": ("SAC", {"env": {"scenario": "highway-fast"}, **TINY_OFF_POLICY}),
    "td3": ("TD3", {"env": {"scenario": "highway-fast"}, **TINY_OFF_POLICY}),
    "ppo-continuous": ("PPO", {"env": {"scenario": "highway-fast", "action": "continuous"},
                               **TINY_ON_POLICY}),
    "ppo-discrete": ("PPO", {"env": {"scenario": "highway-fast", "action": "discrete"}, **TINY_ON_POLICY}),
    "dqn-cnn": ("DQN", {"env": {"scenario": "highway-fast", "bev_size": 64}, "network": "cnn",
                        **TINY_OFF_POLICY}),
}


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own temp folder: MLflow stores, runs/ and checkpoints never land in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


#: IDMVehicle class attributes that highway-env's intersection-v0 overwrites for the whole process
IDM_CLASS_STATE = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")


@pytest.fixture(autouse=True)
def _restore_highway_env_class_state(monkeypatch):
    """Undo intersection-v0's process-wide edits of ``IDMVehicle`` after each test (see test_envs.py), so the
    traffic of one test never depends on which scenarios earlier tests built."""
    from highway_env.vehicle.behavior import IDMVehicle

    for name in IDM_CLASS_STATE:
        monkeypatch.setattr(IDMVehicle, name, getattr(IDMVehicle, name))


@pytest.fixture
def tiny_kwargs() -> dict[str, Any]:
    """Keyword arguments for the smallest useful budget of any agent."""
    return dict(TINY)


@pytest.fixture
def make_agent() -> Callable[..., Any]:
    """``make_agent(case, **overrides)``: a tiny agent of one of :data:`AGENT_CASES`."""
    from zoo.agents import AGENTS
    from zoo.envs import EnvConfig

    def make(case: str, **overrides: Any):
        name, kwargs = AGENT_CASES[case]
        kwargs = {**TINY, **kwargs, **overrides}
        kwargs["env"] = EnvConfig(**kwargs["env"])
        return AGENTS.get(name)(**kwargs)

    return make


@pytest.fixture
def fit_updates() -> Callable[..., Any]:
    """``fit_updates(agent, n=1)``: train ``agent`` for exactly ``n`` ``update()`` calls; return the trainer.

    Lightning counts every optimizer step (SAC has three per update), so the count is capped by
    interrupting after the ``n``-th training step rather than with ``max_steps``.
    """
    import lightning as L

    class StopAfter(L.Callback):
        def __init__(self, n: int) -> None:
            self.n = n
            self.seen = 0

        def on_train_batch_end(self, trainer, *args: Any) -> None:
            self.seen += 1
            if self.seen >= self.n:
                trainer.should_stop = True

    def fit(agent, n: int = 1) -> L.Trainer:
        stop = StopAfter(n)
        trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[stop])
        trainer.fit(agent)
        assert stop.seen == n, f"the collector yielded {stop.seen} batches, expected {n}"
        return trainer

    return fit
