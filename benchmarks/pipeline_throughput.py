"""Benchmark: env steps/s of training, sync vs async pipeline, beside the bare simulator, in one run (issue 17).

For each task below, on the same machine and seeds, one after the other:

* ``bare``: the zoo's gymnasium env (``zoo.envs.DrivingEnv``) with the training run's env config (same
  observation, same frames rendered) stepped with uniformly random actions, reset when an episode ends: what the
  simulator alone gives.
* ``sync``: ``zoo.agents`` training with ``pipeline: sync`` (collect a batch, then learn on it).
* ``async``: the same with ``pipeline: async`` (the envs step in a TorchRL ``MultiAsyncCollector`` process while
  the learner trains).

Both training runs make the same number of gradient updates (checked). Their rate is ``total_frames`` over the
wall time of ``Trainer.fit``, the collector's start-up included (the async one starts a process: ~10 s here).
``learner`` is the rate of the learner alone (``agent.update`` on batches sampled from the sync run's full buffer,
no env): with one update per env step, no pipeline can train faster than ``min(bare, learner)`` env steps/s, the
``ceiling`` each async rate is compared with.

Tasks: ``dqn-kinematics`` (DQN, highway-env's engineered reward), ``sac-kinematics`` (SAC, engineered reward),
``sac-vlmrl-bev`` (SAC on kinematics with VLM-RL's CLG reward of the shipped ``drive-clip-bev-tiny`` on 96 px BEV
frames, scored per collected batch: render included on both sides).

Usage::

    python benchmarks/pipeline_throughput.py                    # ~25 min on 2 CPU cores
    python benchmarks/pipeline_throughput.py --quick --out /tmp/pt.json   # tiny sizes, sac-vlmrl-bev only (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/pipeline_throughput.json``, which docs/performance.md quotes).
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from typing import Any

import torch
from common import BenchmarkParser, git_state, load_average, machine, random_steps, versions, write_json

warnings.filterwarnings("ignore")

TASKS = ("dqn-kinematics", "sac-kinematics", "sac-vlmrl-bev")


def make_agent(task: str, pipeline: str, args) -> Any:
    from zoo.agents import DQN, SAC
    from zoo.envs import EnvConfig

    common = dict(total_frames=args.frames, frames_per_batch=args.frames_per_batch, learning_starts=args.learning_starts,
                  updates_per_batch=args.frames_per_batch, buffer_size=max(args.frames, 1000), seed=args.seed,
                  pipeline=pipeline)
    if task == "dqn-kinematics":  # highway-env's SB3 DQN settings (docs/performance.md), batched 16 steps a round
        return DQN(env=EnvConfig("highway-fast"), batch_size=32, lr=5e-4, gamma=0.8, target_update_interval=50,
                   **common)
    if task == "sac-kinematics":
        return SAC(env=EnvConfig("highway-fast", action="continuous"), batch_size=256, **common)
    from zoo.rewards import CLGReward, HierarchicalReward

    reward = HierarchicalReward(CLGReward(args.model, device="cpu"), theta_min=0.021, theta_max=0.22)
    return SAC(env=EnvConfig("highway-fast", action="continuous", bev_size=96), reward=reward, batch_size=256,
               reward_batching="collector", **common)


def bare_speed(agent, frames: int, seed: int) -> dict:
    """Random actions in the training env's gymnasium env: its rate is what the simulator gives."""
    from zoo.envs import DrivingEnv

    env = DrivingEnv(agent.env_config)
    seconds, _ = random_steps(env, frames, seed)
    env.close()
    return {"frames": frames, "seconds": round(seconds, 2), "env_steps_per_s": round(frames / seconds, 2)}


def fit_speed(task: str, pipeline: str, args) -> dict:
    import lightning as L

    class Count(L.Callback):
        def __init__(self) -> None:
            self.updates = 0

        def on_train_batch_end(self, *_: Any) -> None:
            self.updates += 1

    torch.manual_seed(args.seed)
    agent = make_agent(task, pipeline, args)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[count := Count()])
    start = time.perf_counter()
    trainer.fit(agent)
    seconds = time.perf_counter() - start
    out = {"frames": agent.tracker.frames, "updates": count.updates, "seconds": round(seconds, 2),
           "env_steps_per_s": round(agent.tracker.frames / seconds, 2), "load_end": load_average()["loadavg"]}
    if pipeline == "sync":  # the trained agent: its learner alone
        out["learner"] = learner_speed(agent, args.learner_updates)
    return out


def learner_speed(agent, updates: int) -> dict:
    """Gradient updates/s of ``agent.update`` alone, on batches from its (trained) replay buffer."""
    agent.update(agent.buffer.sample())  # warm-up
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(agent.buffer.sample())
    seconds = time.perf_counter() - start
    return {"updates": updates, "seconds": round(seconds, 2), "updates_per_s": round(updates / seconds, 2)}


def main() -> None:
    parser = BenchmarkParser("pipeline_throughput", __doc__,
                             quick={"frames": 96, "frames_per_batch": 32, "learning_starts": 32, "learner_updates": 4,
                                    "tasks": ["sac-vlmrl-bev"]})
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--frames", type=int, default=2048, help="env steps per run")
    parser.add_argument("--frames-per-batch", type=int, default=64,
                        help="env steps per collected batch (and gradient updates per batch: a UTD ratio of 1)")
    parser.add_argument("--learning-starts", type=int, default=256)
    parser.add_argument("--model", default="drive-clip-bev-tiny", help="reward model of sac-vlmrl-bev")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learner-updates", type=int, default=200, help="updates timed for the learner alone")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    result: dict[str, Any] = {
        "benchmark": "pipeline_throughput",
        "command": "python benchmarks/pipeline_throughput.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git": git_state(),
        "machine": machine(), "versions": versions(), "load_start": load_average(), "args": vars(args), "runs": [],
    }
    for task in args.tasks:
        row: dict[str, Any] = {"task": task}
        row["sync"] = fit_speed(task, "sync", args)
        row["async"] = fit_speed(task, "async", args)
        row["bare"] = bare_speed(make_agent(task, "sync", args), args.frames, args.seed)
        assert row["sync"]["updates"] == row["async"]["updates"], row  # the same learning, faster or not
        for pipeline in ("sync", "async"):
            row[f"{pipeline}_over_bare"] = round(row[pipeline]["env_steps_per_s"] / row["bare"]["env_steps_per_s"], 3)
        row["async_over_sync"] = round(row["async"]["env_steps_per_s"] / row["sync"]["env_steps_per_s"], 3)
        # one update per env step: the slower of simulator and learner bounds any pipeline
        row["ceiling_env_steps_per_s"] = min(row["bare"]["env_steps_per_s"],
                                             row["sync"]["learner"]["updates_per_s"])
        row["async_over_ceiling"] = round(row["async"]["env_steps_per_s"] / row["ceiling_env_steps_per_s"], 3)
        print(f"{task}: bare {row['bare']['env_steps_per_s']} learner {row['sync']['learner']['updates_per_s']} "
              f"sync {row['sync']['env_steps_per_s']} async {row['async']['env_steps_per_s']} env steps/s; "
              f"async/sync {row['async_over_sync']}, async/bare {row['async_over_bare']}, "
              f"async/ceiling {row['async_over_ceiling']}", flush=True)
        result["runs"].append(row)
        write_json(args.out, result)  # after each task: a long run that stops keeps what it measured
    result["load_end"] = load_average()
    write_json(args.out, result)


if __name__ == "__main__":
    main()
