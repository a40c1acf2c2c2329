"""The results page of a grid, built from its results file alone (:mod:`zoo.benchmark.results_file`): no
MLflow, so a committed file regenerates a published page.

Per scenario and evaluation condition: the interquartile mean of each score over training runs with its 95 %
stratified-bootstrap interval, the reference policies, the paper's mean ± std table, the comparisons that
matter (IQM difference and probability of improvement, with intervals) and plots. The page's claims are
generated from the intervals: a method is called better only where the interval of the difference excludes
zero; otherwise the page says the grid does not tell the pair apart and what a grid that could would need.
The plain-language reading between :data:`READING_START` and :data:`READING_END` is kept when the page is
written again.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from zoo.benchmark.methods import BASE_RECIPES, DEFAULT_ALGORITHM, METHODS
from zoo.benchmark.plots import plot_collision_speeds, plot_curves, plot_intervals, plot_profiles
from zoo.benchmark.results_file import SCORES, GridResults, run_scores
from zoo.benchmark.stats import Comparison, Interval, compare, required_budget, stratified_bootstrap

TABLE_METRICS = ("AS", "RC", "TD", "CS", "SR", "AC", "CR")
#: the episode column behind each metric of the paper's table (AC = CR: an episode ends at its first collision)
COLUMNS = {"AS": "AS", "RC": "RC", "TD": "TD", "CS": "CS", "SR": "SR", "AC": "collisions", "CR": "collisions"}
DIGITS = {"AS": 1, "TD": 1, "CS": 1}
#: the comparisons issue 15 asks every page for: (X, Y) reads "X against Y"
PAIRS = (("drivevlm-rl", "vlm-rl"), ("vlm-rl", "engineered"), ("vlm-rl", "sparse"))
#: the scores a claim is made on, and the words for X's side of a resolved difference (higher, lower)
CLAIM_SCORES = {"SR": ("succeeds more often than", "succeeds less often than"),
                "CR": ("collides more often than", "collides less often than")}
#: fewest runs per method behind a claimed ordering: a bootstrap over 2 or 3 runs has a handful of distinct
#: resamples and intervals far too narrow (issue 15 asks for >= 5 training seeds per cell)
MIN_RUNS = 5
CONDITION_WORDS = {"default": "default condition (the scenario as trained)",
                   "unseen": "unseen condition (traffic and layout not trained on)"}
ACTION_WORDS = {"continuous": "continuous (steer, throttle) actions at the scenario's continuous-control rate "
                              "(docs/envs.md)",
                "discrete": "discrete actions: highway-env's meta-actions (lane left/right, faster, slower, "
                            "idle), one decision per simulated second"}
ALGORITHM_WORDS = {"sac": "SAC", "dqn": "DQN"}
READING_START = "<!-- reading: start (kept when this page is regenerated) -->"
READING_END = "<!-- reading: end -->"
READING_PLACEHOLDER = "*To be written: a short plain-language reading of the tables, and where they agree or " \
                      "disagree with the papers' results (docs/method.md#reported-results).*"


def label(name: str) -> str:
    """A method's name as the paper's table gives it; a reference policy's as is."""
    return METHODS.get(name).label if name in METHODS.names() else name


def _interval(est: Interval, digits: int = 2) -> str:
    return f"{est.value:.{digits}f} [{est.low:.{digits}f}, {est.high:.{digits}f}]"


