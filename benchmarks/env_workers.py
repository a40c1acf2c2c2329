"""Benchmark: env steps/s of the training collector with 1 and 2 env workers, as local processes and as Ray actors,
and where a VLM reward is faster scored: on the workers or in the learner's process. In one run.

The collector is the one ``zoo fit`` builds (:func:`zoo.agents.collect.build_collector`): highway-fast, kinematics
observation, the exploration policy of a DQN agent (256-256 MLP, ε-greedy), its weights sent to the workers before
every batch as in training; no gradient updates (this measures collection only). Settings:

* ``local``: 1 worker steps the env in this process (TorchRL ``Collector``), 2 are TorchRL's ``MultiSyncCollector``
  with two env processes (``collector_workers: 2``).
* ``ray``: 1 or 2 Ray actors, each a TorchRL ``Collector`` (``collector: ray``, TorchRL's ``RayCollector``), on a
  Ray instance this script starts on this machine (``--ray-address`` for another one).
* ``--rewards``: ``engineered`` (highway-env's reward as a per-step module in each worker, as in every setting
  above); ``vlm-on-workers`` (VLM-RL's CLG reward of the shipped ``drive-clip-bev-tiny`` on 96 px BEV frames, a copy
  in each worker scoring each step: ``reward_batching: step``); ``vlm-in-learner`` (the same reward scoring each
  gathered batch in this process: ``reward_batching: collector``, what the async reward worker does in its own
  thread). The VLM settings run with the largest worker count of each backend.

The first batch (starting workers, importing torch and the zoo in each) is timed apart from the steady rate.

Usage::

    python benchmarks/env_workers.py                 # ~15 min on 2 CPU cores
    python benchmarks/env_workers.py --quick --out /tmp/ew.json   # tiny sizes (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/env_workers.json``, which docs/performance.md and
docs/scaling.md quote).
"""

from __future__ import annotations

import datetime as dt
import os
import time
import warnings
from typing import Any

import torch
from common import BenchmarkParser, git_state, machine, versions, write_json

warnings.filterwarnings("ignore")

REWARDS = ("engineered", "vlm-on-workers", "vlm-in-learner")


def vlm_reward(model: str) -> Any:
    from zoo import create_reward_model

    return create_reward_model(model, head="clg", synthesis=True)


def measure(backend: str, workers: int, reward: str, args) -> dict:
    from zoo.agents import DQN
    from zoo.agents.collect import build_collector
    from zoo.envs import EnvConfig
    from zoo.rewards import EngineeredReward, render_needs

    module = EngineeredReward() if reward == "engineered" else vlm_reward(args.model)
    agent = DQN(env=EnvConfig("highway-fast", bev_size=96), total_frames=args.frames, seed=args.seed)
    env = agent.env_config.rendering(render_needs(module))
    start = time.perf_counter()
    on_workers = reward != "vlm-in-learner"
    collector = build_collector(env, agent.exploration_policy(), seed=args.seed,
                                frames_per_batch=args.frames_per_batch,
                                total_frames=args.frames + args.frames_per_batch, workers=workers,
                                step_reward=module if on_workers else None, batch_reward=None if on_workers else module,
                                backend=backend, address=args.ray_address)
    try:
        batches = iter(collector)
        first = next(batches)
        startup_s = time.perf_counter() - start
        steady_start, steady_frames = time.perf_counter(), 0
        for batch in batches:
            steady_frames += batch.numel()
            agent.greedy.step(batch.numel())
        steady_s = time.perf_counter() - steady_start
    finally:
        collector.shutdown()
    return {"backend": backend, "workers": workers, "reward": reward, "frames_per_batch": first.numel(),
            "startup_s": round(startup_s, 2), "steady_frames": steady_frames, "steady_s": round(steady_s, 2),
            "env_steps_per_s": round(steady_frames / steady_s, 1), "loadavg_after": os.getloadavg()}


def settings(args) -> list[tuple[str, int, str]]:
    """``(backend, workers, reward)``: every worker count with the engineered reward; the VLM placements with the
    most workers."""
    rows = []
    for backend in args.backends:
        rows += [(backend, workers, "engineered") for workers in args.workers if "engineered" in args.rewards]
        rows += [(backend, max(args.workers), reward) for reward in args.rewards if reward != "engineered"]
    return rows


def main() -> None:
    parser = BenchmarkParser("env_workers", __doc__, quick={"frames": 32, "frames_per_batch": 32, "workers": [1],
                                                           "rewards": ["engineered", "vlm-on-workers"]})
    parser.add_argument("--frames", type=int, default=2048, help="env steps timed per setting (after the first batch)")
    parser.add_argument("--frames-per-batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", choices=("local", "ray"), default=["local", "ray"])
    parser.add_argument("--rewards", nargs="+", choices=REWARDS, default=list(REWARDS))
    parser.add_argument("--model", default="drive-clip-bev-tiny", help="the VLM reward's model")
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: one started here)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    result = {
        "benchmark": "env_workers",
        "command": "python benchmarks/env_workers.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "code": git_state(), "machine": {**machine(), "loadavg_start": os.getloadavg()},
        "versions": versions("ray"), "args": vars(args), "runs": [],
    }
    ray = None
    if "ray" in args.backends:  # one Ray instance for every Ray setting: its start-up is not a setting's
        from zoo.agents.collect import RAY_INIT
        from zoo.ray_runtime import connect

        ray = connect(args.ray_address, "the ray rows", **RAY_INIT)
    try:
        for backend, workers, reward in settings(args):
            run = measure(backend, workers, reward, args)
            result["runs"].append(run)
            print(run)
    finally:
        if ray is not None:
            ray.shutdown()
    result["machine"]["loadavg_end"] = os.getloadavg()
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
