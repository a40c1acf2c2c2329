"""Run the benchmark grid (method × scenario × seed), one MLflow run per cell, resumable.

Each cell is ``zoo fit`` on its learner's :data:`~zoo.benchmark.methods.BASE_RECIPES` entry with the method's reward, the
scenario, the seed and the budget set from the command line; it is tagged ``zoo.benchmark.*`` in the
MLflow experiment ``benchmark-<suite>``. A cell whose run finished (tag ``zoo.benchmark.complete``) with
the same budget and backbone is found and skipped, so a grid can be spread over several sittings; a
failed or interrupted cell runs again. The cells train one after another in this process, N at once
as ``zoo fit`` subprocesses (:mod:`zoo.benchmark.workers`, ``zoo benchmark --workers N``), or as Ray tasks on a
cluster (:mod:`zoo.benchmark.ray_cells`, ``zoo benchmark --backend ray``). A finished run
is tagged with the machine, the git commit and the weight digests of its reward models, then evaluated on
every further condition it lacks (:mod:`zoo.benchmark.conditions`). :func:`grid_results` gathers the grid
and its reference policies into a results file's records (:mod:`zoo.benchmark.results_file`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from zoo.benchmark.conditions import DEFAULT, check_conditions, evaluate_run_on, needs_evaluation
from zoo.benchmark.methods import (
    BASE_RECIPES,
    DEFAULT_ALGORITHM,
    DEFAULT_BACKBONE,
    METHODS,
    RECIPES,
    method_reward,
    read_recipe,
)
from zoo.benchmark.provenance import git_commit, reward_model_digests
from zoo.benchmark.results_file import GridResults, episode_columns, latest_runs, recorded_cells, run_records
from zoo.envs.config import ACTION_MODES
from zoo.envs.presets import SCENARIOS
from zoo.errors import ZooError, user_error
from zoo.registry import check_choice, unknown_choice
from zoo.tracking import tracking_uri
from zoo.tracking.settings import _local_artifact_location

if TYPE_CHECKING:
    from zoo.benchmark.ray_cells import RayCluster
    from zoo.benchmark.workers import Job

TAG = "zoo.benchmark."
#: the ``zoo fit`` option that carries a cell's MLflow tags (JSON)
TAGS_OPTION = "--trainer.logger.init_args.tags"
#: grids the benchmark knows; ``paper`` is the papers' table (docs/method.md#reported-results; its DriveVLM-RL rows
#: arrive with DualPathwayReward)
SUITES = {"paper": ("sparse", "engineered", "vlm-sr", "vlm-rm", "lord", "roboclip", "vlm-rl", "vlm-rl-nrac",
                    "drivevlm-rl", "drivevlm-rl-nrac")}

#: the evaluation seed of reference policies: the same held-out episodes as every trained run's final evaluation
REFERENCE_SEED = 0


@dataclass(frozen=True)
class Budget:
    """What every cell of a grid shares.

    Attributes:
        steps: training env steps per run.
        eval_episodes: held-out episodes of the final evaluation.
        curve_every: env steps between the learning-curve evaluations.
        curve_episodes: held-out episodes per learning-curve evaluation.
        backbone: the VLM every VLM reward uses.
        device: Lightning accelerator (``cpu``, ``gpu``, ``auto``).
        action: ``"continuous"`` (steer, throttle; the papers' setting) or ``"discrete"`` (highway-env's
            meta-actions, learnt within a few thousand steps: a grid that fits a small budget).
        algorithm: the learner every method trains, a key of :data:`~zoo.benchmark.methods.BASE_RECIPES`
            (``"dqn"`` needs discrete actions).
    """

    steps: int
    eval_episodes: int = 50
    curve_every: int = 1_000
    curve_episodes: int = 5
    backbone: str = DEFAULT_BACKBONE
    device: str = "cpu"
    action: str = "continuous"
    algorithm: str = DEFAULT_ALGORITHM

    def __post_init__(self) -> None:
        check_choice("action", self.action, ACTION_MODES)
        check_choice("algorithm", self.algorithm, tuple(BASE_RECIPES))
        if self.algorithm == "dqn" and self.action != "discrete":
            raise ZooError(f"algorithm 'dqn' needs discrete actions, got action {self.action!r}")
        for name in ("steps", "eval_episodes", "curve_every", "curve_episodes"):
            if getattr(self, name) < 1:
                raise ZooError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def recipe(self) -> str:
        """The base recipe of the grid's learner (a file under ``recipes/``)."""
        return BASE_RECIPES[self.algorithm]

    def learning_starts(self) -> int:
        """The recipe's random-action warm-up, capped at a quarter of a small budget."""
        return min(read_recipe(self.recipe)["model"]["init_args"]["learning_starts"], self.steps // 4)


def machine() -> str:
    """The machine a cell ran on, in words (CPU cores, GPU, torch): tagged on each run, quoted by the page."""
    import torch  # lazy: torch is slow to import

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def experiment_name(suite: str) -> str:
    return f"benchmark-{suite}"


def cell_tags(suite: str, method: str, scenario: str, seed: int, budget: Budget) -> dict[str, str]:
    return {f"{TAG}suite": suite, f"{TAG}method": method, f"{TAG}scenario": scenario, f"{TAG}seed": str(seed),
            f"{TAG}steps": str(budget.steps), f"{TAG}action": budget.action, f"{TAG}backbone": budget.backbone,
            f"{TAG}eval_episodes": str(budget.eval_episodes), f"{TAG}algorithm": budget.algorithm}


def run_algorithm(tags: dict[str, str]) -> str:
    """The learner a grid run trained (runs tagged before the ``algorithm`` tag existed are SAC)."""
    return tags.get(f"{TAG}algorithm", DEFAULT_ALGORITHM)


def finished_runs(client: Any, suite: str) -> list[Any]:
    """The complete runs of a suite's experiment (newest first)."""
    experiment = client.get_experiment_by_name(experiment_name(suite))
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`{TAG}complete` = 'true'",
                              order_by=["attributes.start_time DESC"], max_results=10_000)


