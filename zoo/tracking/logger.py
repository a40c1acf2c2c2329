"""Lightning's MLflow logger with the zoo's defaults."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import MLFlowLogger

from zoo.tracking.settings import _default_uri, _local_artifact_location


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
