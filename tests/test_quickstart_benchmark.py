"""benchmarks/quickstart.py: its ``--quick`` mode runs end to end, writes what its full run writes, and leaves
``benchmarks/results/`` alone."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
METRICS = ("SR", "CR", "AS", "RC", "return")


def _results_digest() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((BENCHMARKS / "results").iterdir())
            if p.is_file()}


def _check_metrics(block: dict, episodes: int) -> None:
    for name in METRICS:
        assert math.isfinite(block[name]), (name, block)
    for rate in ("SR", "CR"):
        assert 0.0 <= block[rate] <= 1.0
        assert (block[rate] * episodes) == pytest.approx(round(block[rate] * episodes))  # a count over episodes
    assert 0.0 < block["AS"] < 200.0  # km/h
    assert 0.0 <= block["RC"] <= 1.5


@pytest.fixture(scope="module")
def quickstart_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart-bench") / "quickstart.json"
    before = _results_digest()
    run = subprocess.run([sys.executable, str(BENCHMARKS / "quickstart.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=out.parent)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert _results_digest() == before, "--quick wrote into benchmarks/results/"
    return json.loads(out.read_text()), out, run.stdout


def test_quickstart_quick_runs_the_readme_command_on_one_seed(quickstart_quick):
    data, _, _ = quickstart_quick
    assert data["quick"] is True
    assert data["command"].startswith("zoo fit --config recipes/quickstart.yaml --seed_everything=S")
    assert (data["scenario"], data["seeds"]) == ("highway-fast", [0])
    assert isinstance(data["preset_version"], int)
    (run,) = data["runs"]
    assert run["seed"] == 0 and len(run["run_id"]) == 32
    assert run["total_frames"] == 128  # the --quick budget reached the fit
    assert run["wall_s"] > 0 and 0 < run["cpu_s"] < 10 * run["wall_s"]
    assert run["load_1min_at_start"] >= 0


def test_quickstart_quick_evaluates_on_the_held_out_seeds_of_the_references(quickstart_quick):
    data, _, _ = quickstart_quick
    (run,) = data["runs"]
    recipe, held_out = run["recipe_eval"], run["held_out"]
    assert recipe["episodes"] == held_out["episodes"] == 2
    assert recipe["seeds"] == held_out["seeds"] == [1_000_000, 1_000_001]
    _check_metrics(recipe["after"], 2)
    _check_metrics(held_out, 2)
    assert set(recipe["before"]) == set(METRICS) and all(math.isfinite(v) for v in recipe["before"].values())
    # same deterministic policy on the same seeds: the same episodes, whichever way it is evaluated
    for name in ("SR", "CR", "AS", "RC"):
        assert held_out[name] == pytest.approx(recipe["after"][name])
    assert set(data["references"]) == {"constant:FASTER", "random", "idm"}
    for ref in data["references"].values():
        assert ref["seeds"] == [1_000_000, 1_000_001]
        _check_metrics({**ref, "return": 0.0}, 2)


def test_quickstart_quick_records_its_context(quickstart_quick):
    context = quickstart_quick[0]["context"]
    assert len(context["git"]["commit"]) == 40
    assert context["machine"]["cpu_count"] >= 1
    assert len(context["load_at_start"]["loadavg"]) == 3
    assert context["date"].endswith("UTC")


def test_quickstart_markdown_prints_the_table(quickstart_quick):
    _, out, stdout = quickstart_quick
    assert "| quickstart, seed 0 |" in stdout
    run = subprocess.run([sys.executable, str(BENCHMARKS / "quickstart.py"), "--markdown", "--out", str(out)],
                         capture_output=True, text=True, timeout=120, cwd=out.parent)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("| policy | SR (2 ep.) | CR (2 ep.)")
    assert any(line.startswith("| best constant (constant:FASTER) |") for line in lines)
    assert any(line.startswith("| idm (IDM/MOBIL driver) |") for line in lines)
    assert "Time per run" in run.stdout


def test_the_readme_and_docs_quote_the_measured_quickstart(monkeypatch):
    """The headline numbers are the ones in benchmarks/results/quickstart.json (what --markdown prints)."""
    import importlib

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    quickstart = importlib.import_module("quickstart")
    data = json.loads((BENCHMARKS / "results" / "quickstart.json").read_text())
    assert data["quick"] is False and data["seeds"] == [0, 1, 2]
    assert all(run["held_out"]["episodes"] == 100 and run["total_frames"] == 6000 for run in data["runs"])
    performance = (BENCHMARKS.parent / "docs" / "performance.md").read_text()
    assert quickstart.markdown(data) in performance
    readme = " ".join((BENCHMARKS.parent / "README.md").read_text().split())
    for name in ("SR", "CR"):
        assert quickstart._spread([run["held_out"][name] for run in data["runs"]]) in readme, name
    for name in ("constant:FASTER", "idm"):
        assert f"{data['references'][name]['SR']:.2f}" in readme
