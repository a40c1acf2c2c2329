"""Reference policies: the presets' tasks are not solved by a constant or random meta-action (on the committed
100-episode table of benchmarks/reference_policies.py, which the code reproduces episode for episode), the IDM/MOBIL
driver completes some, and ``zoo evaluate --policy`` runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo.cli import main
from zoo.envs.presets import SCENARIOS
from zoo.errors import ZooError
from zoo.evaluation import EVAL_SEED_OFFSET
from zoo.evaluation.reference import reference_policies

#: the table docs/envs.md shows: per cell (scenario, condition, policy, preset version), the per-episode metrics of
#: 20 or 100 held-out episodes, written by ``python benchmarks/reference_policies.py``
TABLE_FILE = Path(__file__).parents[1] / "benchmarks" / "results" / "reference_policies.jsonl"
META_ACTION_SCENARIOS = [n for n in zoo.list_scenarios() if "discrete" in SCENARIOS.get(n).action_modes]


def _current_cells() -> dict[tuple[str, str, str], dict]:
    """The table's cell per (scenario, condition, policy) at the scenario's current preset version: the one with the
    most episodes, the later line on a tie."""
    cells: dict[tuple[str, str, str], dict] = {}
    for line in TABLE_FILE.read_text().splitlines():
        cell = json.loads(line)
        if cell["scenario"] not in SCENARIOS or cell["preset_version"] != SCENARIOS.get(cell["scenario"]).version:
            continue
        key = (cell["scenario"], cell["condition"], cell["policy"])
        if key not in cells or cell["episodes"] >= cells[key]["episodes"]:
            cells[key] = cell
    return cells


CELLS = _current_cells()


def _table_cell(scenario: str, policy: str) -> dict:
    cell = CELLS.get((scenario, "default", policy))
    assert cell is not None, (f"{TABLE_FILE.name} has no {policy} cell for {scenario} v{SCENARIOS.get(scenario).version}"
                              f": python benchmarks/reference_policies.py --scenarios {scenario} --conditions default")
    return cell


def _non_learning_cases():
    return [pytest.param(scenario, policy, id=f"{scenario}-{policy}") for scenario in META_ACTION_SCENARIOS
            for policy in reference_policies(scenario) if policy != "idm"]


@pytest.mark.parametrize(("scenario", "policy"), _non_learning_cases())
def test_no_constant_or_random_policy_solves_a_preset(scenario, policy):
    """On the committed table, at every preset's current version: SR <= 0.2 over its held-out episodes (100 for most
    cells, 20 for the slow highway preset). That the table is what the code measures now is the next test's job."""
    cell = _table_cell(scenario, policy)
    assert cell["episodes"] >= 20 and cell["seeds"] == [EVAL_SEED_OFFSET + i for i in range(cell["episodes"])]
    assert cell["summary"]["SR"][0] <= 0.2, cell["summary"]
    assert cell["summary"]["SR"][0] == sum(e["SR"] for e in cell["per_episode"]) / cell["episodes"]


@pytest.mark.parametrize("scenario", META_ACTION_SCENARIOS)
@pytest.mark.parametrize("policy", ["random", "idm"])
def test_the_committed_table_is_what_the_code_measures_now(scenario, policy):
    """The first held-out episode of the random policy (seeded by the episode) and of the IDM/MOBIL driver, run now,
    gives the table's metrics: a preset, traffic or driver change without a version bump (and a new table) fails."""
    cell = _table_cell(scenario, policy)
    episode = zoo.evaluate_reference(policy, scenario, episodes=1).episodes[0]
    assert {k: round(v, 3) for k, v in episode.items()} == pytest.approx(cell["per_episode"][0], abs=2e-3)


def test_the_idm_driver_completes_highway_fast_episodes():
    result = zoo.evaluate_reference("idm", "highway-fast", episodes=3)
    assert result.summary["SR"][0] > 0
    assert {"AS", "RC", "TD", "CS", "SR", "collisions", "return", "length"} <= set(result.episodes[0])


def test_the_idm_driver_gives_way_at_the_intersection():
    """Held-out episode 1: setting off at once (FASTER) meets a platoon; the IDM driver waits for the gap and arrives."""
    assert zoo.evaluate_reference("constant:FASTER", "intersection", episodes=1, seed=1).episodes[0]["collisions"] == 1
    result = zoo.evaluate_reference("idm", "intersection", episodes=1, seed=1)
    assert result.episodes[0]["SR"] == 1, result.episodes


