"""The results page's plots, from a results file's records: interval estimates, performance profiles,
learning curves with confidence bands, collision speeds. Every method keeps one colour across all plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.benchmark.results_file import SCORES, run_scores
from zoo.benchmark.stats import iqm, performance_profile, stratified_bootstrap

Runs = dict[str, list[dict[str, Any]]]


def _pyplot():
    import matplotlib  # lazy: matplotlib is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib is slow to import

    return plt


def _colours(methods: list[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    _pyplot().close(fig)
    return path


def plot_intervals(runs: Runs, references: dict[str, dict[str, Any]], labels: dict[str, str], path: Path) -> Path:
    """Per score a panel: each method's IQM over runs with its 95 % stratified-bootstrap interval; reference
    policies in grey (mean over their episodes, interval over episodes)."""
    plt = _pyplot()
    colours = _colours(list(runs))
    rows = [*runs, *references]
    fig, axes = plt.subplots(1, len(SCORES), figsize=(3.2 * len(SCORES), 0.9 + 0.32 * len(rows)), sharey=True)
    for ax, score in zip(axes, SCORES):
        for y, method in enumerate(runs):
            est = stratified_bootstrap([run_scores(runs[method], score)])
            ax.errorbar(est.value, y, xerr=[[est.value - est.low], [est.high - est.value]], fmt="o",
                        color=colours[method], capsize=3)
        for y, record in enumerate(references.values(), start=len(runs)):
            est = stratified_bootstrap([record["episodes"][SCORES[score][0]]], np.mean)
            ax.errorbar(est.value, y, xerr=[[est.value - est.low], [est.high - est.value]], fmt="D",
                        color="grey", capsize=3)
        ax.set_title(SCORES[score][1], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), [labels.get(m, m) for m in rows], fontsize=7)
    axes[0].invert_yaxis()
    return _save(fig, path)


def plot_profiles(runs: Runs, labels: dict[str, str], path: Path) -> Path:
    """Performance profiles: the fraction of runs whose success rate (left) and collision-free rate (right,
    1 − collision rate) exceed τ, with 95 % bootstrap bands."""
    plt = _pyplot()
    colours = _colours(list(runs))
    taus = np.linspace(0.0, 1.0, 101)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (score, title) in zip(axes, (("SR", "success rate > τ"), ("CR", "1 − collision rate > τ"))):
        for method, method_runs in runs.items():
            scores = np.asarray(run_scores(method_runs, score))
            fraction, low, high = performance_profile([1.0 - scores if score == "CR" else scores], taus)
            ax.step(taus, fraction, where="post", color=colours[method], label=labels.get(method, method))
            ax.fill_between(taus, low, high, step="post", color=colours[method], alpha=0.15)
        ax.set_xlabel("τ")
        ax.set_title(f"fraction of runs with {title}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(fontsize=7, loc="best")
    return _save(fig, path)


def plot_curves(runs: Runs, labels: dict[str, str], path: Path) -> Path:
    """Held-out return, success and collision rate against env steps: IQM over runs at the steps they all
    share, with a 95 % bootstrap band."""
    plt = _pyplot()
    colours = _colours(list(runs))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (key, title) in zip(axes, (("return", "held-out return"), ("SR", "held-out success rate"),
                                       ("CR", "held-out collision rate"))):
        for method, method_runs in runs.items():
            curves = [dict(zip(r["curve"]["steps"], r["curve"][key])) for r in method_runs if r.get("curve")]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if not steps:
                continue
            bands = [stratified_bootstrap([[c[s] for c in curves]]) for s in steps]
            ax.plot(steps, [iqm([c[s] for c in curves]) for s in steps], marker=".", color=colours[method],
                    label=labels.get(method, method))
            ax.fill_between(steps, [b.low for b in bands], [b.high for b in bands], color=colours[method],
                            alpha=0.15)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("env steps")
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_collision_speeds(runs: Runs, labels: dict[str, str], path: Path) -> Path:
    """Collision speed (km/h) of every held-out episode that ended in a collision, per method."""
    plt = _pyplot()
    names = list(runs)
    speeds = [[cs for r in runs[m] for cs, hit in zip(r["episodes"]["CS"], r["episodes"]["collisions"]) if hit]
              for m in names]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.4))
    for i, values in enumerate(speeds):
        ax.scatter([i + (j % 7 - 3) * 0.04 for j in range(len(values))], values, s=10, alpha=0.6)
        if values:
            ax.hlines(sorted(values)[len(values) // 2], i - 0.3, i + 0.3, color="black")
    ax.set_xticks(range(len(names)), [f"{labels.get(m, m)}\n({len(v)} coll.)" for m, v in zip(names, speeds)],
                  fontsize=7)
    ax.set_ylabel("collision speed, km/h")
    # from standstill, with headroom: speeds that all sit near one value stay readable (no offset axis)
    ax.set_ylim(0, 1.15 * max((max(v) for v in speeds if v), default=1.0))
    ax.set_title("held-out episodes ending in a collision (bar: median)", fontsize=10)
    return _save(fig, path)
