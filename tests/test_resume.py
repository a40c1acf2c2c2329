"""Resume after a crash: a ``zoo fit`` killed with SIGKILL goes on with ``--ckpt_path last``; checkpoint files
are written atomically; every part of the resume state round-trips."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ReplayBuffer

from zoo.agents.checkpoint_io import AtomicCheckpointIO, find_last_checkpoint
from zoo.agents.state import RESUME_KEY, ReplayBufferState, rng_state, set_rng_state, training_env_seed
from zoo.errors import ZooError
from zoo.evaluation import EVAL_SEED_OFFSET
from zoo.rewards.cache import EmbeddingCache

ZOO = str(Path(sys.executable).parent / "zoo")
TOTAL_FRAMES = 320
#: SAC on a tiny budget with a checkpoint every 10 updates (3 optimizer steps each)
RECIPE = f"""
seed_everything: 0
torch_threads: 1
checkpoint_every_n_steps: 30
trainer:
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: zoo.tracking.ZooMLFlowLogger
    init_args:
      experiment_name: resume
model:
  class_path: zoo.agents.SAC
  init_args:
    env:
      scenario: highway-fast
    hidden_sizes: [32]
    total_frames: {TOTAL_FRAMES}
    frames_per_batch: 32
    learning_starts: 32
    updates_per_batch: 8
    buffer_size: 1000
    batch_size: 16
"""


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def _buffer(checkpoint: dict) -> tuple[int, torch.Tensor]:
    """Transitions held and their observations."""
    storage = checkpoint[RESUME_KEY]["parts"]["buffer"]["_storage"]
    return storage["_len"], storage["_storage"]["observation"][:storage["_len"]]


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["sync", "async"])
def test_fit_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path, pipeline):
    (tmp_path / "recipe.yaml").write_text(RECIPE + f"    pipeline: {pipeline}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [ZOO, "fit", "--config", "recipe.yaml"]
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while (last := find_last_checkpoint(tmp_path / "runs", "resume")) is None:
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stderr.close()
    at_kill = _load(last)  # atomic writes: the file is whole although the writer was killed
    frames = at_kill[RESUME_KEY]["parts"]["tracker"]["frames"]
    held, observations = _buffer(at_kill)
    assert 0 < frames < TOTAL_FRAMES and held == frames  # killed mid-way
    run_id = last.parents[1].name

    resumed = subprocess.run([*command, "--ckpt_path", "last"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last.relative_to(tmp_path)}" in resumed.stderr

    final = _load(last)  # the same run folder: the resumed run continued the killed one
    assert final["global_step"] > at_kill["global_step"]
    # Counters continued: only the missing env steps were collected, on top of those at the checkpoint.
    assert final[RESUME_KEY]["parts"]["tracker"]["frames"] == TOTAL_FRAMES
    assert final[RESUME_KEY]["parts"]["tracker"]["episodes"] >= at_kill[RESUME_KEY]["parts"]["tracker"]["episodes"]
    held_now, observations_now = _buffer(final)
    assert held_now == TOTAL_FRAMES
    torch.testing.assert_close(observations_now[:held], observations)  # the buffer came back as it was
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    env_steps = [m.step for m in client.get_metric_history(run_id, "train/reward")]
    assert max(env_steps) == TOTAL_FRAMES and len(env_steps) == len(set(env_steps))  # no step logged twice


def test_resume_last_without_a_checkpoint_starts_from_scratch(tmp_path):
    from jsonargparse import Namespace

    from zoo.fit.resume import resolve_last_checkpoint

    config = Namespace(ckpt_path="last", trainer=Namespace(default_root_dir=str(tmp_path / "runs"), logger=Namespace(
        class_path="zoo.tracking.ZooMLFlowLogger", init_args=Namespace(experiment_name="resume"))))
    resolve_last_checkpoint(config)
    assert config.ckpt_path is None
    folder = tmp_path / "runs" / "resume" / "0123abcd" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"x")
    config.ckpt_path = "last"
    resolve_last_checkpoint(config)
    assert config.ckpt_path == str(folder / "last.ckpt")
    assert config.trainer.logger.init_args.run_id == "0123abcd"  # the MLflow run goes on


def test_atomic_checkpoint_io_never_leaves_a_half_written_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    assert _load(path)["step"] == 1

    def killed_midway(obj, file):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert _load(path)["step"] == 1  # the previous checkpoint, whole
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no partial file left behind


def test_embedding_cache_round_trips_through_a_weights_only_checkpoint(tmp_path):
    cache = EmbeddingCache(max_items=3)
    for i in range(4):
        cache.put("model-a", bytes([i]) * 16, torch.full((5,), float(i)))
    cache.get("model-a", bytes([3]) * 16)
    cache.get("model-a", bytes([0]) * 16)
    torch.save(cache.state_dict(), tmp_path / "cache.pt")
    restored = EmbeddingCache(max_items=3)
    restored.load_state_dict(torch.load(tmp_path / "cache.pt", weights_only=True))
    assert len(restored) == 3 and (restored.hits, restored.misses) == (1, 1)
    assert torch.equal(restored.get("model-a", bytes([2]) * 16), torch.full((5,), 2.0))
    assert restored.get("model-a", bytes([0]) * 16) is None  # evicted before the save


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_training_env_seeds_are_disjoint_per_rank_and_stay_below_the_evaluation_seeds():
    assert training_env_seed(7) == 7
    assert training_env_seed(7, rank=1) != training_env_seed(7, rank=0)
    assert training_env_seed(7, frames_done=500) == 507  # a resumed run does not replay its first episodes
    assert training_env_seed(EVAL_SEED_OFFSET - 1, rank=3, frames_done=10**7) < EVAL_SEED_OFFSET


def test_checkpoint_carries_the_resume_state_into_a_resumed_fit(make_agent, fit_updates, tmp_path):
    import lightning as L

    agent = make_agent("dqn", buffer_size=10_000)
    trainer = fit_updates(agent, n=2)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    state = _load(tmp_path / "last.ckpt")[RESUME_KEY]["parts"]
    assert state["attributes"] == {"updates": 2}
    frames = state["tracker"]["frames"]
    # only the transitions collected are saved, not the buffer's capacity
    assert {len(rows) for rows in state["buffer"]["_storage"]["_storage"].values()} == {frames}

    fresh = make_agent("dqn", total_frames=frames, buffer_size=10_000)  # the budget is spent: it only restores
    assert fresh.tracker.frames == 0 and len(fresh.buffer) == 0
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(fresh, ckpt_path=tmp_path / "last.ckpt")
    assert fresh.tracker.state_dict() == agent.tracker.state_dict()
    assert fresh.updates == 2 and len(fresh.buffer) == len(agent.buffer) == frames
    assert torch.equal(fresh.buffer[:]["observation"], agent.buffer[:]["observation"])
    assert torch.equal(fresh.greedy.eps, agent.greedy.eps)  # exploration schedule continues


def _transitions(start: int, n: int) -> TensorDict:
    """``n`` transitions numbered from ``start``, with nested keys and several dtypes like a collector's."""
    steps = torch.arange(start, start + n)
    return TensorDict({"observation": steps[:, None].float().expand(n, 3), "action": steps % 5,
                       ("next", "reward"): steps[:, None].float(), ("next", "done"): steps[:, None] % 7 == 0}, [n])


