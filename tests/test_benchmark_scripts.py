"""Every script under benchmarks/ runs its ``--quick`` mode (tiny sizes, the same code path), so a refactor of the
zoo that breaks a benchmark fails here instead of when someone next measures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TESTS = Path(__file__).resolve().parent

#: script -> (the measurements its JSON holds at the top level, a module it needs that the test extra lacks)
QUICK_SCRIPTS: dict[str, tuple[set[str], str | None]] = {
    "dqn_highway_sb3.py": ({"observation_parity", "bare_env", "runs"}, "stable_baselines3"),
    "dual_pathway_throughput.py": ({"runs", "async_over_sync", "async_over_static", "heavy_async_over_sync",
                                    "heavy_async_over_static"}, None),
    "env_profile.py": ({"runs"}, None),
    "env_workers.py": ({"runs"}, "ray"),
    "gate_roi.py": ({"results"}, None),
    "mlflow_sqlite_writers.py": ({"runs"}, None),
    "pipeline_throughput.py": ({"runs"}, None),
    "policy_latency.py": ({"policy", "reward_model"}, None),
    "ray_grid.py": ({"runs", "ray_over_workers"}, "ray"),
    "reward_model_quality.py": ({"results"}, None),
    "reward_throughput.py": ({"throughput", "cache", "fit"}, None),
    "reward_window_saturation.py": ({"rows"}, None),
    "sac_sb3_peer.py": ({"runs"}, "stable_baselines3"),
}


def numbers(value: Any) -> list[float]:
    """Every number (bools excepted) in a JSON value, nested lists and objects included (``null``: undefined, e.g.
    an AUROC of frames without a collision ahead, is none)."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def results_state() -> dict[str, int]:
    results = BENCHMARKS / "results"
    return {p.name: p.stat().st_mtime_ns for p in results.iterdir()} if results.is_dir() else {}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(QUICK_SCRIPTS))
def test_every_benchmark_script_runs_quick(script, tmp_path):
    keys, needs = QUICK_SCRIPTS[script]
    if needs:
        pytest.importorskip(needs, reason=f"{script} compares with {needs} (pip install drive-zoo[bench])")
    out = tmp_path / "out" / f"{Path(script).stem}.json"
    before = results_state()
    run = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, env=os.environ.copy())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads(out.read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN / Infinity
    assert result["benchmark"] == Path(script).stem
    assert keys <= set(result), f"missing {keys - set(result)}"
    measured = numbers({k: result[k] for k in keys})
    assert measured, "no numbers measured"
    assert all(math.isfinite(n) for n in measured), {k: result[k] for k in keys}
    assert results_state() == before, "--quick wrote into benchmarks/results/"


def test_every_benchmark_script_has_a_quick_test():
    """A new benchmark script is listed above, or another test runs its ``--quick`` (reference_policies.py's:
    tests/test_reference_policies.py)."""
    scripts = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "common.py")
    others = [p.read_text() for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name]
    untested = [s for s in scripts if s not in QUICK_SCRIPTS
                and not any(s in text and '"--quick"' in text for text in others)]
    assert not untested, f"benchmark scripts whose --quick no test runs: {untested}"
    assert set(QUICK_SCRIPTS) <= set(scripts), f"listed but gone: {set(QUICK_SCRIPTS) - set(scripts)}"


def test_benchmark_json_is_strict(tmp_path):
    common = _common()
    common.write_json(tmp_path / "a" / "r.json", {"auroc": float("nan"), "rows": [(1.5, float("inf"))],
                                                  "out": tmp_path})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"auroc": None, "rows": [[1.5, None]],
                                                                   "out": str(tmp_path)}


def _common():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import common
    finally:
        sys.path.remove(str(BENCHMARKS))
    return common


def test_quick_sets_its_sizes_and_out_defaults_to_results():
    RESULTS, BenchmarkParser = _common().RESULTS, _common().BenchmarkParser
    parser = BenchmarkParser("demo", "Demo benchmark.\n\nMore text.", quick={"frames": 4, "scenarios": ["a"]})
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--scenarios", nargs="+", default=["a", "b"])
    full = parser.parse_args(["--frames", "7"])
    assert (full.frames, full.scenarios, full.out, full.quick) == (7, ["a", "b"], RESULTS / "demo.json", False)
    quick = parser.parse_args(["--quick", "--frames", "7", "--out", "x.json"])
    assert (quick.frames, quick.scenarios, quick.out) == (4, ["a"], Path("x.json"))
    assert parser.description == "Demo benchmark."
    assert "--frames 4, --scenarios a" in " ".join(parser.format_help().split())  # the terminal may wrap it