def iqm_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Method, runs, then each score's IQM over runs with its 95 % bootstrap interval."""
    lines = ["| method | runs | " + " | ".join(SCORES) + " |", "|---|---|" + "---|" * len(SCORES)]
    for method, method_runs in runs.items():
        cells = [_interval(stratified_bootstrap([run_scores(method_runs, s)]), DIGITS.get(s, 2)) for s in SCORES]
        lines.append(f"| {label(method)} | {len(method_runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_table(references: dict[str, dict[str, Any]]) -> str:
    """Policy, episodes, then each score's mean over the episodes with its 95 % bootstrap interval."""
    lines = ["| policy | episodes | " + " | ".join(SCORES) + " |", "|---|---|" + "---|" * len(SCORES)]
    for policy, record in references.items():
        cells = [_interval(stratified_bootstrap([record["episodes"][SCORES[s][0]]], np.mean), DIGITS.get(s, 2))
                 for s in SCORES]
        lines.append(f"| `{policy}` | {len(record['episodes']['SR'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_std_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """The paper's form: per metric, mean ± std (population) over training seeds of the per-run means."""
    lines = ["| method | seeds | " + " | ".join(TABLE_METRICS) + " |", "|---|---|" + "---|" * len(TABLE_METRICS)]
    for method, method_runs in runs.items():
        cells = []
        for metric in TABLE_METRICS:
            values = [float(np.mean(r["episodes"][COLUMNS[metric]])) for r in method_runs]
            d = DIGITS.get(metric, 2)
            cells.append(f"{np.mean(values):.{d}f} ± {np.std(values):.{d}f}")
        lines.append(f"| {label(method)} | {len(method_runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons(runs: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, str, Comparison]]:
    """``(X, Y, score, comparison)`` for each pair of :data:`PAIRS` present, on each claim score."""
    return [(x, y, score, compare(run_scores(runs[x], score), run_scores(runs[y], score)))
            for x, y in PAIRS if x in runs and y in runs for score in CLAIM_SCORES]


def comparison_table(found: list[tuple[str, str, str, Comparison]]) -> str:
    lines = ["| X against Y | score | IQM(X) − IQM(Y) [95 % CI] | P(X > Y) [95 % CI] | runs X, Y |",
             "|---|---|---|---|---|"]
    for x, y, score, c in found:
        lines.append(f"| {label(x)} against {label(y)} | {score} | {_interval(c.difference)} | "
                     f"{_interval(c.improvement)} | {c.runs[0]}, {c.runs[1]} |")
    return "\n".join(lines)


def supports_ordering(c: Comparison) -> bool:
    """Whether a page may call one method of the pair better: interval excludes zero, enough runs behind it."""
    return c.resolved and min(c.runs) >= MIN_RUNS


def claim(x: str, y: str, score: str, c: Comparison, runs: dict[str, list[dict[str, Any]]]) -> str:
    """One sentence on a comparison, from its numbers: an ordering only where the interval excludes zero and
    both methods have :data:`MIN_RUNS` runs; otherwise what a grid that resolves a difference of the observed
    size would need."""
    name = SCORES[score][1]
    pair = f"{label(x)} against {label(y)}, {name}"
    diff = f"IQM difference {_interval(c.difference)}"
    if supports_ordering(c):
        higher, lower = CLAIM_SCORES[score]
        verb = higher if c.difference.value > 0 else lower
        return (f"{pair}: the 95 % interval of the {diff} excludes zero: {label(x)} {verb} {label(y)} "
                f"(probability that a run of {label(x)} has the higher {name}: {_interval(c.improvement)}).")
    if c.resolved:
        text = (f"{pair}: the 95 % interval of the {diff} excludes zero, but from {min(c.runs)} runs, fewer than "
                f"the {MIN_RUNS} an interval over runs needs: no ordering is claimed.")
    else:
        text = f"{pair}: the 95 % interval of the {diff} includes zero: this grid does not tell them apart."
    column = SCORES[score][0]
    power = required_budget([r["episodes"][column] for r in runs[x]], [r["episodes"][column] for r in runs[y]])
    if power.seeds is None:
        return text + " Their mean scores are equal, so no number of seeds would show a difference of that size."
    episodes = min(len(r["episodes"][column]) for r in runs[x] + runs[y])
    observed = abs(np.mean(run_scores(runs[x], score)) - np.mean(run_scores(runs[y], score)))
    text += (f" A mean difference of the observed size ({observed:.3f}) would need about "
             f"{max(power.seeds, MIN_RUNS)} training seeds per method at {episodes} held-out episodes per run")
    if power.episodes is not None and min(c.runs) >= MIN_RUNS:
        text += f", or about {power.episodes} episodes per run at the current {min(c.runs)} seeds"
    elif power.episodes is None:
        text += " (more episodes alone would not do: the training seeds differ more than that)"
    return text + " (80 % power, normal approximation; the training budget in env steps is not modelled)."


def kept_reading(page: Path) -> str:
    """The reading section of an existing page, or the placeholder."""
    if page.is_file():
        text = page.read_text()
        if READING_START in text and READING_END in text:
            return text.split(READING_START, 1)[1].split(READING_END, 1)[0].strip()
    return READING_PLACEHOLDER


def write_report(results: GridResults, page: Path, results_path: str | Path, command: str | None = None,
                 note: str | None = None) -> Path:
    """Write ``page`` (markdown) and its plots in ``<page stem>/`` from a grid's results.

    Args:
        results: the grid's results file, read.
        page: the markdown file (e.g. ``runs/benchmark-paper/report/results.md``, or ``docs/results.md`` to
            publish).
        results_path: where the results file lives, quoted on the page as its data.
        command: the grid's command (default: the one in the results file).
        note: a line under the title (default: the results file's).

    Example:
        >>> write_report(read_results("benchmarks/results/paper-merge.jsonl.gz"),
        ...              Path("/tmp/results.md"), "benchmarks/results/paper-merge.jsonl.gz")  # doctest: +SKIP
    """
    grid = results.grid
    algorithm = grid.get("algorithm", DEFAULT_ALGORITHM)
    suite, conditions = grid["suite"], grid.get("conditions", ["default"])
    plots = page.parent / page.stem
    plots.mkdir(parents=True, exist_ok=True)
    note = grid.get("note", "") if note is None else note
    trained = [r for r in results.records if r["kind"] == "run"]
    dates = sorted(r["date"] for r in trained)
    span = "no runs"
    if dates:
        first, last = (d[:16].replace("T", " ") for d in (dates[0], dates[-1]))
        span = f"{first}–{last[11:] if last[:10] == first[:10] else last} UTC"  # the end's date when it differs
    episodes = sorted({len(r["episodes"]["SR"]) for r in trained})
    machines = sorted({r["machine"] for r in results.records if r.get("machine")})
    commits = sorted({r["git_commit"] for r in trained if r.get("git_commit")})
    # a name with two digests (weights changed mid-grid) shows both
    models = sorted({(name, digest) for r in trained for name, digest in (r.get("reward_models") or {}).items()})
    lines = [f"# Results: the `{suite}` benchmark", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += [
        (f"Generated by `zoo benchmark` from the results file `{results_path}` (per-run, per-episode data); "
         f"rebuild it with `zoo benchmark --report-only --results {results_path} --out {page}`. Do not edit by "
         "hand except the reading section."), "",
        "```bash", command or grid.get("command", "zoo benchmark"), "```", "",
        (f"* **Budget**: {grid['steps']} training env steps per run, {ALGORITHM_WORDS[algorithm]} with the "
         f"hyper-parameters of `recipes/{BASE_RECIPES[algorithm]}` for every method (only the reward changes; the "
         f"policy reads kinematics; {ACTION_WORDS[grid['action']]}); VLM rewards on the backbone "
         f"`{grid['backbone']}` (full frame); random-action warm-up: the recipe's `learning_starts`, at most a "
         "quarter of the steps. Each method's reward entry comes from its recipe: `zoo/benchmark/methods.py`."),
        ("* **Evaluation**: deterministic policy on held-out seeds (`1 000 000 + i`, disjoint from training)"
         + (f", {', '.join(map(str, episodes))} episodes per run" if episodes else "") + ". A run's score is the "
         "mean over its episodes; tables give the interquartile mean (IQM) over runs with a 95 % stratified-"
         "bootstrap interval (2 000 resamples of the runs; Agarwal et al. 2021), and the paper's mean ± std."),
        "* **Reward models** (SHA-256 of the weights): "
        + (", ".join(f"`{n}` `{d[:12]}`" for n, d in models) or "not recorded") + ".",
        f"* **Code**: git {', '.join(f'`{c[:12]}`' for c in commits) or 'not recorded'}.",
        f"* **Machine**: {'; '.join(machines) or 'not recorded'}.",
        f"* **Date**: runs started {span}; page written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        ("* **Metrics** (definitions: `docs/method.md#metrics`): AS average speed km/h · RC route completion · "
         "TD distance m · CS collision speed km/h (0 without collision) · SR success rate · AC collisions per "
         "episode · CR collision rate. Every scenario ends an episode at its first collision, so AC = CR."),
        "",
    ]
    sections, claims, supported = [], [], 0
    for scenario in grid["scenarios"]:
        for condition in conditions:
            runs = results.runs(scenario, condition)
            references = results.references(scenario, condition)
            sections += [f"## {scenario}, {CONDITION_WORDS.get(condition, condition)}", ""]
            if not runs and not references:
                sections += ["No results yet.", ""]
                continue
            sections += _section(runs, references, plots, f"{scenario}_{condition}")
            found = comparisons(runs)
            claims += [f"* **{scenario}, {condition}**: {claim(x, y, s, c, runs)}" for x, y, s, c in found]
            supported += sum(supports_ordering(c) for *_, c in found)
    lines += ["## What the intervals support", ""]
    if claims:
        lines += [f"{supported} of {len(claims)} comparisons show a difference (95 % interval excluding zero, at "
                  f"least {MIN_RUNS} runs per method)." if supported else
                  f"None of the {len(claims)} comparisons shows a difference at this budget ({grid['steps']} env "
                  "steps per run): each sentence says what a grid that could show it would need.", "", *claims]
    else:
        lines += ["No pair of DriveVLM-RL, VLM-RL, engineered and sparse is in this grid to compare."]
    lines += ["", *sections, "## Reading", "", READING_START, kept_reading(page), READING_END, ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines))
    return page


def _section(runs: dict[str, list[dict[str, Any]]], references: dict[str, dict[str, Any]], plots: Path,
             stem: str) -> list[str]:
    labels = {m: label(m) for m in [*runs, *references]}
    lines = []
    if runs:
        lines += ["IQM over training runs [95 % interval]:", "", iqm_table(runs), ""]
    if references:
        lines += ["Reference policies (no training; mean over the same held-out episodes [95 % interval over "
                  "episodes]):", "", reference_table(references), ""]
    if runs:
        lines += ["Mean ± std over training seeds (the paper's form):", "", mean_std_table(runs), ""]
        found = comparisons(runs)
        if found:
            lines += ["Comparisons (X against Y; P(X > Y): the probability that a run of X scores higher than a "
                      "run of Y, 0.5 for no difference):", "", comparison_table(found), ""]
    intervals = plot_intervals(runs, references, labels, plots / f"{stem}_intervals.png")
    lines += [f"![IQM with 95 % intervals]({plots.name}/{intervals.name})", ""]
    if runs:
        profiles = plot_profiles(runs, labels, plots / f"{stem}_profiles.png")
        speeds = plot_collision_speeds(runs, labels, plots / f"{stem}_collision_speed.png")
        lines += [f"![performance profiles]({plots.name}/{profiles.name})", "",
                  "Performance profiles: the fraction of runs scoring above τ, with 95 % bootstrap bands.", ""]
        if any(r.get("curve") for rs in runs.values() for r in rs):
            curves = plot_curves(runs, labels, plots / f"{stem}_curves.png")
            lines += [f"![learning curves]({plots.name}/{curves.name})", "",
                      ("Held-out return, success and collision rate of the deterministic policy on a few held-out "
                       "episodes at regular env-step intervals (`EvaluateEvery`, default condition), the last point "
                       "the final evaluation. Lines: IQM over runs; bands: 95 % bootstrap intervals."), ""]
        lines += [f"![collision speeds]({plots.name}/{speeds.name})", ""]
    return lines