def _filled(capacity: int, steps: int, chunk: int = 5) -> ReplayBuffer:
    buffer = ReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=2)
    for start in range(0, steps, chunk):
        buffer.extend(_transitions(start, min(chunk, steps - start)))
    return buffer


def _assert_same_buffer(restored: ReplayBuffer, original: ReplayBuffer) -> None:
    assert len(restored) == len(original) and restored.storage.shape == original.storage.shape
    assert restored.state_dict()["_writer"] == original.state_dict()["_writer"]  # cursor and write count
    assert (restored.storage.get(slice(None)) == original.storage.get(slice(None))).all()


@pytest.mark.parametrize("steps", [10, 23], ids=["partly-filled", "wrapped-around"])
@pytest.mark.parametrize("compact", [True, False], ids=["compact", "full-capacity-of-older-checkpoints"])
def test_replay_buffer_state_round_trips_through_a_weights_only_checkpoint(steps, compact, tmp_path):
    capacity = 16
    original = _filled(capacity, steps)
    saved = ReplayBufferState(original).state_dict() if compact else original.state_dict()
    torch.save(saved, tmp_path / "buffer.pt")
    loaded = torch.load(tmp_path / "buffer.pt", weights_only=True)
    rows = {len(tensor) for tensor in loaded["_storage"]["_storage"].values()}
    assert rows == {min(steps, capacity) if compact else capacity}

    restored = ReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=2)
    ReplayBufferState(restored).load_state_dict(loaded)
    _assert_same_buffer(restored, original)
    for buffer in (original, restored):  # filling goes on at the cursor, past the rows saved
        buffer.extend(_transitions(100, 9))
    _assert_same_buffer(restored, original)
    assert restored.sample()["observation"].shape == (2, 3)


def test_replay_buffer_state_refuses_more_transitions_than_the_buffer_holds():
    saved = ReplayBufferState(_filled(16, 12)).state_dict()
    with pytest.raises(ZooError, match="holds 12 transitions, more than the buffer_size 8"):
        ReplayBufferState(ReplayBuffer(storage=LazyTensorStorage(8))).load_state_dict(saved)


def test_loading_a_checkpoint_for_evaluation_does_not_restore_the_training_state(make_agent, fit_updates, tmp_path):
    from zoo.agents.checkpoint import load_agent

    trainer = fit_updates(make_agent("dqn"))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    agent = load_agent(tmp_path / "last.ckpt")
    # counters, buffer (and the global RNG states) belong to a resumed fit, not to evaluation
    assert agent.tracker.frames == 0 and len(agent.buffer) == 0


def test_a_vlm_reward_nested_in_synthesis_keeps_its_embedding_cache_across_a_resume(tmp_path):
    from zoo.hub.random_models import build_random_dual_encoder
    from zoo.rewards import CLGReward, HierarchicalReward

    folder = str(build_random_dual_encoder(tmp_path / "clip"))
    reward = HierarchicalReward(CLGReward(folder, device="cpu"))
    frames = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    reward.semantic.image_embeddings(frames)
    torch.save(reward.resume_state(), tmp_path / "state.pt")

    resumed = HierarchicalReward(CLGReward(folder, device="cpu"))
    resumed.load_resume_state(torch.load(tmp_path / "state.pt", weights_only=True))
    assert len(resumed.semantic.cache) == 3 and resumed.semantic.cache.misses == 3
    resumed.semantic.image_embeddings(frames)
    assert resumed.semantic.cache.hits == 3  # warm: no frame embedded again
