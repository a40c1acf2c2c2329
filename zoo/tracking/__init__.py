"""MLflow defaults: a local SQLite store in the working folder, no telemetry, no network."""

from zoo.tracking.mlflow import ZooMLFlowLogger, configure_mlflow, find_checkpoint, tracking_uri, ui_command

__all__ = ["ZooMLFlowLogger", "configure_mlflow", "find_checkpoint", "tracking_uri", "ui_command"]
