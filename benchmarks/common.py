"""What the benchmark scripts share: the ``--quick`` / ``--out`` options, run context (machine, versions, git,
load) and result formatting."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


class BenchmarkParser(argparse.ArgumentParser):
    """The argument parser of a benchmark script, with the two options every script has.

    * ``--quick``: the same code path at tiny sizes (tests/test_benchmark_scripts.py runs it, so a
      refactor that breaks a script fails the tests): the options named in ``quick`` take its values, whatever
      the command line gave them.
    * ``--out``: where the JSON results go (default ``benchmarks/results/<name>.json``, which docs quote; give a
      temporary path with ``--quick``).

    Args:
        name: the script's name, without ``.py`` (its default results file).
        doc: the script's docstring; its first paragraph is the description of ``--help``.
        quick: ``{dest: value}`` of the options ``--quick`` sets (``dest`` as argparse spells it: ``fit_frames``).
    """

    def __init__(self, name: str, doc: str, quick: dict[str, Any]) -> None:
        super().__init__(description=doc.strip().split("\n\n")[0])
        self.quick = quick
        sizes = ", ".join(f"--{dest.replace('_', '-')} {_cli_value(value)}" for dest, value in quick.items())
        self.add_argument("--quick", action="store_true",
                          help=f"tiny sizes, the same code path (a test runs it): {sizes}")
        self.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="JSON results path")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: Any = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        if parsed.quick:
            for dest, value in self.quick.items():
                setattr(parsed, dest, value)
        return parsed


def _cli_value(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def write_json(path: Path, result: dict[str, Any]) -> None:
    """``result`` as indented, strict JSON at ``path`` (its folder made if missing): ``Path`` values as strings,
    an undefined number (NaN or infinite: an AUROC without a positive frame) as ``null``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(result), indent=2, default=str, allow_nan=False) + "\n")


def random_steps(env: Any, steps: int, seed: int) -> tuple[float, int]:
    """Seconds for ``steps`` random-action steps of a gymnasium ``env`` (resets included, each episode seeded
    ``seed + k`` as in training) and the episodes they ended: the simulator's own rate, the reference of every
    throughput table."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    episodes, start = 0, time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            episodes += 1
            env.reset(seed=seed + episodes)
    return time.perf_counter() - start, episodes


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def load_average() -> dict[str, Any]:
    out = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    return {"uptime": out, "loadavg": list(os.getloadavg())}


def versions(*extra: str) -> dict[str, str]:
    """Python and the versions of the packages a benchmark depends on."""
    import importlib.metadata as md

    names = ["torch", "torchrl", "tensordict", "lightning", "stable-baselines3", "highway-env", "gymnasium", "numpy",
             *extra]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=False, capture_output=True, text=True, cwd=ROOT).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "zoo_dirty": git("status", "--porcelain", "--", "zoo").splitlines()}


def machine() -> dict[str, Any]:
    import torch

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "cuda_available": torch.cuda.is_available(), "torch_threads": torch.get_num_threads()}


def summary_dict(result) -> dict[str, dict[str, float]]:
    """An :class:`zoo.evaluation.EvaluationResult`'s summary as JSON-ready ``{metric: {mean, std}}``."""
    return {k: {"mean": m, "std": s} for k, (m, s) in result.summary.items()}


def fmt(summary: dict, key: str, digits: int = 2) -> str:
    return f"{summary[key]['mean']:.{digits}f} ± {summary[key]['std']:.{digits}f}"


def print_rows(rows: list[tuple[str, ...]]) -> None:
    """A plain-text table; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


class SB3Evaluatee:
    """Just enough of a zoo agent for :func:`zoo.evaluate`: an SB3 model's deterministic action on one key.

    Args:
        model: a trained stable-baselines3 model.
        env_config: the :class:`zoo.envs.EnvConfig` to evaluate on (the zoo agent's, for the same episodes).
        reward: the reward module the episodes are scored with (``None``: highway-env's engineered reward).
        obs_key: the observation the model reads.
    """

    def __init__(self, model, env_config, reward=None, obs_key: str = "observation") -> None:
        self.model = model
        self.env_config = env_config
        self.reward = reward
        self.obs_key = obs_key

    def eval(self) -> SB3Evaluatee:
        self.model.policy.set_training_mode(False)
        return self

    def act(self, tensordict):
        import numpy as np
        import torch

        action, _ = self.model.predict(tensordict.get(self.obs_key).cpu().numpy(), deterministic=True)
        if self.env_config.action == "discrete":
            return tensordict.set("action", torch.as_tensor(int(np.asarray(action).reshape(())), dtype=torch.int64))
        return tensordict.set("action", torch.as_tensor(np.asarray(action, dtype=np.float32)))
