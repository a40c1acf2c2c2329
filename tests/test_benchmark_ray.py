"""``zoo benchmark --backend ray``: cells as Ray tasks on a local Ray head (127.0.0.1, 2 CPUs) logging to one
MLflow server; a Ray worker killed mid-cell is retried without leaving a second or half-written run; Ctrl-C
cancels the cluster's cells. The head is started with ``ray start`` and stopped by PID (every process whose
command line names its temp folder), and nothing of it is left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from conftest import RAY_ENV, processes
from mlflow.entities import ViewType

from zoo.benchmark.grid import TAGS_OPTION
from zoo.benchmark.ray_cells import ATTEMPT_TAG, check_store_reachable
from zoo.benchmark.workers import Job
from zoo.cli import main
from zoo.errors import ZooError

GRID = ["benchmark", "--suite", "paper", "--scenarios", "highway-fast", "--seeds", "1", "--eval-episodes", "1",
        "--curve-episodes", "1", "--references", "none", "--backend", "ray"]
ENV = {**RAY_ENV, "COLUMNS": "300"}


def _cells(run) -> list[tuple[int, int]]:
    """``(pid, parent pid)`` of the ``zoo fit`` children of the attempt that made ``run`` (its attempt token is on
    their command line: no other grid's process on the machine matches)."""
    return [(pid, parent) for pid, parent, command in processes()
            if "zoo.cli fit" in command and run.data.tags[ATTEMPT_TAG] in command]


def _start_grid(arguments: list[str], env: dict[str, str], out: Path) -> subprocess.Popen:
    with open(out, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "zoo.cli", *arguments], stdout=log, stderr=subprocess.STDOUT,
                                env=env)


def _wait_for_running_runs(client: mlflow.MlflowClient, count: int, parent: subprocess.Popen, out: Path,
                           timeout: float = 300) -> list:
    """The grid's RUNNING runs, once there are ``count`` (two `zoo fit` imports on a loaded 2-core machine took
    over 120 s)."""
    deadline = time.monotonic() + timeout
    while True:
        experiment = client.get_experiment_by_name("benchmark-paper")
        runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'") if experiment else []
        if len(runs) >= count:
            return runs
        assert parent.poll() is None, out.read_text()[-3000:]
        assert time.monotonic() < deadline, "the cells did not start training: " + out.read_text()[-3000:]
        time.sleep(0.2)


