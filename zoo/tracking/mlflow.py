"""MLflow defaults for every run of the zoo.

* Tracking URI: ``MLFLOW_TRACKING_URI`` when set (a team server), else ``sqlite:///<cwd>/mlflow.db``.
* Artifacts of the local store go to ``<cwd>/mlartifacts``.
* Telemetry off (``MLFLOW_DISABLE_TELEMETRY``, ``DO_NOT_TRACK``) before mlflow is imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger

from zoo.registry import ZooError


def configure_mlflow() -> None:
    """Switch MLflow's telemetry off; call before importing mlflow (the CLI does)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")


configure_mlflow()


def tracking_uri() -> str:
    """The tracking URI in use: ``MLFLOW_TRACKING_URI`` or the local SQLite store in the working folder."""
    return _default_uri()


def _default_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _local_artifact_location() -> str | None:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None  # the server decides
    return (Path.cwd() / "mlartifacts").as_uri()


def ui_command(uri: str | None = None) -> str:
    """The shell command that opens the MLflow UI on this store."""
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


class ZooMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger with the zoo's defaults (local SQLite store, checkpoints logged).

    Args:
        experiment_name: MLflow experiment (recipes set their own).
        run_name: run name (default: MLflow's generated one).
        tracking_uri: default :func:`tracking_uri`.
        log_model: log checkpoints as run artifacts.
        artifact_location: where a new experiment stores artifacts (default ``<cwd>/mlartifacts`` for the
            local store; the server's choice with ``MLFLOW_TRACKING_URI``).
        **kwargs: passed to :class:`lightning.pytorch.loggers.MLFlowLogger`.
    """

    def __init__(self, experiment_name: str = "zoo", run_name: str | None = None, tracking_uri: str | None = None,
                 log_model: bool = True, artifact_location: str | None = None, **kwargs: Any) -> None:
        super().__init__(experiment_name=experiment_name, run_name=run_name,
                         tracking_uri=tracking_uri or _default_uri(), log_model=log_model,
                         artifact_location=artifact_location or _local_artifact_location(), **kwargs)


def find_checkpoint(run_id: str, uri: str | None = None) -> Path:
    """Download the final Lightning checkpoint logged by a run and return its local path.

    Prefers ``last.ckpt``; otherwise the most recent ``*.ckpt`` artifact.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri or tracking_uri())
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ZooError(f"no MLflow run {run_id!r} in {uri or tracking_uri()}") from None

    def walk(path: str | None = None):
        for item in client.list_artifacts(run_id, path):
            if item.is_dir:
                yield from walk(item.path)
            elif item.path.endswith(".ckpt"):
                yield item.path

    found = sorted(walk(), key=lambda p: (not p.endswith("last.ckpt"), p))
    if not found:
        raise ZooError(f"MLflow run {run_id!r} has no checkpoint artifact (*.ckpt)")
    return Path(client.download_artifacts(run_id, found[0]))
