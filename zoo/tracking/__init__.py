"""MLflow defaults: a local SQLite store in the working folder, no telemetry, no network."""

from __future__ import annotations

import importlib
from typing import Any

from zoo.tracking.settings import configure_mlflow, find_checkpoint, tracking_uri, ui_command

__all__ = ["ZooMLFlowLogger", "configure_mlflow", "find_checkpoint", "tracking_uri", "ui_command"]


def __getattr__(name: str) -> Any:
    if name == "ZooMLFlowLogger":  # imports Lightning: only when asked for
        return importlib.import_module("zoo.tracking.logger").ZooMLFlowLogger
    raise AttributeError(f"module 'zoo.tracking' has no attribute {name!r}")
