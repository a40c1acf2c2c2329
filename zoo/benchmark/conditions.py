"""Evaluation conditions of a grid: the scenario as trained (``default``) and an ``unseen`` variant of it
(denser or faster traffic, other lanes: issue 15's analogue of the papers' unseen routes).

``default`` is the held-out evaluation every cell runs at the end of its ``zoo fit``
(``EvaluateAfterFit``: artifact ``evaluation/``, metrics ``eval/*``). Every other condition is evaluated
afterwards from the run's checkpoint by :func:`evaluate_run_on` (artifact ``evaluation-<condition>/``, metrics
``eval_<condition>/*``) and tagged, so a resumed grid evaluates only what is missing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zoo
from zoo.envs.presets import CONDITIONS
from zoo.registry import check_choice

DEFAULT = "default"
TAG = "zoo.benchmark.evaluated."


def artifact_dir(condition: str) -> str:
    return "evaluation" if condition == DEFAULT else f"evaluation-{condition}"


def metric_prefix(condition: str) -> str:
    return "eval/" if condition == DEFAULT else f"eval_{condition}/"


def check_conditions(conditions: Sequence[str]) -> None:
    """Refuse an unknown condition before a grid trains, not after."""
    for condition in conditions:
        check_choice("evaluation condition", condition, CONDITIONS)


def evaluate_trained(agent: Any, scenario: str, episodes: int, condition: str) -> Any:
    """Held-out evaluation of a trained agent on ``condition``: the one call that passes a condition on."""
    from zoo.evaluation import evaluate  # lazy: would load torchrl, tensordict, torch

    return evaluate(agent, scenario, episodes=episodes, progress=False, condition=condition)


def evaluate_run_on(client: Any, run: Any, condition: str, episodes: int) -> None:
    """Evaluate a finished grid run's checkpoint on ``condition`` and log it to the run (files and metrics)."""
    # lazy: import cycle (zoo.benchmark.grid imports this module)
    from zoo.benchmark.grid import TAG as GRID_TAG
    from zoo.evaluation.report import write_result  # lazy: would load torchrl, tensordict, torch

    agent = zoo.load_policy(f"runs:/{run.info.run_id}")
    result = evaluate_trained(agent, run.data.tags[f"{GRID_TAG}scenario"], episodes, condition)
    with tempfile.TemporaryDirectory(prefix="zoo-condition-") as tmp:
        for path in write_result(result, Path(tmp)):
            client.log_artifact(run.info.run_id, str(path), artifact_dir(condition))
    for name, value in result.flat_metrics(metric_prefix(condition)).items():
        client.log_metric(run.info.run_id, name, value)
    client.set_tag(run.info.run_id, f"{TAG}{condition}", str(episodes))


def needs_evaluation(run: Any, condition: str, episodes: int) -> bool:
    """Whether ``run`` lacks an evaluation on ``condition`` with ``episodes`` episodes."""
    return condition != DEFAULT and run.data.tags.get(f"{TAG}{condition}") != str(episodes)
