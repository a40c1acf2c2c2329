"""Benchmark: env steps/s of SAC training with DriveVLM-RL's dual-pathway reward, async vs sync (issue 5).

In one run, the same SAC budget on highway-fast (kinematics policy, 96 px BEV for the reward) with:

1. ``static``: VLM-RL's CLG + synthesis, scored per collected batch (the synchronous VLM-RL scheme);
   ``static-async``: the same with the decoupled pipeline (``pipeline: async``: envs in a collector process);
2. ``dual-sync``: CLG + gated dynamic pathway + synthesis, scored per collected batch before learning;
3. ``dual-async``: the same reward scored by the reward worker (``reward_batching: async``) with the decoupled
   pipeline (``--async-pipeline``, default ``async``): collection, labelling and learning at once;
4. ``heavy-sync`` / ``heavy-async``: the same with a describer that costs about as much as the simulator — a
   random ~18 M-parameter LLaVA chat VLM (``zoo.hub.random_models.build_random_chat_vlm(size="small")``, speed only:
   its descriptions are noise, mostly caught as garbled), standing in for the paper's large VLM.

The aims (issue 17): heavy async ≥ 1.5× heavy sync env steps/s, and within 10 % of the static pathway alone with
the same pipeline (``static-async``).
Reward counters (gate rate, describer calls and fallbacks, queue length, label lag) are recorded with each.

Usage::

    python benchmarks/dual_pathway_throughput.py               # ~15 min on 2 CPU cores
    python benchmarks/dual_pathway_throughput.py --quick --out /tmp/dp.json   # tiny sizes (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/dual_pathway_throughput.json``, which docs/performance.md
quotes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch
from common import BenchmarkParser, git_state, write_json

warnings.filterwarnings("ignore")


def make_reward(kind: str, args: argparse.Namespace, describer: str):
    from zoo.perception import AttentionGate
    from zoo.rewards import CLGReward, DualPathwayReward, HierarchicalReward

    if kind == "static":  # the windows calibrated for each (recipes/sac_vlmrl_highway.yaml, sac_drivevlmrl_highway.yaml)
        return HierarchicalReward(CLGReward(args.model, device="cpu"), theta_min=0.021, theta_max=0.22)
    gate = AttentionGate(args.detector)
    semantic = DualPathwayReward(args.model, gate=gate, describer=describer, window=args.window, device="cpu")
    return HierarchicalReward(semantic, theta_min=0.027, theta_max=0.30)


def fit_speed(kind: str, batching: str, args: argparse.Namespace, describer: str | None = None,
              pipeline: str = "sync") -> dict:
    import lightning as L

    from zoo.agents import SAC
    from zoo.envs import EnvConfig

    reward = make_reward(kind, args, describer or args.describer)
    agent = SAC(env=EnvConfig("highway-fast", action="continuous", obs="both", bev_size=96), reward=reward,
                reward_batching=batching, total_frames=args.frames, frames_per_batch=64,
                updates_per_batch=args.updates_per_batch, learning_starts=args.learning_starts, batch_size=256,
                seed=args.seed, pipeline=pipeline)
    worker_stats: dict[str, float] = {}

    class KeepWorkerStats(L.Callback):  # the worker is closed when fit ends: keep its last counters
        def on_train_batch_end(self, *_args) -> None:
            if agent.reward_worker is not None:
                worker_stats.update(agent.reward_worker.stats())

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[KeepWorkerStats()])
    start = time.perf_counter()
    trainer.fit(agent)
    seconds = time.perf_counter() - start
    out = {"env_steps": agent.tracker.frames, "seconds": round(seconds, 2),
           "env_steps_per_s": round(agent.tracker.frames / seconds, 2), "reward_stats": reward.stats()}
    if worker_stats:
        out["worker_stats"] = worker_stats
    out["pipeline"] = pipeline
    print(kind, batching, pipeline, {k: v for k, v in out.items() if k != "reward_stats"}, flush=True)
    return out


def main() -> None:
    parser = BenchmarkParser("dual_pathway_throughput", __doc__,
                             quick={"frames": 64, "learning_starts": 32, "updates_per_batch": 2,
                                    "heavy_size": "tiny"})
    parser.add_argument("--model", default="drive-clip-bev-tiny")
    parser.add_argument("--detector", default="bev-detector-tiny")
    parser.add_argument("--describer", default="risk-describer-tiny")
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--frames", type=int, default=2048, help="env steps per configuration")
    parser.add_argument("--learning-starts", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--updates-per-batch", type=int, default=64, help="SAC updates per 64 collected steps")
    parser.add_argument("--async-pipeline", default="async", choices=("sync", "async"),
                        help="pipeline of the *-async runs (sync: only the reward worker is asynchronous)")
    parser.add_argument("--heavy-size", default="small", choices=("tiny", "small"),
                        help="size of the random chat VLM of the heavy-* runs")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)

    from zoo.hub.random_models import build_random_chat_vlm

    load_start = os.getloadavg()
    heavy = str(build_random_chat_vlm(Path(tempfile.mkdtemp(prefix="zoo-bench-")) / "llava", size=args.heavy_size))
    pipeline = args.async_pipeline
    runs = {"static": fit_speed("static", "collector", args),
            "static-async": fit_speed("static", "collector", args, pipeline=pipeline),
            "dual-sync": fit_speed("dual", "collector", args),
            "dual-async": fit_speed("dual", "async", args, pipeline=pipeline),
            "heavy-sync": fit_speed("dual", "collector", args, heavy),
            "heavy-async": fit_speed("dual", "async", args, heavy, pipeline=pipeline)}
    speed = {k: v["env_steps_per_s"] for k, v in runs.items()}
    result = {
        "benchmark": "dual_pathway_throughput",
        "command": "python benchmarks/dual_pathway_throughput.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git": git_state(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads(), "loadavg_start": load_start},
        "args": vars(args),
        "runs": runs,
        "async_over_sync": round(speed["dual-async"] / speed["dual-sync"], 3),
        "async_over_static": round(speed["dual-async"] / speed["static-async"], 3),
        "heavy_async_over_sync": round(speed["heavy-async"] / speed["heavy-sync"], 3),
        "heavy_async_over_static": round(speed["heavy-async"] / speed["static-async"], 3),
    }
    result["machine"]["loadavg_end"] = os.getloadavg()
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k.endswith(("_sync", "_static"))}), f"wrote {args.out}")


if __name__ == "__main__":
    main()