def matching(runs: Sequence[Any], tags: dict[str, str]) -> list[Any]:
    """The ``runs`` whose tags match ``tags`` (the same cell and budget), in their order."""
    return [run for run in runs
            if all({**run.data.tags, f"{TAG}algorithm": run_algorithm(run.data.tags)}.get(k) == v
                   for k, v in tags.items())]


def find_finished(runs: Sequence[Any], tags: dict[str, str]) -> Any | None:
    """The first of ``runs`` whose tags match ``tags`` (the same cell and budget), else ``None``."""
    return next(iter(matching(runs, tags)), None)


def fit_arguments(suite: str, method: str, scenario: str, seed: int, budget: Budget) -> list[str]:
    """The ``zoo fit`` arguments of one cell."""
    reward, batching = method_reward(method, budget.backbone)
    callbacks = [{"class_path": "zoo.callbacks.EvaluateAfterFit",
                  "init_args": {"episodes": budget.eval_episodes, "before": False}},
                 {"class_path": "zoo.callbacks.EvaluateEvery",
                  "init_args": {"every": budget.curve_every, "episodes": budget.curve_episodes}}]
    return [
        "fit", "--config", str(RECIPES / budget.recipe),
        f"--seed_everything={seed}",
        f"--trainer.logger.init_args.experiment_name={experiment_name(suite)}",
        f"--trainer.logger.init_args.run_name={method}/{scenario}/seed{seed}",
        f"{TAGS_OPTION}={json.dumps(cell_tags(suite, method, scenario, seed, budget))}",
        f"--trainer.callbacks={json.dumps(callbacks)}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.accelerator={budget.device}",
        "--torch_threads=1",
        f"--model.init_args.env.scenario={scenario}",
        f"--model.init_args.env.action={budget.action}",
        "--model.init_args.env.obs=kinematics",  # the policy's input; VLM rewards switch rendering on
        f"--model.init_args.reward={json.dumps(reward)}",
        f"--model.init_args.reward_batching={batching}",
        f"--model.init_args.total_frames={budget.steps}",
        f"--model.init_args.learning_starts={budget.learning_starts()}",
        f"--model.init_args.seed={seed}",
    ]