def test_random_is_seeded_by_the_episode():
    first = zoo.evaluate_reference("random", "merge", episodes=2)
    again = zoo.evaluate_reference("random", "merge", episodes=1, seed=1)
    assert again.episodes[0] == first.episodes[1]


def test_bad_policy_name_lists_the_choices():
    with pytest.raises(ZooError) as err:
        zoo.reference_policy("constant:BRAKE")
    for name in ("'constant:BRAKE'", "constant:SLOWER", "random", "idm"):
        assert name in str(err.value)


def test_lane_changes_are_refused_where_the_scenario_has_none():
    with pytest.raises(ZooError, match="constant:LANE_LEFT.*intersection.*SLOWER, IDLE, FASTER"):
        zoo.evaluate_reference("constant:LANE_LEFT", "intersection", episodes=1)


def test_cli_evaluates_a_reference_policy(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["evaluate", "--policy", "constant:SLOWER", "--scenario", "highway-fast", "--episodes", "2",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    assert "SR" in capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(result["episodes"]) == 2 and result["summary"]["SR"]["mean"] == 0.0


@pytest.mark.parametrize(("argv", "names"), [
    (["--policy", "constant:BRAKE"], ["'constant:BRAKE'", "constant:SLOWER", "idm"]),
    (["--policy", "idm", "--ckpt", "x.ckpt"], ["exactly one of --ckpt", "--policy", "both"]),
    ([], ["exactly one of --ckpt", "--policy", "neither"]),
    (["--policy", "idm", "--condition", "rainy"], ["'rainy'", "default", "unseen"]),
], ids=["bad-name", "both", "neither", "bad-condition"])
def test_cli_refuses_in_one_line(argv, names, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["evaluate", *argv])
    stderr = capsys.readouterr().err
    assert code == 2
    message = " ".join(stderr.split())  # one message; the terminal may wrap it
    assert message.startswith("error:") and message.count("error:") == 1, stderr
    for name in names:
        assert name in message


def test_quick_measurement_script_writes_its_table(tmp_path):
    script = Path(__file__).parents[1] / "benchmarks" / "reference_policies.py"
    out = tmp_path / "cells.jsonl"
    run = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True, text=True,
                         timeout=300, cwd=script.parent)
    assert run.returncode == 0, run.stderr
    cells = [json.loads(line) for line in out.read_text().splitlines()]
    assert {c["policy"] for c in cells} == {"constant:SLOWER", "idm"}
    assert all(set(c["summary"]) == {"SR", "CR", "RC", "AS"} for c in cells)
    assert "SR [95% CI]" in run.stdout


def test_intersection_traffic_script_prints_tuning_results(tmp_path):
    """benchmarks/intersection_traffic.py: reference policies with config overrides, on the tuning seeds."""
    script = Path(__file__).parents[1] / "benchmarks" / "intersection_traffic.py"
    run = subprocess.run([sys.executable, str(script), "--config", '{"through_traffic_headway_range": [3, 6]}',
                          "--policies", "constant:SLOWER", "--episodes", "1"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "constant:SLOWER: SR 0.00 CR 0.00 neither 1.00 (1 tuning episodes" in run.stdout


def test_the_give_way_driver_predicts_a_car_entering_the_junction_along_its_path():
    """highway-env drops a lane from a car's route a few metres before the lane's end, while the car is still on it:
    the prediction continues from the car's lane, not tens of metres down the rest of its route."""
    import numpy as np

    from zoo.evaluation.reference import _route_trajectory

    env = zoo.make_env("intersection", action="discrete", obs="kinematics",
                       config={"through_traffic_headway_range": [3.0, 6.0]})
    try:
        env.reset()
        road = env.base_env._env.unwrapped.road
        lane = road.network.get_lane(("o1", "ir1", 0))
        car = next(v for v in road.vehicles if v.lane_index[:2] == ("o1", "ir1"))
        car.position = lane.position(lane.length - 1.0, 0.0)
        car.route = [r for r in car.route if r[:2] != ("o1", "ir1")]  # as highway-env leaves it there
        positions, _ = _route_trajectory(car, np.array([1.0]), 0.0)
        assert np.linalg.norm(positions[0] - car.position) == pytest.approx(car.speed, rel=0.05)
    finally:
        env.close()
