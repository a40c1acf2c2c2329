"""The results file of a grid: every number its page shows, in a compact file that can be committed, so the
page is rebuilt without MLflow (``zoo benchmark --report-only --results FILE``).

JSON lines (gzip-compressed when the name ends in ``.gz``). The first line describes the grid, each other
line is one evaluation: a trained run on one condition, or a reference policy on one condition::

    {"kind": "grid", "schema": 1, "suite": "paper", "scenarios": [...], "methods": [...], "steps": 2000,
     "action": "discrete", "algorithm": "sac", "backbone": "drive-clip-bev-tiny", "conditions": ["default", "unseen"],
     "references": ["constant:IDLE", ...], "eval_episodes": 50, "command": "zoo benchmark ...", "note": "",
     "written": "<UTC ISO>"}
    {"kind": "run", "method": "vlm-rl", "scenario": "merge", "condition": "default", "seed": 0,
     "steps": 2000, "action": "discrete", "algorithm": "sac", "backbone": "drive-clip-bev-tiny",
     "reward_models": {"drive-clip-bev-tiny": "<sha256 of its safetensors>"}, "run_id": "...",
     "git_commit": "...", "machine": "...", "date": "<run start, UTC ISO>",
     "eval_seed": 1000000, "episodes": {"AS": [...], "RC": [...], "TD": [...], "CS": [...], "SR": [...],
     "collisions": [...], "return": [...], "length": [...]},
     "curve": {"steps": [...], "SR": [...], "CR": [...], "return": [...]}}
    {"kind": "reference", "policy": "constant:SLOWER", "scenario": "merge", "condition": "default", "seed": 0,
     "eval_seed": 1000000, "machine": "...", "git_commit": "...", "date": "...", "episodes": {...}}

``episodes`` holds one list per metric of ``zoo.evaluation.metrics.episode_metrics``, one value per held-out
episode (rounded: a results file is data, not a checkpoint). ``curve`` (default condition only) holds the
learning-curve evaluations (``EvaluateEvery``) and the final one. ``reward_models`` and ``git_commit`` are
``null`` for runs that predate their tags; a grid or run without ``algorithm`` is SAC.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.benchmark.methods import DEFAULT_ALGORITHM
from zoo.errors import ZooError

SCHEMA = 1
#: episode metrics that are whole numbers; the others keep 4 decimals, speeds and distances 2 (0.01 km/h, 1 cm)
WHOLE = ("SR", "collisions", "length")
DECIMALS = {"AS": 2, "TD": 2, "CS": 2}
CURVE_KEYS = ("SR", "CR", "return")
#: the per-run scores a page reports: name -> (episode column, words)
SCORES = {"SR": ("SR", "success rate"), "CR": ("collisions", "collision rate"),
          "AS": ("AS", "average speed, km/h"), "RC": ("RC", "route completion")}


@dataclass
class GridResults:
    """A results file in memory: the grid's description and its evaluation records."""

    grid: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def runs(self, scenario: str, condition: str) -> dict[str, list[dict[str, Any]]]:
        """Trained runs of a scenario and condition as ``{method: [records]}``, in the grid's method order."""
        by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in self.records:
            if r["kind"] == "run" and r["scenario"] == scenario and r["condition"] == condition:
                by_method[r["method"]].append(r)
        return {m: sorted(by_method[m], key=lambda r: r["seed"]) for m in self.grid["methods"] if by_method.get(m)}

    def references(self, scenario: str, condition: str) -> dict[str, dict[str, Any]]:
        """Reference evaluations of a scenario and condition as ``{policy: record}``."""
        return {r["policy"]: r for r in self.records
                if r["kind"] == "reference" and r["scenario"] == scenario and r["condition"] == condition}


def run_scores(runs: Sequence[dict[str, Any]], score: str) -> list[float]:
    """One score per run: the mean over its held-out episodes of the score's episode column."""
    column = SCORES[score][0]
    return [sum(r["episodes"][column]) / len(r["episodes"][column]) for r in runs]


