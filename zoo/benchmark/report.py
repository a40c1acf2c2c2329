"""``docs/results.md`` from the benchmark's MLflow runs: a table per scenario and PNG plots beside it.

Tables are in the paper's form (PAPER.md §8): per method, each metric's mean ± std over training seeds of
the per-run held-out means. Plots: learning curves (training episode return, held-out success and
collision rate against env steps) and the collision-speed distribution of the held-out episodes.
The plain-language reading between :data:`READING_START` and :data:`READING_END` is kept when the page
is written again.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from zoo.benchmark.grid import SUITES, TAG, finished_runs, machine
from zoo.benchmark.methods import METHODS

TABLE_METRICS = ("AS", "RC", "TD", "CS", "SR", "AC", "CR")
#: how the page names the grid's action mode
ACTION_WORDS = {"continuous": "continuous (steer, throttle) actions at the scenario's continuous-control rate "
                              "(docs/envs.md)",
                "discrete": "discrete SAC over highway-env's meta-actions (lane left/right, faster, slower, "
                            "idle), one decision per simulated second"}
READING_START = "<!-- reading: start (kept when this page is regenerated) -->"
READING_END = "<!-- reading: end -->"
READING_PLACEHOLDER = "*To be written: a short plain-language reading of the tables, and where they agree or " \
                      "disagree with PAPER.md §8.*"


def collect(client: Any, suite: str, scenarios: list[str], methods: list[str], steps: int,
            backbone: str, action: str = "continuous") -> dict[str, dict[str, list[Any]]]:
    """Complete runs of the grid, newest per (method, scenario, seed), as ``{scenario: {method: [runs]}}``."""
    grid: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for run in finished_runs(client, suite):  # newest first: the first run of a cell wins
        tags = run.data.tags
        scenario, method = tags.get(f"{TAG}scenario"), tags.get(f"{TAG}method")
        if scenario in scenarios and method in methods and tags.get(f"{TAG}steps") == str(steps) \
                and tags.get(f"{TAG}backbone") == backbone and tags.get(f"{TAG}action") == action:
            grid[scenario][method].setdefault(tags[f"{TAG}seed"], run)
    return {s: {m: list(grid[s][m].values()) for m in methods if grid[s].get(m)} for s in scenarios}


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def table(runs_by_method: dict[str, list[Any]]) -> str:
    """A markdown table: method, seeds, then each metric's mean ± std over seeds."""
    digits = {"AS": 1, "TD": 1, "CS": 1}
    lines = ["| method | seeds | " + " | ".join(TABLE_METRICS) + " |", "|---|---|" + "---|" * len(TABLE_METRICS)]
    for method, runs in runs_by_method.items():
        cells = []
        for metric in TABLE_METRICS:
            mean, std = mean_std([run.data.metrics[f"eval/{metric}"] for run in runs])
            d = digits.get(metric, 2)
            cells.append(f"{mean:.{d}f} ± {std:.{d}f}")
        lines.append(f"| {METHODS.get(method).label} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _history(client: Any, run: Any, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def _collision_speeds(client: Any, run: Any) -> list[float]:
    path = client.download_artifacts(run.info.run_id, "evaluation/episodes.csv")
    with open(path, newline="") as fh:
        return [float(row["CS"]) for row in csv.DictReader(fh) if float(row["collisions"]) > 0.5]


def plot_curves(client: Any, runs_by_method: dict[str, list[Any]], path: Path) -> Path:
    """Three panels against env steps: training episode return, held-out success and collision rate.

    Each method's line is the mean over its seeds at the steps they share; the last point is the final
    held-out evaluation.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("train/episode_return", None, "training episode return"),
              ("curve/SR", "eval/SR", "held-out success rate"),
              ("curve/CR", "eval/CR", "held-out collision rate"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (key, final, title) in zip(axes, panels):
        for method, runs in runs_by_method.items():
            by_step: dict[int, list[float]] = defaultdict(list)
            for run in runs:
                # one value per step and run: the final evaluation wins over a curve point at the same step
                points = dict(_history(client, run, key) + (_history(client, run, final) if final else []))
                for step, value in points.items():
                    by_step[step].append(value)
            xs = sorted(s for s, v in by_step.items() if len(v) == len(runs))
            if xs:
                ax.plot(xs, [sum(by_step[s]) / len(by_step[s]) for s in xs], marker=".", label=method)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("env steps")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_collision_speeds(client: Any, runs_by_method: dict[str, list[Any]], path: Path) -> Path:
    """Collision speed (km/h) of every held-out episode that ended in a collision, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs_by_method)
    speeds = [[s for run in runs_by_method[m] for s in _collision_speeds(client, run)] for m in names]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.4))
    for i, values in enumerate(speeds):
        ax.scatter([i + (j % 7 - 3) * 0.04 for j in range(len(values))], values, s=10, alpha=0.6)
        if values:
            ax.hlines(sorted(values)[len(values) // 2], i - 0.3, i + 0.3, color="black")
    ax.set_xticks(range(len(names)), [f"{m}\n({len(v)} coll.)" for m, v in zip(names, speeds)], fontsize=7)
    ax.set_ylabel("collision speed, km/h")
    # from standstill, with headroom: speeds that all sit near one value stay readable (no offset axis)
    ax.set_ylim(0, 1.15 * max((max(v) for v in speeds if v), default=1.0))
    ax.set_title("held-out episodes ending in a collision (bar: median)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def kept_reading(page: Path) -> str:
    """The reading section of an existing page, or the placeholder."""
    if page.is_file():
        text = page.read_text()
        if READING_START in text and READING_END in text:
            return text.split(READING_START, 1)[1].split(READING_END, 1)[0].strip()
    return READING_PLACEHOLDER


def write_results(client: Any, page: Path, suite: str, scenarios: list[str], methods: list[str], steps: int,
                  backbone: str, command: str, note: str = "", action: str = "continuous") -> Path:
    """Write ``page`` (markdown) and its plots in ``<page stem>/`` from the complete runs of the grid.

    Args:
        client: an ``mlflow.MlflowClient`` on the store the grid ran in.
        page: the markdown file (e.g. ``docs/results.md``).
        suite, scenarios, methods, steps, backbone, action: which runs (the grid's command line).
        command: the exact command, quoted on the page.
        note: a line under the title (e.g. that the budget is small).

    Example:
        >>> write_results(mlflow.MlflowClient(), Path("docs/results.md"), "paper", ["highway-fast"],
        ...               ["sparse"], 2_000, "drive-clip-bev-tiny", "zoo benchmark ...")  # doctest: +SKIP
    """
    grid = collect(client, suite, scenarios, methods, steps, backbone, action)
    plots = page.parent / page.stem
    plots.mkdir(parents=True, exist_ok=True)
    runs = [r for by_method in grid.values() for rs in by_method.values() for r in rs]
    started = [dt.datetime.fromtimestamp(r.info.start_time / 1000, dt.timezone.utc) for r in runs]
    span = f"{min(started):%Y-%m-%d %H:%M}–{max(started):%H:%M} UTC" if started else "no runs"
    eval_episodes = {r.data.tags.get(f"{TAG}eval_episodes") for r in runs} - {None}
    machines = {r.data.tags.get(f"{TAG}machine") for r in runs} - {None}  # runs before the tag: this machine
    lines = [f"# Results: the `{suite}` benchmark", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += [
        (f"Generated by `zoo benchmark` from its MLflow runs (experiment `benchmark-{suite}`); do not edit by "
         "hand except the reading section."), "",
        "```bash", command, "```", "",
        (f"* **Budget**: {steps} training env steps per run, SAC with the hyper-parameters of "
         "`recipes/sac_vlmrl_highway.yaml` for every method (only the reward changes; the policy reads "
         f"kinematics; {ACTION_WORDS[action]}); VLM rewards on the backbone `{backbone}` (full frame); random-action warm-up "
         "`min(1000, steps / 4)`. Each method's reward entry comes from its recipe: `zoo/benchmark/methods.py`."),
        ("* **Evaluation**: deterministic policy on held-out seeds (`1 000 000 + i`, disjoint from training); "
         "each run's metrics are means over its held-out episodes, the table shows mean ± std of those over "
         "training seeds (std 0 with one seed)."
         + (f" Held-out episodes per run: {', '.join(sorted(eval_episodes))}." if eval_episodes else "")),
        f"* **Machine**: {'; '.join(sorted(machines)) or machine()}.",
        f"* **Date**: runs started {span}; page written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        ("* **Metrics** (PAPER.md §7): AS average speed km/h · RC route completion · TD distance m · CS collision "
         "speed km/h (0 without collision) · SR success rate · AC collisions per episode · CR collision rate. "
         "Every scenario ends an episode at its first collision, so AC = CR."),
        "",
    ]
    missing = [m for m in SUITES.get(suite, ()) if m not in methods]
    if missing:
        lines += [f"Methods of the `{suite}` suite not in this page: {', '.join(missing)}.", ""]
    for scenario, by_method in grid.items():
        lines += [f"## {scenario}", ""]
        if not by_method:
            lines += ["No finished runs yet.", ""]
            continue
        curves = plot_curves(client, by_method, plots / f"{scenario}_curves.png")
        speeds = plot_collision_speeds(client, by_method, plots / f"{scenario}_collision_speed.png")
        lines += [table(by_method), "",
                  f"![learning curves]({plots.name}/{curves.name})", "",
                  ("Left: return of the training episodes (as collected, with exploration). Middle and right: "
                   "success and collision rate of the deterministic policy on a few held-out episodes at "
                   "regular env-step intervals (`EvaluateEvery`), the last point the final evaluation. Lines: mean "
                   "over seeds."), "",
                  f"![collision speeds]({plots.name}/{speeds.name})", ""]
    lines += ["## Reading", "", READING_START, kept_reading(page), READING_END, ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines))
    return page