def run_grid(suite: str, scenarios: Sequence[str], seeds: Sequence[int], budget: Budget,
             methods: Sequence[str] | None = None, console: Console | None = None,
             workers: int = 1, conditions: Sequence[str] = (DEFAULT,),
             recorded: Collection[tuple[str, str, int]] = (),
             cluster: RayCluster | None = None) -> dict[str, list[str]]:
    """Train and evaluate every missing cell of the grid; return run ids by outcome.

    Args:
        suite: a name in :data:`SUITES`.
        scenarios: scenario names (``zoo.list_scenarios()``).
        seeds: training seeds (evaluation seeds are disjoint: ``zoo.evaluation.EVAL_SEED_OFFSET``).
        budget: steps, evaluation episodes, backbone, device.
        methods: a subset of the suite's methods (default all).
        console: where progress goes.
        workers: cells trained at once. 1: one after another in this process; more: each cell a ``zoo fit``
            subprocess (:mod:`zoo.benchmark.workers`), its output in
            ``runs/benchmark-<suite>/logs/<method>_<scenario>_seed<k>.log``.
        conditions: evaluation conditions (:data:`~zoo.benchmark.conditions.CONDITIONS`); ``default`` is
            evaluated by each cell's ``zoo fit``, the others afterwards from its checkpoint.
        recorded: cells ``(method, scenario, seed)`` the grid's results file holds whole
            (:func:`~zoo.benchmark.results_file.recorded_cells`): skipped like a finished MLflow run.
        cluster: train every cell as a Ray task on this cluster instead (``workers`` must then be 1).

    Returns:
        ``{"ran": [...], "skipped": [...], "failed": ["method/scenario/seed: error", ...]}`` (a cell skipped
        because its results file holds it is named ``method/scenario/seed``).

    Example:
        >>> run_grid("paper", ["highway-fast"], [0], Budget(steps=2_000), methods=["sparse"])  # doctest: +SKIP
    """
    import mlflow  # lazy: mlflow is slow to import

    from zoo.benchmark.workers import Job  # lazy: import cycle (zoo.benchmark.workers imports this module)

    if suite not in SUITES:
        raise ZooError(unknown_choice("benchmark suite", suite, list(SUITES)))
    methods = list(methods or SUITES[suite])
    for name in methods:
        METHODS.get(name)
        if name not in SUITES[suite]:
            raise ZooError(f"method {name!r} is not in suite {suite!r}: {', '.join(SUITES[suite])}")
    for scenario in scenarios:
        SCENARIOS.get(scenario)
    check_conditions(conditions)
    if workers < 1:
        raise ZooError(f"workers must be >= 1, got {workers}")
    if cluster is not None and workers > 1:
        raise ZooError(f"workers is the local backend's ({workers} given): on Ray the cluster's free CPUs decide "
                       "how many cells run at once")
    console = console or Console(stderr=True)
    client = mlflow.MlflowClient(tracking_uri())
    done = finished_runs(client, suite)
    outcome: dict[str, list[str]] = {"ran": [], "skipped": [], "failed": []}
    jobs = []
    for scenario in scenarios:
        for seed in seeds:
            for method in methods:
                cell = f"{method}/{scenario}/seed{seed}"
                tags = cell_tags(suite, method, scenario, seed, budget)
                previous = find_finished(done, tags)
                if previous is not None:
                    console.print(f"[dim]skip {cell}: finished in run {previous.info.run_id}[/dim]")
                    outcome["skipped"].append(previous.info.run_id)
                    continue
                if (method, scenario, seed) in recorded:
                    console.print(f"[dim]skip {cell}: in the results file[/dim]")
                    outcome["skipped"].append(cell)
                    continue
                jobs.append(Job(cell, fit_arguments(suite, method, scenario, seed, budget),
                                {**tags, "mlflow.runName": cell}))
    if jobs:
        console.print(f"{len(jobs)} cells to train, {budget.steps} env steps each, "
                      + ("as Ray tasks" if cluster else f"{min(workers, len(jobs))} at a time"))
    # the weights each cell trains with, hashed once per grid (a name may resolve to other weights later)
    digests = {m: json.dumps(reward_model_digests(method_reward(m, budget.backbone)[0])) for m in methods} \
        if jobs else {}
    commit = git_commit()
    for job, run_id, error, where in _fit(jobs, workers, client, suite, console, cluster):
        if error is not None:
            console.print(f"[red]failed {job.name}: {error}[/red]")
            outcome["failed"].append(f"{job.name}: {error}")
            continue
        client.set_tag(run_id, f"{TAG}machine", where)
        client.set_tag(run_id, f"{TAG}reward_models", digests[job.tags[f"{TAG}method"]])
        if commit is not None:
            client.set_tag(run_id, f"{TAG}commit", commit)
        client.set_tag(run_id, f"{TAG}complete", "true")
        outcome["ran"].append(run_id)
    _evaluate_conditions(client, suite, scenarios, methods, budget, conditions, console, outcome)
    return outcome


def _evaluate_conditions(client: Any, suite: str, scenarios: Sequence[str], methods: Sequence[str], budget: Budget,
                         conditions: Sequence[str], console: Console, outcome: dict[str, list[str]]) -> None:
    """Evaluate every finished run of the grid on each further condition it lacks (a resumed grid: only those)."""
    runs = latest_runs(client, suite, scenarios, methods, budget.steps, budget.backbone, budget.action,
                       budget.algorithm)
    for condition in conditions:
        for run in runs:
            if not needs_evaluation(run, condition, budget.eval_episodes):
                continue
            name = run.data.tags.get("mlflow.runName", run.info.run_id)
            console.print(f"evaluate {name} on the {condition} condition")
            try:
                evaluate_run_on(client, run, condition, budget.eval_episodes)
            except Exception as err:  # noqa: BLE001  one run that cannot be evaluated must not stop the others
                console.print(f"[red]failed {name} on {condition}: {user_error(err) or err}[/red]")
                outcome["failed"].append(f"{name} on {condition}: {user_error(err) or err}")


