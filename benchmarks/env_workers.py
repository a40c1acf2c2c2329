"""Benchmark: env steps/s of the training collector with 1 and 2 env worker processes, in one run.

The collector is the one ``zoo fit`` builds (:func:`zoo.agents.collect.build_collector`): highway-fast,
kinematics observation, highway-env's engineered reward as a per-step reward module (built in each worker),
the exploration policy of a DQN agent (256-256 MLP, ε-greedy). ``--workers 1`` steps the env in this process
(TorchRL ``Collector``); ``--workers 2`` uses TorchRL's ``MultiSyncCollector`` with two env processes and the
policy's weights sent to them before every batch, as in training. The first batch (process start-up, imports)
is timed apart from the steady rate.

Usage::

    python benchmarks/env_workers.py                 # ~3 min on 2 CPU cores
    python benchmarks/env_workers.py --quick --out /tmp/ew.json   # tiny sizes (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/env_workers.json``, which docs/performance.md quotes).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import time
import warnings

import torch
from common import ROOT, BenchmarkParser, write_json

warnings.filterwarnings("ignore")


def measure(workers: int, frames: int, frames_per_batch: int, seed: int) -> dict:
    from zoo.agents import DQN
    from zoo.agents.collect import build_collector
    from zoo.envs import EnvConfig
    from zoo.rewards import EngineeredReward

    agent = DQN(env=EnvConfig("highway-fast"), total_frames=frames, seed=seed)
    start = time.perf_counter()
    collector = build_collector(agent.env_config, agent.exploration_policy(), seed=seed,
                                frames_per_batch=frames_per_batch, total_frames=frames + frames_per_batch,
                                workers=workers, step_reward=EngineeredReward())
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
    return {"workers": workers, "frames_per_batch": first.numel(), "startup_s": round(startup_s, 2),
            "steady_frames": steady_frames, "steady_s": round(steady_s, 2),
            "env_steps_per_s": round(steady_frames / steady_s, 1)}


def main() -> None:
    parser = BenchmarkParser("env_workers", __doc__, quick={"frames": 64, "frames_per_batch": 32})
    parser.add_argument("--frames", type=int, default=2048, help="env steps timed per setting (after the first batch)")
    parser.add_argument("--frames-per-batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False).stdout)
    result = {
        "benchmark": "env_workers",
        "command": "python benchmarks/env_workers.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "code": {"commit": commit.strip(), "dirty": dirty},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()},
        "args": vars(args),
        "runs": [],
    }
    for workers in args.workers:
        run = measure(workers, args.frames, args.frames_per_batch, args.seed)
        run["loadavg_after"] = os.getloadavg()
        result["runs"].append(run)
        print(run)
    result["machine"]["loadavg_end"] = os.getloadavg()
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
