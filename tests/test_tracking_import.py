"""``zoo tracking import``: a grid's runs from another machine's MLflow store, copied whole and only once."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric

from zoo.cli import main
from zoo.tracking.transfer import IMPORTED_FROM


@pytest.fixture()
def stores(tmp_path):
    source, target = f"sqlite:///{tmp_path / 'gpu-box.db'}", f"sqlite:///{tmp_path / 'here.db'}"
    client = mlflow.MlflowClient(source)
    experiment = client.create_experiment("benchmark-paper", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment, run_name="vlm-rl/highway-fast/seed0", tags={"zoo.benchmark.seed": "0"})
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=[Metric("train/episode_return", float(s), 1_000 + s, s * 64) for s in range(3)],
                     params=[mlflow.entities.Param("lr", "0.0003")])
    (tmp_path / "episodes.csv").write_text("CS,collisions\n12.5,1\n")
    client.log_artifact(run_id, str(tmp_path / "episodes.csv"), "evaluation")
    client.set_terminated(run_id, "FINISHED", end_time=run.info.start_time + 5_000)
    client.create_run(experiment, run_name="still-running")  # not ended: left alone
    return source, target, run_id


def test_import_copies_a_finished_run_whole_and_only_once(stores, tmp_path, capsys):
    source, target, run_id = stores
    argv = ["tracking", "import", source, "--experiment", "benchmark-paper", "--tracking-uri", target]
    assert main(argv) == 0
    assert "imported 1 runs" in capsys.readouterr().out
    client = mlflow.MlflowClient(target)
    (copy,) = client.search_runs([client.get_experiment_by_name("benchmark-paper").experiment_id])
    original = mlflow.MlflowClient(source).get_run(run_id)
    assert copy.info.run_name == "vlm-rl/highway-fast/seed0"
    assert (copy.info.status, copy.info.start_time, copy.info.end_time) == \
        (original.info.status, original.info.start_time, original.info.end_time)
    assert copy.data.params == {"lr": "0.0003"}
    assert copy.data.tags["zoo.benchmark.seed"] == "0"
    assert copy.data.tags[IMPORTED_FROM] == f"{source}#{run_id}"
    history = client.get_metric_history(copy.info.run_id, "train/episode_return")
    assert [(m.step, m.value, m.timestamp) for m in history] == [(s * 64, float(s), 1_000 + s) for s in range(3)]
    csv = client.download_artifacts(copy.info.run_id, "evaluation/episodes.csv", str(tmp_path / "dl"))
    assert Path(csv).read_text() == "CS,collisions\n12.5,1\n"

    assert main(argv) == 0  # again: nothing new
    assert "imported 0 runs" in capsys.readouterr().out
    assert len(client.search_runs([copy.info.experiment_id])) == 1


def test_import_of_an_unknown_experiment_names_the_ones_there(stores, capsys):
    source, target, _ = stores
    assert main(["tracking", "import", source, "--experiment", "benchmark-papr", "--tracking-uri", target]) == 2
    err = capsys.readouterr().err
    assert "benchmark-papr" in err and "benchmark-paper" in err