def grid_results(client: Any, grid: dict[str, Any], previous: Sequence[dict[str, Any]] = (),
                 console: Console | None = None) -> GridResults:
    """The results of a grid: its finished runs' records from MLflow, and its reference policies' evaluations.

    Args:
        client: an ``mlflow.MlflowClient`` on the store the grid ran in.
        grid: the results file's grid line (suite, scenarios, methods, steps, backbone, action, conditions,
            references, eval_episodes, command, note).
        previous: the records of an earlier results file. A reference with the same policy, scenario, condition
            and episodes is kept instead of evaluated again; a cell the file holds whole
            (:func:`~zoo.benchmark.results_file.recorded_cells`) and MLflow has no run of keeps its records.
        console: where progress goes.
    """
    from zoo.evaluation.reference import (  # lazy: would load torchrl, tensordict, torch
        evaluate_reference,
        reference_policies,
    )

    console = console or Console(stderr=True)
    runs = latest_runs(client, grid["suite"], grid["scenarios"], grid["methods"], grid["steps"], grid["backbone"],
                       grid["action"], grid.get("algorithm", DEFAULT_ALGORITHM))
    records = [r for run in runs for r in run_records(client, run, grid["conditions"])]
    in_mlflow = {(r["method"], r["scenario"], r["seed"]) for r in records}
    records += [r for cell, kept_runs in recorded_cells(previous, grid).items() if cell not in in_mlflow
                for r in kept_runs]
    here = {"machine": machine(), "git_commit": git_commit()}
    kept = {(r["policy"], r["scenario"], r["condition"]): r for r in previous
            if r["kind"] == "reference" and len(r["episodes"].get("SR", [])) == grid["eval_episodes"]}
    for scenario in grid["scenarios"]:
        for condition in grid["conditions"]:
            for policy in [p for p in grid["references"] if p in reference_policies(scenario)]:
                if (policy, scenario, condition) in kept:
                    records.append(kept[policy, scenario, condition])
                    continue
                console.print(f"evaluate reference {policy} on {scenario}, {condition} condition")
                result = evaluate_reference(policy, scenario, episodes=grid["eval_episodes"], seed=REFERENCE_SEED,
                                            condition=condition)
                records.append({"kind": "reference", "policy": policy, "scenario": scenario, "condition": condition,
                                "seed": REFERENCE_SEED, "eval_seed": result.seeds[0], **here,
                                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                "episodes": episode_columns(result.episodes)})
    return GridResults(grid, records)


def _fit(jobs: Sequence[Job], workers: int, client: Any, suite: str, console: Console,
         cluster: RayCluster | None) -> Iterator[tuple[Job, str | None, str | None, str | None]]:
    """Train ``jobs``; yield ``(job, run_id, None, machine)`` or ``(job, None, reason, machine)`` as each ends
    (``machine``: where it trained, :func:`machine`)."""
    if not jobs:
        return
    if cluster is not None or workers > 1:
        name = experiment_name(suite)  # created here: children creating it at once would collide
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            name, artifact_location=_local_artifact_location())
        log_dir = Path.cwd() / "runs" / name / "logs"
        if cluster is not None:
            # lazy: import cycle (zoo.benchmark.ray_cells imports this module)
            from zoo.benchmark.ray_cells import fit_on_ray

            yield from fit_on_ray(jobs, cluster, client, experiment_id, log_dir, console)
            return
        # lazy: import cycle (zoo.benchmark.workers imports this module)
        from zoo.benchmark.workers import fit_in_subprocesses

        here = machine()
        for job, run_id, error in fit_in_subprocesses(jobs, workers, client, experiment_id, log_dir, console):
            yield job, run_id, error, here
        return
    from zoo.fit.lightning_cli import lightning_cli  # lazy: would load lightning, torch, scipy

    here = machine()
    for job in jobs:
        console.print(f"[bold]run {job.name}[/bold]")
        try:
            cli = lightning_cli(job.arguments)
        except Exception as err:  # noqa: BLE001  one broken cell must not stop a grid spread over hours
            yield job, None, str(user_error(err) or err), here
            continue
        yield job, cli.trainer.logger.run_id, None, here
