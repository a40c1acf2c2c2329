"""Evaluation output: a rich table, JSON and CSV files, MLflow metrics and artifacts."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zoo.evaluation.metrics import SUMMARY_METRICS
from zoo.evaluation.rollout import EvaluationResult
from zoo.tracking import tracking_uri, ui_command

_HEADERS = {"AS": "AS  average speed, km/h", "RC": "RC  route completion", "TD": "TD  total distance, m",
            "CS": "CS  collision speed, km/h", "SR": "SR  success rate", "AC": "AC  collisions per episode",
            "CR": "CR  collision rate", "return": "episode return", "length": "episode length, steps"}


def print_table(result: EvaluationResult, title: str | None = None, console: Console | None = None,
                before: EvaluationResult | None = None) -> None:
    """Print the summary as mean ± std per metric; with ``before``, the untrained policy beside it."""
    table = Table(title=title or f"evaluation: {result.scenario}")
    table.add_column("metric")
    if before is not None:
        table.add_column("before training", justify="right")
    table.add_column("trained" if before is not None else "mean ± std", justify="right")
    for name in SUMMARY_METRICS:
        cells = [r.summary[name] for r in ((before, result) if before is not None else (result,))]
        table.add_row(_HEADERS[name], *(f"{mean:.2f} ± {std:.2f}" for mean, std in cells))
    (console or Console()).print(table)


def write_result(result: EvaluationResult, out_dir: str | Path) -> list[Path]:
    """Write ``metrics.json`` (summary + episodes) and ``episodes.csv``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "metrics.json", out / "episodes.csv"
    json_path.write_text(json.dumps(result.to_dict(), indent=2))
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["seed", *result.episodes[0]])
        writer.writeheader()
        for seed, episode in zip(result.seeds, result.episodes):
            writer.writerow({"seed": seed, **episode})
    return [json_path, csv_path]


def log_to_mlflow(result: EvaluationResult, client: Any, run_id: str, files: list[Path], step: int = 0,
                  prefix: str = "eval/") -> None:
    """Log the summary metrics (``<prefix><metric>``) and the result files to an MLflow run."""
    for name, value in result.flat_metrics(prefix).items():
        client.log_metric(run_id, name, value, step=step)
    for path in files:
        client.log_artifact(run_id, str(path), "evaluation")


def report_evaluation(result: EvaluationResult, source: dict[str, str], out: str | Path, *, condition: str,
                      episodes: int, seed: int, video: str | Path | None = None) -> None:
    """Print the table, write ``metrics.json`` and ``episodes.csv`` to ``out`` and log them (and ``video``) to a new
    MLflow run of the experiment ``evaluation``, tagged with ``source`` (``{"checkpoint": ...}`` or
    ``{"policy": ...}``), the scenario and the condition."""
    import mlflow  # lazy: mlflow is slow to import
    from mlflow.entities import Param  # lazy: mlflow is slow to import

    print_table(result, title=f"held-out evaluation: {result.scenario} ({condition}), {episodes} episodes, seed {seed}")
    files = write_result(result, out)
    client = mlflow.MlflowClient(tracking_uri())
    experiment = client.get_experiment_by_name("evaluation") or client.get_experiment(
        client.create_experiment("evaluation"))
    run = client.create_run(experiment.experiment_id, tags={**source, "scenario": result.scenario,
                                                            "condition": condition})
    client.log_batch(run.info.run_id, params=[
        Param(k, str(v)) for k, v in {**source, "scenario": result.scenario, "condition": condition,
                                      "episodes": episodes, "seed": seed}.items()])
    written = files + ([Path(video)] if video else [])
    log_to_mlflow(result, client, run.info.run_id, written)
    client.set_terminated(run.info.run_id)
    Console().print(f"wrote {', '.join(str(f) for f in written)}; MLflow run {run.info.run_id} "
                    f"(experiment 'evaluation'); UI: {ui_command()}")
