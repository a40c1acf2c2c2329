"""The benchmark's statistics, results file and report: hand-computable statistics, a page rebuilt from a
results file alone (no MLflow), claims that follow the intervals, and the grid's hooks for reference policies
and evaluation conditions (faked: their evaluators live on other branches)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from zoo.benchmark import stats
from zoo.benchmark.results_file import GridResults, read_results, save_results
from zoo.cli import main
from zoo.errors import ZooError

METRICS = ("AS", "RC", "TD", "CS", "SR", "collisions", "return", "length")


# --- statistics ---------------------------------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    assert stats.iqm([1, 2, 3, 4]) == 2.5  # int(0.25 * 4) = 1 trimmed from each end
    assert stats.iqm([0, 1, 2, 3, 4, 5, 6, 100]) == 3.5
    assert stats.iqm([5.0, 7.0]) == 6.0  # under 4 runs nothing is trimmed
    assert np.allclose(stats.iqm(np.array([[1, 2, 3, 4], [0, 0, 0, 8]]), axis=1), [2.5, 0.0])


def test_bootstrap_of_a_constant_is_a_point_and_strata_are_never_mixed():
    point = stats.stratified_bootstrap([[0.7] * 5])
    assert point.low == point.value == point.high == pytest.approx(0.7)
    # each stratum constant: any resampling within strata keeps the pooled mean at 4/6 exactly
    pooled = stats.stratified_bootstrap([[0.0, 0.0], [1.0] * 4], np.mean)
    assert pooled.low == pytest.approx(4 / 6) and pooled.high == pytest.approx(4 / 6)
    spread = stats.stratified_bootstrap([[0.0, 1.0, 0.0, 1.0, 0.5]], np.mean)
    assert spread.low < 0.5 < spread.high
    assert stats.stratified_bootstrap([[0.0, 1.0, 0.5]], seed=3) == stats.stratified_bootstrap([[0.0, 1.0, 0.5]],
                                                                                              seed=3)
    with pytest.raises(ValueError, match="at least one score"):
        stats.stratified_bootstrap([[1.0], []])


def test_probability_of_improvement_and_comparisons():
    assert stats.probability_of_improvement([3, 4, 5], [0, 1, 2]) == 1.0
    assert stats.probability_of_improvement([0, 1, 2], [3, 4, 5]) == 0.0
    assert stats.probability_of_improvement([1, 2, 3], [1, 2, 3]) == 0.5
    assert stats.probability_of_improvement([1, 1], [1, 1]) == 0.5
    separated = stats.compare([0.9, 1.0, 0.95], [0.1, 0.0, 0.05])
    assert separated.resolved and separated.improvement == stats.Interval(1.0, 1.0, 1.0)
    same = stats.compare([0.2, 0.6, 0.9, 0.4], [0.2, 0.6, 0.9, 0.4])
    assert not same.resolved and same.difference.value == 0.0 and same.improvement.value == 0.5
    assert same.improvement.low < 0.5 < same.improvement.high


def test_power_estimate_from_the_measured_spread():
    # no spread between seeds: n·E = 16 either way (hand computation in stats.required_budget's docstring)
    assert stats.required_budget([[1, 1], [1, 0]], [[0, 0], [0, 1]]) == stats.Power(seeds=8, episodes=8)
    assert stats.required_budget([[1, 0]], [[0, 1]]) == stats.Power(None, None)  # no difference observed
    # seeds that disagree completely (one succeeds always, one never): more episodes cannot help
    power = stats.required_budget([[1] * 10, [0] * 10], [[0.5] * 10, [0.4] * 10])
    assert power.episodes is None and power.seeds > 100


def test_performance_profile_counts_runs_above_each_threshold():
    fraction, low, high = stats.performance_profile([[0.2, 0.8], [0.5]], np.array([0.0, 0.5, 0.9]))
    assert list(fraction) == pytest.approx([1.0, 1 / 3, 0.0])
    assert (low <= fraction).all() and (fraction <= high).all() and high[2] == 0.0


# --- a synthetic grid ---------------------------------------------------------------------------------------


def _episodes(rng: np.random.Generator, success: float, n: int) -> dict[str, list[float]]:
    sr = (rng.random(n) < success).astype(int)
    collisions = 1 - sr
    speed = np.round(60 + 10 * rng.random(n), 2)
    return {"AS": speed.tolist(), "RC": np.where(sr, 1.05, 0.4).tolist(), "TD": np.where(sr, 350.0, 120.0).tolist(),
            "CS": np.where(collisions, speed, 0.0).tolist(), "SR": sr.tolist(), "collisions": collisions.tolist(),
            "return": np.round(rng.random(n), 4).tolist(), "length": [40] * n}


def synthetic_results(seeds: int = 5, episodes: int = 20) -> GridResults:
    """sparse never succeeds, VLM-RL and DriveVLM-RL draw from the same success rate, engineered in between."""
    success = {"sparse": 0.0, "engineered": 0.6, "vlm-rl": 0.8, "drivevlm-rl": 0.8}
    grid = {"kind": "grid", "suite": "paper", "scenarios": ["merge"], "methods": list(success), "steps": 2000,
            "action": "discrete", "backbone": "drive-clip-bev-tiny", "conditions": ["default", "unseen"],
            "references": ["constant:SLOWER", "random"], "eval_episodes": episodes,
            "command": "zoo benchmark --suite paper --scenarios merge --steps 2000", "note": "synthetic",
            "written": "2026-12-05T09:00:00+00:00"}
    records = []
    for condition in grid["conditions"]:
        for method, rate in success.items():
            for seed in range(seeds):
                rng = np.random.default_rng([seed, condition == "unseen"])  # VLM-RL's draws = DriveVLM-RL's
                record = {"kind": "run", "method": method, "scenario": "merge", "condition": condition, "seed": seed,
                          "steps": 2000, "action": "discrete", "backbone": "drive-clip-bev-tiny",
                          "reward_models": {"drive-clip-bev-tiny": "ab" * 32} if "vlm" in method else {},
                          "run_id": f"{method}-{seed}", "git_commit": "0522c1e", "machine": "Linux, 2 CPU cores",
                          "date": f"2026-12-05T0{seed}:00:00+00:00", "eval_seed": 1_000_000,
                          "episodes": _episodes(rng, rate, episodes)}
                if condition == "default":
                    record["curve"] = {"steps": [0, 1000, 2000], "SR": [0.0, rate / 2, rate], "CR": [1.0, 0.5, 1 - rate],
                                       "return": [0.0, 1.0, 2.0]}
                records.append(record)
        for policy, rate in (("constant:SLOWER", 0.1), ("random", 0.0)):
            records.append({"kind": "reference", "policy": policy, "scenario": "merge", "condition": condition,
                            "seed": 0, "eval_seed": 1_000_000, "machine": "Linux, 2 CPU cores", "git_commit": "0522c1e",
                            "date": "2026-12-05T09:00:00+00:00",
                            "episodes": _episodes(np.random.default_rng(7), rate, episodes)})
    return GridResults(grid, records)


@pytest.mark.parametrize("name", ["grid.jsonl", "grid.jsonl.gz"])
def test_results_file_round_trip_and_refusals(tmp_path, name):
    results = synthetic_results(seeds=2, episodes=3)
    path = save_results(tmp_path / name, results)
    back = read_results(path)
    assert back.grid == {**results.grid, "schema": 1} and back.records == results.records
    assert list(back.runs("merge", "default")) == ["sparse", "engineered", "vlm-rl", "drivevlm-rl"]
    assert set(back.references("merge", "unseen")) == {"constant:SLOWER", "random"}
    with pytest.raises(ZooError, match="no results file at"):
        read_results(tmp_path / "missing.jsonl")
    (tmp_path / "other.jsonl").write_text('{"kind": "run"}\n')
    with pytest.raises(ZooError, match="not a benchmark results file"):
        read_results(tmp_path / "other.jsonl")


def test_a_full_grid_file_stays_small(tmp_path):
    """10 methods x 5 seeds x 50 episodes x 2 conditions: tens of kB gzipped."""
    results = synthetic_results(seeds=5, episodes=50)  # 4 methods
    runs = [r for r in results.records if r["kind"] == "run"]
    results.records = [{**r, "method": f"{r['method']}-{copy}"} for copy in range(3) for r in runs][:10 * 5 * 2]
    assert len(results.records) == 100
    size = save_results(tmp_path / "grid.jsonl.gz", results).stat().st_size
    assert size < 50_000, size


def test_report_only_rebuilds_the_page_from_the_results_file_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = save_results(tmp_path / "benchmarks" / "results" / "paper-merge.jsonl.gz", synthetic_results())
    out = tmp_path / "site" / "results.md"
    assert main(["benchmark", "--report-only", "--results", str(data), "--out", str(out)]) == 0
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
    text = out.read_text()
    assert "> synthetic" in text and "zoo benchmark --suite paper --scenarios merge --steps 2000" in text
    for heading in ("## merge, default condition", "## merge, unseen condition"):
        assert heading in text
    assert "| VLM-RL | 5 | " in text and "| `constant:SLOWER` | 20 | " in text and "| TIRL (sparse) | 5 | 0.00 ± 0.00" \
        not in text  # the mean ± std table starts with AS
    assert "`drive-clip-bev-tiny` `abababababab`" in text and "`0522c1e`" in text
    for stem in ("merge_default", "merge_unseen"):
        for kind in ("intervals", "profiles", "collision_speed"):
            png = out.parent / "results" / f"{stem}_{kind}.png"
            assert png.read_bytes()[:4] == b"\x89PNG" and f"results/{png.name}" in text
    assert (out.parent / "results" / "merge_default_curves.png").is_file()
    assert not (out.parent / "results" / "merge_unseen_curves.png").exists()  # curves are trained on default

    # claims follow the intervals: VLM-RL against sparse is resolved, DriveVLM-RL against VLM-RL (same draws) not
    claims = text.split("## What the intervals support", 1)[1].split("## merge", 1)[0]
    assert ("VLM-RL against TIRL (sparse), success rate: the 95 % interval of the IQM difference" in claims
            and "excludes zero: VLM-RL succeeds more often than TIRL (sparse)" in claims)
    assert "excludes zero: VLM-RL collides less often than TIRL (sparse)" in claims
    identical = [line for line in claims.splitlines() if "DriveVLM-RL against VLM-RL" in line]
    assert len(identical) == 4 and all("includes zero: this grid does not tell them apart" in s for s in identical)
    assert all("no number of seeds" in s for s in identical)
    assert "better" not in claims and "6 of 12 comparisons show a difference (95 % interval" in claims

    # the reading survives a rebuild
    out.write_text(text.replace("*To be written", "Sparse learns nothing. *To be written"))
    assert main(["benchmark", "--report-only", "--results", str(data), "--out", str(out)]) == 0
    assert "Sparse learns nothing." in out.read_text()


def test_no_ordering_is_claimed_from_fewer_than_five_runs():
    from zoo.benchmark.report import claim, comparisons

    runs = synthetic_results(seeds=3, episodes=10).runs("merge", "default")
    found = {(x, y, s): c for x, y, s, c in comparisons(runs)}
    sparse = found["vlm-rl", "sparse", "SR"]
    assert sparse.resolved  # the interval excludes zero, but 3 runs are too few to trust it
    sentence = claim("vlm-rl", "sparse", "SR", sparse, runs)
    assert "fewer than the 5 an interval over runs needs: no ordering is claimed" in sentence
    assert "succeeds more often" not in sentence
    assert "would need about 5 training seeds per method at 10 held-out episodes per run" in sentence


def test_by_default_the_report_goes_to_the_run_folder_not_docs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_results(tmp_path / "runs" / "benchmark-paper" / "results.jsonl.gz", synthetic_results(seeds=2, episodes=4))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("published")
    assert main(["benchmark", "--report-only"]) == 0
    page = (tmp_path / "runs" / "benchmark-paper" / "report" / "results.md").read_text()
    assert "None of the 12 comparisons shows a difference at this budget (2000 env steps per run)" in page  # 2 seeds
    assert (tmp_path / "docs" / "results.md").read_text() == "published"
    assert not (tmp_path / "mlflow.db").exists()


def test_cli_refusals_are_one_line_with_the_valid_choices(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = ["benchmark", "--steps", "100", "--methods", "sparse"]
    assert main([*grid, "--references", "constant:FLY"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "'constant:FLY'" in err and "constant:SLOWER" in err and "none" in err
    assert not (tmp_path / "mlflow.db").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", "--report-only"])  # no results file and no --steps
    assert exit_.value.code == 2 and "--steps is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*grid, "--conditions", "rainy"])
    assert not (tmp_path / "mlflow.db").exists()


def test_a_committed_results_file_extends_without_training_its_cells_again(tmp_path, monkeypatch, capsys):
    """A fresh clone has the results file but not the MLflow store the grid ran in: the file's whole cells are
    skipped and kept, only the cells it lacks train, and a grid that would drop some of its runs is refused."""
    from zoo.benchmark import grid as grid_module

    monkeypatch.chdir(tmp_path)
    data = save_results(tmp_path / "grid.jsonl.gz", synthetic_results(seeds=5, episodes=4))
    def records() -> list[str]:
        return sorted(json.dumps(r, sort_keys=True) for r in read_results(data).records)

    before = records()
    trained = []

    def fit(jobs, *args):
        trained.extend(job.name for job in jobs)
        yield from ((job, None, "not trained in this test", None) for job in jobs)

    monkeypatch.setattr(grid_module, "_fit", fit)
    command = ["benchmark", "--suite", "paper", "--scenarios", "merge", "--methods", "sparse", "engineered",
               "vlm-rl", "drivevlm-rl", "--action", "discrete", "--steps", "2000", "--eval-episodes", "4",
               "--conditions", "default", "unseen", "--references", "constant:SLOWER", "random",
               "--results", str(data), "--out", str(tmp_path / "page.md")]
    assert main([*command, "--seeds", "5"]) == 0
    assert trained == [] and "ran 0, skipped 20 finished, failed 0" in capsys.readouterr().err
    assert records() == before  # runs and references kept, nothing evaluated again
    assert "| VLM-RL | 5 | " in (tmp_path / "page.md").read_text()

    assert main([*command, "--seeds", "6"]) == 0  # a sixth seed: only its cells train
    assert sorted(trained) == sorted(f"{m}/merge/seed5" for m in ("sparse", "engineered", "vlm-rl", "drivevlm-rl"))
    assert records() == before  # the failed cells add nothing and take nothing away

    trained.clear()
    capsys.readouterr()
    assert main([*command[:-4], "--steps", "3000", "--seeds", "5", "--results", str(data)]) == 2
    err = capsys.readouterr().err
    assert "holds runs outside this grid" in err and "drivevlm-rl/merge/seed0 (2000 steps, discrete, sac, 4 episodes)" in err and "--results" in err
    assert trained == [] and records() == before


# --- the grid's hooks ---------------------------------------------------------------------------------------


def test_reference_rows_are_evaluated_once_per_scenario_and_condition(monkeypatch):
    from zoo.benchmark import grid as grid_module
    from zoo.evaluation import EvaluationResult

    calls = []

    def fake(policy, scenario, episodes, seed=0, condition="default"):
        calls.append((policy, scenario, episodes, seed, condition))
        rows = [dict.fromkeys(METRICS, 1.0) for _ in range(episodes)]
        return EvaluationResult(scenario, [1_000_000 + seed + i for i in range(episodes)], rows, {})

    monkeypatch.setattr("zoo.evaluation.reference.evaluate_reference", fake)
    no_experiment = SimpleNamespace(get_experiment_by_name=lambda name: None)
    grid = {**synthetic_results().grid, "scenarios": ["merge", "roundabout"], "eval_episodes": 3}
    results = grid_module.grid_results(no_experiment, grid)
    assert len(calls) == 2 * 2 * 2 and ("random", "roundabout", 3, 0, "unseen") in calls
    record = results.references("roundabout", "unseen")["random"]
    assert record["kind"] == "reference" and record["seed"] == 0 and record["eval_seed"] == 1_000_000
    assert record["episodes"]["SR"] == [1, 1, 1] and record["episodes"]["AS"] == [1.0, 1.0, 1.0]

    calls.clear()  # a second pass keeps what the results file has (same episodes) and evaluates the rest
    kept = [r for r in results.records if r["scenario"] == "merge"]
    again = grid_module.grid_results(no_experiment, grid, kept)
    assert {c[1] for c in calls} == {"roundabout"} and len(again.records) == 8


def test_unseen_condition_is_passed_to_evaluate(monkeypatch):
    from zoo.benchmark import conditions

    run = SimpleNamespace(data=SimpleNamespace(tags={"zoo.benchmark.evaluated.unseen": "20"}))
    assert not conditions.needs_evaluation(run, "unseen", 20) and conditions.needs_evaluation(run, "unseen", 50)
    assert not conditions.needs_evaluation(run, "default", 50)  # zoo fit's own evaluation
    assert conditions.artifact_dir("unseen") == "evaluation-unseen" and conditions.metric_prefix("unseen") == \
        "eval_unseen/"

    import zoo.evaluation

    seen = {}
    def evaluate(agent, scenario, episodes, progress, condition="default"):
        seen.update(scenario=scenario, episodes=episodes, condition=condition)
        return "result"

    monkeypatch.setattr(zoo.evaluation, "evaluate", evaluate)
    assert conditions.evaluate_trained(object(), "merge", 3, "unseen") == "result"
    assert seen == {"scenario": "merge", "episodes": 3, "condition": "unseen"}


def test_weight_digest_is_the_sha256_of_the_shipped_safetensors():
    from zoo.benchmark import method_reward
    from zoo.benchmark.provenance import reward_model_digests
    from zoo.hub.pins import reward_model_names

    file = Path(__file__).parents[1] / "checkpoints" / "bev-detector-tiny.sim" / "model.safetensors"
    digests = reward_model_digests(method_reward("drivevlm-rl")[0])
    assert digests["bev-detector-tiny.sim"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert reward_model_names(method_reward("drivevlm-rl")[0]) == list(digests) == [
        "drive-clip-bev-tiny", "bev-detector-tiny.sim", "risk-describer-tiny"]
    assert reward_model_names(method_reward("sparse")[0]) == []
