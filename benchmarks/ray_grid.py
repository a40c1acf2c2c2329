"""Benchmark: one grid with ``zoo benchmark --backend ray`` vs ``--workers N`` on the same machine.

Each repetition runs the same grid (sparse and engineered × ``--seeds`` seeds, DQN with meta-actions, ``--steps``
env steps, 1 held-out episode, no reference policies) twice, each time in a fresh folder with its own SQLite store
(no cell is skipped): once with ``--workers N`` (N = this machine's cores), once with ``--backend ray --address local``
(a Ray instance started for the grid, as many CPUs as Ray detects, 1 per cell). The order alternates between
repetitions. Reported: the wall time of each ``zoo benchmark`` command (Python start, Ray start and stop included),
its cells per hour, and the ratio ray / workers of cells per hour per repetition and over all.

Usage::

    python benchmarks/ray_grid.py                                  # 4 cells of 1000 steps, 2 repetitions
    python benchmarks/ray_grid.py --quick --out /tmp/ray_grid.json # 2 cells of 64 steps, 1 repetition (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/ray_grid.json``, which docs/scaling.md quotes).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

from common import ROOT, BenchmarkParser, git_state, load_average, versions, write_json

METHODS = ["sparse", "engineered"]


def run_grid(backend: list[str], steps: int, seeds: int) -> dict:
    """One ``zoo benchmark`` of the grid's cells in a fresh folder; its wall time, cells/hour and Ray's CPUs."""
    cells = len(METHODS) * seeds
    command = [sys.executable, "-m", "zoo.cli", "benchmark", "--suite", "paper", "--scenarios", "highway-fast",
               "--methods", *METHODS, "--seeds", str(seeds), "--steps", str(steps), "--curve-every", str(steps),
               "--curve-episodes", "1",
               "--eval-episodes", "1", "--action", "discrete", "--algorithm", "dqn", "--references", "none", *backend]
    env = {**os.environ, "COLUMNS": "300", "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT.parent), os.environ.get("PYTHONPATH")]))}
    env.pop("MLFLOW_TRACKING_URI", None)  # each grid its own store
    with tempfile.TemporaryDirectory() as folder:
        begin = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env, timeout=3600)
        wall_s = time.perf_counter() - begin
    if done.returncode != 0 or f"ran {cells}, skipped 0 finished, failed 0" not in done.stderr:
        raise SystemExit(f"{' '.join(backend)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    cpus = re.search(r"submitted to the Ray cluster \(([\d.]+) CPUs\)", done.stderr)
    return {"backend": " ".join(backend), "wall_s": round(wall_s, 1), "cells_per_hour": round(cells * 3600 / wall_s, 1),
            "ray_cpus": float(cpus.group(1)) if cpus else None}


def main() -> None:
    parser = BenchmarkParser("ray_grid", __doc__, quick={"steps": 64, "seeds": 1, "repeats": 1})
    parser.add_argument("--steps", type=int, default=1000, help="training env steps per cell")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per method (cells: sparse and engineered × seeds)")
    parser.add_argument("--repeats", type=int, default=2, help="repetitions (each runs both backends)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="--workers of the local backend")
    args = parser.parse_args()
    backends = {"workers": ["--workers", str(args.workers)], "ray": ["--backend", "ray", "--address", "local"]}
    result = {"benchmark": "ray_grid", "command": shlex.join(["python", "benchmarks/ray_grid.py", *sys.argv[1:]]),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git": git_state(),
              "versions": versions("ray", "mlflow"), "cpu_count": os.cpu_count(), "load_start": load_average(),
              "args": vars(args), "runs": []}
    for repeat in range(args.repeats):
        order = ["workers", "ray"] if repeat % 2 == 0 else ["ray", "workers"]
        runs = {name: run_grid(backends[name], args.steps, args.seeds) for name in order}
        ratio = runs["ray"]["cells_per_hour"] / runs["workers"]["cells_per_hour"]
        result["runs"].append({"repeat": repeat, "order": order, **runs, "ray_over_workers": round(ratio, 3),
                               "load": load_average()["loadavg"]})
        print(result["runs"][-1])
    total = {name: sum(r[name]["wall_s"] for r in result["runs"]) for name in backends}
    result["ray_over_workers"] = round(total["workers"] / total["ray"], 3)  # cells/hour over all repetitions
    result["load_end"] = load_average()
    write_json(args.out, result)
    print(f"ray / workers, cells per hour: {result['ray_over_workers']}; wrote {args.out}")


if __name__ == "__main__":
    main()
