"""Benchmark: VLM reward throughput on CPU (issue: static pathway).

Measures, in one run:

1. frames/s of the CLG reward for a CLIP ViT-B/32-sized backbone (``--backbone``; random weights: speed only)
   and the small default, scoring real BEV frames recorded from highway-fast: batched (``--batch`` frames per
   forward) vs one frame at a time, and fp32 vs 8-bit vs 4-bit (bitsandbytes) with the weight memory
   of each (``get_memory_footprint``), with the embedding cache off;
2. the embedding cache on a real rollout (ViT-B/32-sized backbone): scoring the rollout's frames, then relabelling the same
   transitions again (what a replay-buffer relabel does), with the cache on vs off;
3. env steps/s of ``zoo fit`` (SAC, highway-fast, kinematics policy) with the CLG + synthesis reward
   vs the engineered reward, same budget.

Usage::

    python benchmarks/reward_throughput.py                 # ~15 min on 2 CPU cores
    python benchmarks/reward_throughput.py --quick --out /tmp/rt.json   # tiny sizes (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/reward_throughput.json``, which docs/performance.md quotes).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch
from common import BenchmarkParser, write_json

warnings.filterwarnings("ignore")


def record_frames(n: int, bev_size: int, seed: int = 0) -> torch.Tensor:
    import zoo

    env = zoo.make_env("highway-fast", obs="bev", bev_size=bev_size, seed=seed)
    frames = []
    while sum(len(f) for f in frames) < n:
        frames.append(env.rollout(n, break_when_any_done=True).get(("next", "pixels")))
    env.close()
    return torch.cat(frames)[:n]


def frames_per_second(reward, frames: torch.Tensor, batch: int, repeats: int = 1) -> float:
    """Frames/s of ``reward.image_embeddings`` in batches of ``batch`` (build ``reward`` with ``cache_size=0``
    to measure the model, not the cache)."""
    reward.batch_size = batch
    reward.image_embeddings(frames[:batch])  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        reward.image_embeddings(frames)
    return repeats * len(frames) / (time.perf_counter() - start)


def throughput(models: dict[str, str], frames: torch.Tensor, batch: int, single_frames: int) -> list[dict]:
    from zoo.rewards import CLGReward

    rows = []
    for label, model in models.items():
        for bits in (None, 8, 4):
            quantization = {"bits": bits} if bits else None
            reward = CLGReward(model, quantization=quantization, cache_size=0, device="cpu")
            footprint = reward.encoder.model.get_memory_footprint()
            batched = frames_per_second(reward, frames, batch)
            single = frames_per_second(reward, frames[:single_frames], 1)
            rows.append({"model": label, "precision": f"{bits}-bit" if bits else "fp32",
                         "weight_mb": footprint / 2**20, "batched_fps": batched, "single_fps": single,
                         "batched_over_single": batched / single})
            print(rows[-1], flush=True)
    return rows


def cache_effect(model: str, frames: torch.Tensor) -> dict:
    """Score a rollout, then relabel the same transitions (e.g. from the replay buffer); hits and misses are
    those of the two passes (the warm-up's 8 frames stay cached, as a rollout's earlier frames would)."""
    from zoo.rewards import CLGReward

    out = {}
    for label, size in (("cache_on", 100_000), ("cache_off", 0)):
        reward = CLGReward(model, cache_size=size, device="cpu")
        reward.image_embeddings(frames[:8])
        hits, misses = reward.cache.hits, reward.cache.misses
        start = time.perf_counter()
        reward.image_embeddings(frames)  # scoring as the env steps
        reward.image_embeddings(frames)  # relabelling the stored transitions
        seconds = time.perf_counter() - start
        out[label] = {"seconds": seconds, "frames_scored": 2 * len(frames), "fps": 2 * len(frames) / seconds,
                      "hits": reward.cache.hits - hits, "misses": reward.cache.misses - misses}
        print(label, out[label], flush=True)
    out["speedup"] = out["cache_off"]["seconds"] / out["cache_on"]["seconds"]
    return out


def fit_speed(model: str, frames: int, learning_starts: int, updates_per_batch: int) -> dict:
    import lightning as L

    from zoo.agents import SAC
    from zoo.envs import EnvConfig
    from zoo.rewards import CLGReward, EngineeredReward, HierarchicalReward

    out = {}
    for label in ("engineered", "clg_synthesis"):
        reward = EngineeredReward() if label == "engineered" else HierarchicalReward(CLGReward(model, device="cpu"))
        agent = SAC(env=EnvConfig("highway-fast", action="continuous", obs="both", bev_size=96), reward=reward,
                    total_frames=frames, frames_per_batch=64, updates_per_batch=updates_per_batch,
                    learning_starts=learning_starts, batch_size=256)
        trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)
        start = time.perf_counter()
        trainer.fit(agent)
        seconds = time.perf_counter() - start
        out[label] = {"env_steps": agent.tracker.frames, "seconds": seconds,
                      "env_steps_per_s": agent.tracker.frames / seconds}
        print(label, out[label], flush=True)
    out["ratio"] = out["clg_synthesis"]["env_steps_per_s"] / out["engineered"]["env_steps_per_s"]
    return out


def main() -> None:
    from zoo.hub.random_models import SIZES, build_random_dual_encoder

    parser = BenchmarkParser("reward_throughput", __doc__, quick={
        "frames": 32, "batch": 16, "single_frames": 4, "fit_frames": 64, "learning_starts": 32,
        "updates_per_batch": 2, "backbone": "tiny"})
    parser.add_argument("--frames", type=int, default=256, help="BEV frames scored per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--single-frames", type=int, default=32, help="frames scored one at a time")
    parser.add_argument("--fit-frames", type=int, default=1024)
    parser.add_argument("--learning-starts", type=int, default=256, help="SAC warm-up steps of the fit measurement")
    parser.add_argument("--updates-per-batch", type=int, default=64,
                        help="SAC updates per 64 collected steps in the fit measurement")
    parser.add_argument("--backbone", default="vit-b-32", choices=SIZES,
                        help="size of the large random CLIP (throughput and cache measurements)")
    parser.add_argument("--torch-threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)

    workdir = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    large = f"clip-{args.backbone} (random)"
    models = {
        large: str(build_random_dual_encoder(workdir / "large", "clip", args.backbone)),
        "clip-tiny (random)": str(build_random_dual_encoder(workdir / "tiny", "clip", "tiny")),
    }
    frames = record_frames(args.frames, bev_size=96)
    result = {
        "benchmark": "reward_throughput",
        "command": "python benchmarks/reward_throughput.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()},
        "args": vars(args),
        "throughput": throughput(models, frames, args.batch, args.single_frames),
        "cache": cache_effect(models[large], frames),
        "fit": fit_speed(models["clip-tiny (random)"], args.fit_frames, args.learning_starts,
                         args.updates_per_batch),
    }
    result["machine"]["loadavg_end"] = os.getloadavg()
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
