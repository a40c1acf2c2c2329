"""Training against a real MLflow tracking server (SQLite backend) over HTTP: runs, metrics, artifacts and
registered models go through the server; an unreachable server stops ``zoo fit`` before training; a server
lost mid-run loses nothing (journaled, replayed when it is back, or sent later by ``zoo tracking sync``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import lightning as L
import mlflow
import pytest
from conftest import free_port
from lightning.pytorch.callbacks import ModelCheckpoint
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils

from zoo.cli import main
from zoo.tracking import ZooMLFlowLogger
from zoo.tracking.pending import find_journals, pending_calls


@pytest.fixture(autouse=True)
def _restore_mlflow_uris(monkeypatch):
    """The logger points MLflow's fluent API at its server (as Lightning does): undone after each test."""
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)


def _artifacts(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return out


def test_zoo_fit_and_register_through_the_server(mlflow_server, tiny_recipe, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    experiment = f"tiny-{uuid.uuid4().hex[:8]}"  # the server is shared by the session
    assert main(["fit", "--config", str(tiny_recipe),
                 "--trainer.logger.init_args.experiment_name", experiment]) == 0
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()  # all over HTTP

    client = mlflow.MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/reward")] == [16, 32, 48, 64]
    assert run.data.params["total_frames"] == "64"
    files = _artifacts(client, run.info.run_id)
    assert "recipe.yaml" in files and "last/last.ckpt" in files
    assert not find_journals(tmp_path / "runs")  # nothing pending

    name = f"dqn-{uuid.uuid4().hex[:8]}"
    assert main(["register", f"runs:/{run.info.run_id}", "--as", name, "--alias", "champion"]) == 0
    assert f"registered {name} version 1 (alias @champion)" in capsys.readouterr().out
    version = client.get_model_version_by_alias(name, "champion")
    assert version.version == "1" and version.tags["zoo.kind"] == "policy"


def test_unreachable_server_stops_zoo_fit_before_training(tiny_recipe, monkeypatch, tmp_path, capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["fit", "--config", str(tiny_recipe)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"cannot reach the MLflow tracking server at {uri}" in lines[0], err
    assert not (tmp_path / "runs").exists()  # no training, no checkpoint


class Outage(L.Callback):
    """Stops the server after some updates and starts it again after others; notes the journal's size."""

    def __init__(self, server, stop_at: tuple[int, ...], start_at: tuple[int, ...]) -> None:
        self.server, self.stop_at, self.start_at = server, stop_at, start_at
        self.pending: dict[int, int] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.pending[batch_idx] = pending_calls(trainer.logger.pending_dir())
        if batch_idx in self.stop_at:
            self.server.stop()
        if batch_idx in self.start_at:
            self.server.start()


@pytest.mark.slow  # about a minute: the server is stopped twice and started twice
def test_training_outlives_a_server_outage_and_loses_nothing(own_mlflow_server, make_agent, tmp_path, capsys):
    server = own_mlflow_server
    agent = make_agent("dqn", total_frames=128, frames_per_batch=16, learning_starts=16)
    logger = ZooMLFlowLogger("outage", tracking_uri=server.uri, retry_every=0)
    # down after update 1, back after update 3 (the journal is replayed), down again after update 5 to the end
    outage = Outage(server, stop_at=(1, 5), start_at=(3,))
    trainer = L.Trainer(max_epochs=1, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[outage, ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    trainer.fit(agent)
    assert agent.tracker.frames == 128  # training went on
    assert outage.pending[2] > 0 and outage.pending[3] > 0  # journaled while the server was down
    assert outage.pending[4] == 0  # replayed once it was back
    journal = logger.pending_dir()
    assert journal == Path("runs") / "outage" / logger.run_id / "mlflow-pending"  # the working folder's runs/
    pending = pending_calls(journal)
    assert pending > 0
    # the run's store is not the configured one (./mlflow.db): the hint names it, a journal never picks it
    assert f"zoo tracking sync {journal} --tracking-uri {server.uri}" in " ".join(capsys.readouterr().err.split())
    assert main(["tracking", "sync", "--tracking-uri", server.uri]) == 2  # still down: said, and the journal kept
    assert f"cannot reach the MLflow tracking server at {server.uri}" in capsys.readouterr().err
    assert pending_calls(journal) == pending

    server.start()
    assert main(["tracking", "sync", "--tracking-uri", server.uri]) == 0
    assert not journal.exists() and not find_journals()
    client = mlflow.MlflowClient(server.uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/reward")] == list(range(16, 129, 16))
    losses = client.get_metric_history(run.info.run_id, "train/loss_q")
    assert len(losses) == agent.tracker.frames // 16  # one per update: 8
    assert "last/last.ckpt" in _artifacts(client, run.info.run_id)



def test_run_tags_from_the_command_line_stay_strings():
    """A grid cell's tags reach the logger as written: a tracking server refuses the number 0 as a tag value,
    and a token like ``0012`` or ``12e5`` must not turn into 12 or 1200000.0."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(ZooMLFlowLogger, "logger")
    parsed = parser.parse_args(["--logger.tags", '{"zoo.benchmark.seed": "0", "a": "0012", "b": "12e5"}'])
    assert parsed.logger.tags == {"zoo.benchmark.seed": "0", "a": "0012", "b": "12e5"}
