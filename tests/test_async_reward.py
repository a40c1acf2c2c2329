"""The asynchronous reward pipeline: the worker on its own (order, back-pressure, errors, shutdown) and inside an
off-policy agent with a deliberately slow reward (every transition labelled exactly once, the learner never sees
an unlabelled reward, no thread left behind)."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from tensordict import TensorDict, TensorDictBase

from zoo import keys
from zoo.errors import ZooError
from zoo.rewards import RewardModule
from zoo.rewards.worker import RewardWorker, RewardWorkerError

LABEL = 7.0  # the slow reward's value: no engineered reward is ever 7


class SlowReward(RewardModule):
    """Writes ``LABEL`` and counts how often each transition was labelled; sleeps to be slow; can fail."""

    terms = ("times_labelled",)

    def __init__(self, delay_s: float = 0.05, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.fail_on_call = fail_on_call
        self.calls = 0

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("the backbone ran out of memory")
        time.sleep(self.delay_s)
        shape = (*next_state.batch_size, 1)
        before = next_state.get((keys.REWARD_TERMS, "times_labelled"), torch.zeros(shape))
        return {keys.REWARD: torch.full(shape, LABEL), "times_labelled": before + 1}

    def copy_for_env(self) -> RewardModule:
        return self  # one instance, so the test sees every call


def _batch(sequence: int, n: int = 4) -> TensorDict:
    return TensorDict({"id": torch.full((n,), sequence), "next": {keys.REWARD: torch.zeros(n, 1)}}, batch_size=[n])


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zoo-reward-worker"]


@pytest.fixture(autouse=True)
def _no_thread_left_behind():
    yield
    deadline = time.time() + 5
    while _worker_threads() and time.time() < deadline:
        time.sleep(0.05)
    assert not _worker_threads(), "a reward worker thread outlived its test"


# -- the worker on its own --------------------------------------------------------------------------------------
def test_batches_come_out_labelled_once_in_submission_order():
    with RewardWorker(SlowReward(delay_s=0.01), max_pending=3) as worker:
        out = []
        for i in range(10):
            worker.submit(_batch(i), version=i)
            out += worker.ready(version=i)
        out += worker.flush(version=10)
        assert worker.pending == 0
        assert [int(b["id"][0]) for b in out] == list(range(10))
        for batch in out:
            assert torch.all(batch["next", keys.REWARD] == LABEL)
            assert torch.all(batch["next", keys.REWARD_TERMS, "times_labelled"] == 1)
        stats = worker.stats()
        assert stats["labelled_batches"] == 10 and stats["queue_length"] == 0
        assert stats["label_lag_s"] > 0
        assert worker.labelled_frames == 40


def test_submit_blocks_when_max_pending_batches_wait():
    reward = SlowReward(delay_s=0.2)
    with RewardWorker(reward, max_pending=2) as worker:
        worker.submit(_batch(0))
        worker.submit(_batch(1))
        assert reward.calls <= 1  # nothing labelled yet: two batches wait or are in labelling
        worker.submit(_batch(2))  # waits for a free slot: the first batch's labelling to finish
        assert worker.ready(), "the third submit returned before any batch was labelled"
        assert worker.stats()["blocked_s"] > 0.05
        worker.flush()


def test_label_lag_is_counted_in_learner_updates():
    with RewardWorker(SlowReward(delay_s=0.0), max_pending=4) as worker:
        worker.submit(_batch(0), version=3)
        worker.flush(version=10)
        assert worker.stats()["max_label_lag_updates"] == 7


def test_an_error_in_the_worker_reaches_the_caller_with_its_cause():
    worker = RewardWorker(SlowReward(delay_s=0.0, fail_on_call=2), max_pending=1)
    worker.submit(_batch(0))
    worker.ready(block=True)
    worker.submit(_batch(1))
    with pytest.raises(RewardWorkerError, match="ran out of memory") as info:
        worker.submit(_batch(2))  # blocked on back-pressure, woken by the failure
    assert isinstance(info.value.__cause__, RuntimeError)
    worker.close()
    with pytest.raises(RewardWorkerError):
        worker.ready()


def test_close_stops_the_thread_and_a_closed_worker_refuses_work():
    worker = RewardWorker(SlowReward(delay_s=0.0))
    worker.close()
    assert not _worker_threads()
    with pytest.raises(ZooError, match="closed"):
        worker.submit(_batch(0))


def test_max_pending_must_be_positive():
    with pytest.raises(ZooError, match="max_pending"):
        RewardWorker(SlowReward(), max_pending=0)


# -- inside an agent ---------------------------------------------------------------------------------------------
def _async_agent(make_agent, reward: RewardModule, **overrides):
    return make_agent("sac", reward=reward, **{"reward_batching": "async", "reward_queue": 2, "total_frames": 96,
                                               "updates_per_batch": 2, **overrides})


@pytest.mark.parametrize("pipeline", ["sync", pytest.param("async", marks=pytest.mark.slow)])
def test_the_learner_only_samples_labelled_transitions_each_labelled_once(make_agent, pipeline):
    import lightning as L

    reward = SlowReward(delay_s=0.05)
    agent = _async_agent(make_agent, reward, pipeline=pipeline)
    seen = []
    update = agent.update

    def checked_update(batch):
        seen.append(batch)
        return update(batch)

    agent.update = checked_update
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(agent)
    assert seen, "the learner never trained"
    for batch in seen:
        assert torch.all(batch["next", keys.REWARD] == LABEL)
        assert torch.all(batch["next", keys.REWARD_TERMS, "times_labelled"] == 1)
    # every collected transition is in the buffer, labelled exactly once; none twice, none lost
    stored = agent.buffer[:]
    assert len(agent.buffer) == agent.tracker.frames == 96
    assert torch.all(stored["next", keys.REWARD] == LABEL)
    assert torch.all(stored["next", keys.REWARD_TERMS, "times_labelled"] == 1)
    assert reward.calls == 96 // 32
    # the update-to-data ratio is exact: every stored batch got its 2 updates, the last ones flushed included
    assert len(seen) == agent.learner_updates == 3 * 2 and agent.updates_owed == 0


def test_an_error_in_the_reward_worker_stops_training_with_the_error(make_agent):
    import lightning as L

    agent = _async_agent(make_agent, SlowReward(delay_s=0.0, fail_on_call=2))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with pytest.raises(RewardWorkerError, match="ran out of memory"):
        trainer.fit(agent)
    assert agent.reward_worker is None


def test_async_needs_an_off_policy_agent(make_agent):
    with pytest.raises(ZooError, match="off-policy"):
        make_agent("ppo-continuous", reward=SlowReward(), reward_batching="async")


@pytest.mark.parametrize("pipeline", ["sync", pytest.param("async", marks=pytest.mark.slow)])
def test_ctrl_c_during_training_stops_the_reward_worker(make_agent, pipeline):
    import multiprocessing

    import lightning as L

    class CtrlC(L.Callback):
        def on_train_batch_end(self, *args) -> None:
            raise KeyboardInterrupt

    agent = _async_agent(make_agent, SlowReward(delay_s=0.05), pipeline=pipeline)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[CtrlC()])
    try:
        trainer.fit(agent)
    except (KeyboardInterrupt, SystemExit):
        pass  # Lightning may re-raise the interrupt or exit; either way the worker must be gone
    assert trainer.interrupted
    assert agent.reward_worker is None
    assert not _worker_threads()
    assert not multiprocessing.active_children()  # the collector's env processes are gone too


def test_a_checkpoint_stores_what_the_worker_holds_first(make_agent, tmp_path):
    import lightning as L

    agent = _async_agent(make_agent, SlowReward(delay_s=0.2), total_frames=128)
    saved = []

    class SaveMidway(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if not saved:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                saved.append((agent.reward_worker.pending, len(agent.buffer), agent.tracker.frames,
                              agent.learner_updates))

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[SaveMidway()])
    trainer.fit(agent)
    pending, stored, frames, _ = saved[0]
    assert pending == 0  # nothing left in the queue at the checkpoint
    assert stored == frames and frames % 32 == 0 and frames >= 64  # the batch in labelling was waited for
    checkpoint = torch.load(tmp_path / "mid.ckpt", map_location="cpu", weights_only=True)
    from zoo.agents.state import RESUME_KEY

    assert checkpoint[RESUME_KEY]["parts"]["tracker"]["frames"] == frames