@pytest.mark.slow
def test_a_ray_worker_killed_mid_cell_is_retried_and_the_grid_ends_with_one_finished_run_per_cell(
        ray_head, own_mlflow_server):
    env = {**ENV, "MLFLOW_TRACKING_URI": own_mlflow_server.uri}  # one tracking server for every node
    client = mlflow.MlflowClient(own_mlflow_server.uri)
    methods = ["sparse", "engineered"]
    # 400 steps: a cell trains for seconds after its run exists, time to kill its worker mid-cell
    grid = [*GRID, "--address", ray_head, "--steps", "400", "--curve-every", "400", "--methods", *methods]
    out = Path("grid.log")
    parent = _start_grid(grid, env, out)

    victim = _wait_for_running_runs(client, 1, parent, out)[0]
    name = victim.data.tags["mlflow.runName"]
    (child, worker), = _cells(victim)
    assert Path(f"/proc/{worker}/cmdline").read_bytes().startswith(b"ray::"), "the cell's parent is no Ray worker"
    os.kill(worker, signal.SIGKILL)
    assert parent.wait(timeout=600) == 0, out.read_text()[-3000:]
    text = " ".join(out.read_text().split())

    assert client.get_run(victim.info.run_id).info.lifecycle_stage == "deleted"  # killed mid-cell: not FINISHED
    assert f"{name}: an attempt's worker died; its unfinished run {victim.info.run_id} was deleted" in text
    assert "ran 2, skipped 0 finished, failed 0" in text
    experiment_id = victim.info.experiment_id
    runs = client.search_runs([experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(f"{m}/highway-fast/seed0" for m in methods)
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["zoo.benchmark.complete"] == "true"
        assert "eval/SR" in run.data.metrics
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [victim.info.run_id]
    assert not Path(f"/proc/{child}").exists(), "the killed worker's `zoo fit` child lives on"

    rerun = subprocess.run([sys.executable, "-m", "zoo.cli", *grid], capture_output=True, text=True, env=env,
                           timeout=600)
    assert rerun.returncode == 0 and "ran 0, skipped 2 finished, failed 0" in rerun.stderr, rerun.stderr[-3000:]


@pytest.mark.slow
def test_ctrl_c_cancels_the_clusters_cells(ray_head):
    # a budget the cells cannot finish; 3 cells on 2 CPUs: one waits, and must never start
    methods = ["sparse", "engineered", "vlm-rl"]
    grid = [*GRID, "--address", ray_head, "--steps", "100000", "--curve-every", "100000", "--methods", *methods]
    out = Path("grid.log")
    parent = _start_grid(grid, ENV, out)
    client = mlflow.MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    running = _wait_for_running_runs(client, 2, parent, out)
    children = [pid for run in running for pid, _ in _cells(run)]
    assert len(children) == 2

    parent.send_signal(signal.SIGINT)
    assert parent.wait(timeout=240) == 130, out.read_text()[-3000:]
    assert "interrupted" in out.read_text()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), "a cell's `zoo fit` lives on"
    runs = client.search_runs([running[0].info.experiment_id])
    assert len(runs) == 2  # the waiting cell never started
    assert {r.info.status for r in runs} <= {"FAILED", "KILLED"}
    assert not any("zoo.benchmark.complete" in r.data.tags for r in runs)


def test_an_attempt_tag_goes_on_the_run_through_the_fit_arguments():
    job = Job("sparse/highway-fast/seed0", ["fit", f'{TAGS_OPTION}={{"zoo.benchmark.method": "sparse"}}', "--x=1"],
              {"zoo.benchmark.method": "sparse"})
    tagged = job.with_tag(ATTEMPT_TAG, "abc")
    assert tagged.tags == {"zoo.benchmark.method": "sparse", ATTEMPT_TAG: "abc"}
    assert json.loads(tagged.arguments[1].split("=", 1)[1]) == tagged.tags
    assert tagged.arguments[::2] == job.arguments[::2] and job.tags == {"zoo.benchmark.method": "sparse"}


def test_a_store_on_this_machine_is_refused_for_a_cluster_of_several():
    here = {socket.gethostname()}
    check_store_reachable("sqlite:////tmp/mlflow.db", here)
    check_store_reachable("http://10.0.0.1:5000", here | {"node-2"})
    with pytest.raises(ZooError, match=r"sqlite:////tmp/mlflow.db is a file on this machine; .* nodes node-2 "):
        check_store_reachable("sqlite:////tmp/mlflow.db", here | {"node-2"})
    with pytest.raises(ZooError, match="set MLFLOW_TRACKING_URI to a tracking server"):
        check_store_reachable("/shared/mlruns", here | {"node-2"})


@pytest.mark.parametrize(("extra", "message"), [
    (["--address", "auto"], "--address and --cell-gpus need --backend ray, got --backend local"),
    (["--backend", "ray", "--workers", "2"], "--workers 2 is the local backend's"),
    (["--backend", "ray", "--cell-gpus", "-1"], "--cell-gpus must be >= 0, got -1"),
    (["--backend", "ray", "--device", "gpu"], "--device gpu with --backend ray needs --cell-gpus > 0"),
])
def test_ray_options_are_checked_before_anything_runs(extra, message, capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--steps", "64", "--references", "none", *extra])
    assert message in " ".join(capsys.readouterr().err.split())
    assert not Path("mlflow.db").exists()