def episode_columns(episodes: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """Per-episode metric dicts as one rounded list per metric."""
    if not episodes:
        return {}
    return {name: [_round(name, e[name]) for e in episodes] for name in episodes[0]}


def _round(name: str, value: float) -> float | int:
    return int(round(float(value))) if name in WHOLE else round(float(value), DECIMALS.get(name, 4))


def read_results(path: str | Path) -> GridResults:
    """Read a results file.

    Raises:
        ZooError: the file is missing, not a results file, or of another schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"no results file at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    if not lines or lines[0].get("kind") != "grid":
        raise ZooError(f"{path} is not a benchmark results file (its first line must be the grid, kind 'grid')")
    if lines[0].get("schema") != SCHEMA:
        raise ZooError(f"{path} has results schema {lines[0].get('schema')!r}; this zoo reads schema {SCHEMA}")
    return GridResults(lines[0], lines[1:])


def save_results(path: str | Path, results: GridResults) -> Path:
    """Write a results file (gzip when ``path`` ends in ``.gz``); one record per line, keys in a fixed order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # a crash mid-write leaves the previous file whole
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(partial, "wt", encoding="utf-8") as fh:
        for record in [{**results.grid, "schema": SCHEMA}, *results.records]:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    partial.replace(path)
    return path


def in_grid(record: dict[str, Any], grid: dict[str, Any]) -> bool:
    """Whether a run record belongs to ``grid``: one of its methods and scenarios, its budget (steps, action,
    algorithm, backbone) and its number of held-out episodes."""
    return record["method"] in grid["methods"] and record["scenario"] in grid["scenarios"] \
        and record["steps"] == grid["steps"] and record["action"] == grid["action"] \
        and record.get("algorithm", DEFAULT_ALGORITHM) == grid.get("algorithm", DEFAULT_ALGORITHM) \
        and record["backbone"] == grid["backbone"] and len(record["episodes"].get("SR", [])) == grid["eval_episodes"]


def recorded_cells(records: Sequence[dict[str, Any]], grid: dict[str, Any]) -> dict[tuple[str, str, int],
                                                                                list[dict[str, Any]]]:
    """The cells of ``grid`` a results file already holds whole: ``{(method, scenario, seed): records}``.

    A cell counts when it has a run record :func:`in_grid` for every condition of the grid. Such a cell is not
    trained again, even where the MLflow store it ran in is gone (a fresh clone extending a committed grid); a
    cell recorded only in part is trained again, since its missing conditions need the checkpoint.
    """
    by_cell: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if r["kind"] == "run" and in_grid(r, grid):
            by_cell[r["method"], r["scenario"], r["seed"]][r["condition"]] = r
    return {cell: [found[c] for c in grid["conditions"]] for cell, found in by_cell.items()
            if all(c in found for c in grid["conditions"])}


def check_same_grid(records: Sequence[dict[str, Any]], grid: dict[str, Any], path: str | Path) -> None:
    """Refuse a grid that would drop runs its results file holds (another method list, scenario or budget).

    Raises:
        ZooError: naming the cells outside the grid and what to do.
    """
    outside = sorted({f"{r['method']}/{r['scenario']}/seed{r['seed']} ({r['steps']} steps, {r['action']}, "
                      f"{r.get('algorithm', DEFAULT_ALGORITHM)}, {len(r['episodes'].get('SR', []))} episodes)"
                      for r in records if r["kind"] == "run" and not in_grid(r, grid)})
    if outside:
        shown = ", ".join(outside[:4]) + (f" and {len(outside) - 4} more" if len(outside) > 4 else "")
        raise ZooError(f"{path} holds runs outside this grid, which rewriting it would drop: {shown}; name their "
                       "methods and scenarios, use the same --steps/--action/--algorithm/--backbone/--eval-episodes, "
                       "or write to another --results")


# --- from MLflow --------------------------------------------------------------------------------------------


def latest_runs(client: Any, suite: str, scenarios: Sequence[str], methods: Sequence[str], steps: int,
                backbone: str, action: str, algorithm: str) -> list[Any]:
    """Complete runs of the grid, the newest per (method, scenario, seed)."""
    from zoo.benchmark.grid import TAG, finished_runs, run_algorithm  # lazy: would load gymnasium, numpy

    chosen: dict[tuple[str, str, str], Any] = {}
    for run in finished_runs(client, suite):  # newest first: the first run of a cell wins
        tags = run.data.tags
        cell = (tags.get(f"{TAG}method"), tags.get(f"{TAG}scenario"), tags.get(f"{TAG}seed"))
        if cell[1] in scenarios and cell[0] in methods and tags.get(f"{TAG}steps") == str(steps) \
                and tags.get(f"{TAG}backbone") == backbone and tags.get(f"{TAG}action") == action \
                and run_algorithm(tags) == algorithm:
            chosen.setdefault(cell, run)
    return list(chosen.values())


def run_records(client: Any, run: Any, conditions: Sequence[str]) -> list[dict[str, Any]]:
    """The records of one finished grid run: one per condition it was evaluated on."""
    from zoo.benchmark.conditions import DEFAULT, artifact_dir  # lazy: would load gymnasium, numpy
    from zoo.benchmark.conditions import TAG as EVALUATED  # lazy: would load gymnasium, numpy
    from zoo.benchmark.grid import TAG, run_algorithm  # lazy: would load gymnasium, numpy

    tags = run.data.tags
    common = {"kind": "run", "method": tags[f"{TAG}method"], "scenario": tags[f"{TAG}scenario"],
              "seed": int(tags[f"{TAG}seed"]), "steps": int(tags[f"{TAG}steps"]), "action": tags[f"{TAG}action"],
              "algorithm": run_algorithm(tags), "backbone": tags[f"{TAG}backbone"],
              "reward_models": json.loads(tags[f"{TAG}reward_models"]) if f"{TAG}reward_models" in tags else None,
              "run_id": run.info.run_id,
              "git_commit": tags.get(f"{TAG}commit") or tags.get("mlflow.source.git.commit"),
              "machine": tags.get(f"{TAG}machine"),
              "date": dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.timezone.utc).isoformat(
                  timespec="seconds")}
    records = []
    for condition in conditions:
        if condition != DEFAULT and f"{EVALUATED}{condition}" not in tags:
            continue  # not evaluated there (yet): the page counts the runs it has
        seeds, episodes = _episodes(client, run.info.run_id, artifact_dir(condition))
        record = {**common, "condition": condition, "eval_seed": seeds[0], "episodes": episode_columns(episodes)}
        if condition == DEFAULT:
            record["curve"] = _curve(client, run.info.run_id)
        records.append(record)
    return records


def _episodes(client: Any, run_id: str, folder: str) -> tuple[list[int], list[dict[str, float]]]:
    path = client.download_artifacts(run_id, f"{folder}/episodes.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ZooError(f"run {run_id} has no held-out episodes in {folder}/episodes.csv")
    return [int(r.pop("seed")) for r in rows], [{k: float(v) for k, v in r.items()} for r in rows]


def _curve(client: Any, run_id: str) -> dict[str, list[float]]:
    """Held-out curve points (``curve/*``) and the final evaluation (``eval/*``), at the steps all keys share."""
    points: dict[str, dict[int, float]] = {}
    for key in CURVE_KEYS:
        history = {m.step: m.value for m in client.get_metric_history(run_id, f"curve/{key}")}
        # the final evaluation wins over a curve point at the same step
        history.update({m.step: m.value for m in client.get_metric_history(run_id, f"eval/{key}")})
        points[key] = history
    steps = sorted(set.intersection(*(set(p) for p in points.values())))
    return {"steps": steps, **{k: [round(points[k][s], 4) for s in steps] for k in CURVE_KEYS}}
