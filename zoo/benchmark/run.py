"""``zoo benchmark``: a grid run or resumed (:mod:`zoo.benchmark.grid`), its reference policies evaluated, then its
results file and page written (:mod:`zoo.benchmark.results_file`, :mod:`zoo.benchmark.report`)."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path
from typing import Literal

from rich.console import Console

from zoo.benchmark.conditions import DEFAULT, check_conditions
from zoo.benchmark.grid import SUITES, Budget, grid_results, run_grid
from zoo.benchmark.methods import BASE_RECIPES, DEFAULT_ALGORITHM, DEFAULT_BACKBONE
from zoo.benchmark.ray_cells import RayCluster
from zoo.benchmark.references import check_references
from zoo.benchmark.results_file import check_same_grid, read_results, recorded_cells, save_results
from zoo.envs.presets import CONDITIONS
from zoo.errors import UsageError
from zoo.evaluation.reference import REFERENCE_POLICIES
from zoo.extras import require
from zoo.registry import unknown_choice
from zoo.tracking import tracking_uri


def run_benchmark(*, suite: str = "paper", scenarios: tuple[str, ...] = ("highway-fast",), seeds: int = 5,
                  steps: int | None = None, methods: tuple[str, ...] | None = None,
                  action: Literal["continuous", "discrete"] = "continuous", algorithm: str = DEFAULT_ALGORITHM,
                  conditions: tuple[str, ...] = (DEFAULT,), references: tuple[str, ...] = REFERENCE_POLICIES,
                  device: str = "cpu", backbone: str = DEFAULT_BACKBONE, eval_episodes: int = 50,
                  curve_every: int | None = None, curve_episodes: int = 5, results: str | None = None,
                  out: str | None = None, note: str | None = None, report_only: bool = False, workers: int = 1,
                  backend: Literal["local", "ray"] = "local", address: str | None = None, cell_gpus: float = 0.0,
                  command_line: str | None = None) -> None:
    """Run a benchmark grid (method x scenario x seed, one learner on the same budget).

    One MLflow run per cell; finished cells are skipped, so the grid resumes where it stopped. Then evaluate the
    reference policies, write the grid's results file (per-run, per-episode data) and the results page built from
    it (tables with interquartile means and 95 percent bootstrap intervals, claims, plots). Nothing published is
    overwritten unless --out and --results name it.

    Args:
        suite: the grid's suite of methods (paper: the papers' table)
        scenarios: scenarios of the grid
        seeds: number of training seeds (0 .. N-1; default 5, the fewest a bootstrap interval over runs means much)
        steps: training env steps per run (required, except with --report-only on an existing --results file)
        methods: a subset of the suite's methods (default all): sparse, engineered, vlm-sr, vlm-rm, lord, roboclip,
            vlm-rl, vlm-rl-nrac, drivevlm-rl, drivevlm-rl-nrac
        action: the action mode: continuous (steer, throttle; the papers') or discrete meta-actions (learnt within
            a few thousand steps)
        algorithm: the learner every method trains, with the hyper-parameters of its recipe (sac:
            recipes/base/sac.yaml, dqn: recipes/base/dqn.yaml); sac is the papers', dqn needs --action discrete and
            learns meta-actions within a few thousand steps
        conditions: evaluation conditions (default, unseen); default is always evaluated, unseen (denser or faster
            traffic, other lanes) is reported beside it
        references: reference policies evaluated beside the methods on the same held-out episodes (default all:
            constant:<meta-action>, random, idm); none for no reference rows
        device: Lightning accelerator: cpu, gpu, auto
        backbone: VLM of every VLM reward
        eval_episodes: held-out episodes of each final evaluation (and of each reference policy)
        curve_every: env steps between learning-curve evaluations (default steps/5)
        curve_episodes: held-out episodes per curve point
        results: the grid's results file, JSON lines, gzip when it ends in .gz (default
            runs/benchmark-<suite>/results.jsonl.gz); commit it under benchmarks/results/
        out: results page, plots in <out stem>/ (default runs/benchmark-<suite>/report/results.md; docs/results.md
            to publish)
        note: a line under the page's title (e.g. 'small budget')
        report_only: train and evaluate nothing: rebuild the page from --results if that file exists (no MLflow),
            else from the grid's finished MLflow runs (writing --results first)
        workers: cells trained at once, each a `zoo fit` subprocess with one thread, its output in
            runs/benchmark-<suite>/logs/ (default 1: one after another in this process)
        backend: local: this machine (--workers); ray: every cell a Ray task on a Ray cluster (pip install
            drive-zoo[ray]; docs/scaling.md)
        address: with --backend ray: the cluster to join, host:port, ray://host:10001, auto or local (what each
            means, and the default: docs/scaling.md, "A benchmark grid on a Ray cluster")
        cell_gpus: with --backend ray: GPUs each cell declares (0.25: four cells share a GPU; default 0)
        command_line: the command that ran this, recorded as the grid's command (without --report-only)
    """
    _check_options(suite, seeds, algorithm, conditions, workers, backend, address, cell_gpus, device)
    from zoo.benchmark.report import write_report  # lazy: would load scipy

    run_folder = Path("runs") / f"benchmark-{suite}"
    results_path = Path(results) if results else run_folder / "results.jsonl.gz"
    page = Path(out) if out else run_folder / "report" / "results.md"
    console = Console(stderr=True)
    if report_only and results_path.is_file():  # the committed data alone: MLflow is never opened
        write_report(read_results(results_path), page, results_path, note=note)
        console.print(f"wrote {page} from {results_path}")
        return
    if steps is None:
        raise UsageError("--steps is required, except with --report-only on an existing --results file")
    conditions = [DEFAULT, *(c for c in dict.fromkeys(conditions) if c != DEFAULT)]
    references = [] if report_only else check_references(references)
    if not report_only:  # refused now, not after the training
        check_conditions(conditions)
        if backend == "ray":
            require("ray", "zoo benchmark --backend ray")

    import mlflow  # lazy: mlflow is slow to import

    budget = Budget(steps=steps, eval_episodes=eval_episodes, curve_every=curve_every or max(1, steps // 5),
                    curve_episodes=curve_episodes, backbone=backbone, device=device, action=action,
                    algorithm=algorithm)
    methods = list(methods or SUITES[suite])
    # read before the training: a file that cannot be read stops the grid now, not after it
    previous = read_results(results_path).records if results_path.is_file() else []
    # the grid's command: the same with --report-only rewrites the page from the same runs
    command = shlex.join(a for a in shlex.split(command_line) if a != "--report-only") if command_line \
        else "zoo benchmark"
    grid = {"kind": "grid", "suite": suite, "scenarios": list(scenarios), "methods": methods, "steps": steps,
            "action": action, "algorithm": algorithm, "backbone": backbone, "conditions": conditions,
            "references": references, "eval_episodes": eval_episodes, "command": command, "note": note or "",
            "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    check_same_grid(previous, grid, results_path)
    if not report_only:
        cluster = RayCluster(address, cell_gpus) if backend == "ray" else None
        outcome = run_grid(suite, scenarios, range(seeds), budget, methods, console, workers=workers,
                           conditions=conditions, recorded=recorded_cells(previous, grid), cluster=cluster)
        console.print(f"ran {len(outcome['ran'])}, skipped {len(outcome['skipped'])} finished, "
                      f"failed {len(outcome['failed'])}" + "".join(f"\n  {f}" for f in outcome["failed"]))
    gathered = grid_results(mlflow.MlflowClient(tracking_uri()), grid, previous, console)
    save_results(results_path, gathered)
    write_report(gathered, page, results_path)
    console.print(f"wrote {results_path} ({results_path.stat().st_size / 1e3:.0f} kB) and {page}")


def _check_options(suite: str, seeds: int, algorithm: str, conditions: tuple[str, ...], workers: int, backend: str,
                   address: str | None, cell_gpus: float, device: str) -> None:
    """Refuse options out of range or that do not go together, before anything runs."""
    for kind, value, choices in (("suite", suite, sorted(SUITES)), ("algorithm", algorithm, sorted(BASE_RECIPES)),
                                 *(("condition", c, CONDITIONS) for c in conditions)):
        if value not in choices:
            raise UsageError(unknown_choice(kind, value, list(choices)))
    for name, value in (("seeds", seeds), ("workers", workers)):
        if value < 1:
            raise UsageError(f"--{name} must be >= 1, got {value}")
    if backend != "ray" and (address is not None or cell_gpus):
        raise UsageError(f"--address and --cell-gpus need --backend ray, got --backend {backend}")
    if backend == "ray" and workers > 1:
        raise UsageError(f"--workers {workers} is the local backend's: with --backend ray the cluster's free CPUs "
                         "decide how many cells run at once")
    if cell_gpus < 0:
        raise UsageError(f"--cell-gpus must be >= 0, got {cell_gpus:g}")
    if backend == "ray" and device != "cpu" and not cell_gpus:
        raise UsageError(f"--device {device} with --backend ray needs --cell-gpus > 0 (Ray hides the GPUs from "
                         "a task that declares none)")
