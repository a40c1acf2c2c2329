"""Lightning's MLflow logger with the zoo's defaults, and training that outlives a tracking-server outage."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console

from zoo.tracking.settings import _default_uri, _local_artifact_location, check_tracking_uri

#: tag prefix of the hyper-parameters a resumed run changed (``zoo.resumed.total_frames`` …)
RESUMED_TAG = "zoo.resumed."
#: Lightning's run statuses → MLflow's
_STATUS = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED"}


class ZooMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger with the zoo's defaults (local SQLite store, checkpoints logged).

    With a tracking server (``http(s)://`` URI) the server must answer when the logger is built (else a
    :class:`~zoo.errors.ZooError` naming the URI, before any training). If it goes away later, training
    goes on: metrics, params, artifacts and the run's end are journaled in
    ``<pending_root>/<experiment>/<run id>/mlflow-pending/`` and sent when the server answers again, or
    later with ``zoo tracking sync`` (see :mod:`zoo.tracking.pending`).

    Args:
        experiment_name: MLflow experiment (recipes set their own).
        run_name: run name (default: MLflow's generated one).
        tracking_uri: default :func:`tracking_uri`.
        log_model: log checkpoints as run artifacts.
        artifact_location: where a new experiment stores artifacts (default ``<cwd>/mlartifacts`` for the
            local store; the server's choice with ``MLFLOW_TRACKING_URI``).
        pending_root: runs folder holding the outage journal (default: the trainer's ``default_root_dir``
            under ``zoo fit``, else ``runs``).
        retry_every: seconds between checks whether a lost server is back.
        tags: the run's tags. Typed ``str → str`` here, so the command line keeps each value as written:
            Lightning's ``dict[str, Any]`` lets jsonargparse read ``"0"`` as the number 0 (which a tracking
            server refuses) and ``"12e5"`` as 1200000.0.
        **kwargs: passed to :class:`lightning.pytorch.loggers.MLFlowLogger`.

    Example:
        >>> trainer = L.Trainer(logger=ZooMLFlowLogger("quickstart"))  # doctest: +SKIP
    """

    def __init__(self, experiment_name: str = "zoo", run_name: str | None = None, tracking_uri: str | None = None,
                 log_model: bool = True, artifact_location: str | None = None, pending_root: str | None = None,
                 retry_every: float = 10.0, tags: dict[str, str] | None = None, **kwargs: Any) -> None:
        tracking_uri = tracking_uri or _default_uri()
        check_tracking_uri(tracking_uri)
        super().__init__(experiment_name=experiment_name, run_name=run_name, tracking_uri=tracking_uri,
                         log_model=log_model, artifact_location=artifact_location or _local_artifact_location(),
                         tags=tags, **kwargs)
        self.pending_root = pending_root
        self._resumed = self._run_id is not None  # a run that goes on (zoo fit --ckpt_path last)
        if tracking_uri.startswith(("http://", "https://")):
            from zoo.tracking.pending import PendingClient  # lazy: would load mlflow, requests, pandas

            self._mlflow_client = PendingClient(tracking_uri, self.pending_dir, retry_every=retry_every)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        """Log the hyper-parameters as Lightning does; a resumed run (the same MLflow run) logs only the new ones.

        MLflow never changes a logged param, so a value the resume changed (``total_frames``, ``lr`` …) keeps the
        run's first value as its param and is recorded in the tag ``zoo.resumed.<param>`` as well.
        """
        if not self._resumed:
            super().log_hyperparams(params)
            return
        logged = self.experiment.get_run(self.run_id).data.params
        flat = {k: str(v)[:250] for k, v in _flatten_dict(_convert_params(params)).items()}  # Lightning's form
        super().log_hyperparams({k: v for k, v in flat.items() if k not in logged})
        for key, value in flat.items():
            if key in logged and logged[key] != value:
                self.experiment.set_tag(self.run_id, f"{RESUMED_TAG}{key}", value)

    def pending_dir(self) -> Path:
        """The run's outage journal: ``<pending_root>/<experiment>/<run id>/mlflow-pending``."""
        from zoo.tracking.pending import PENDING_DIR  # lazy: would load mlflow, requests, pandas

        return Path(self.pending_root or "runs") / self._experiment_name / str(self._run_id) / PENDING_DIR

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Log the checkpoints and end the run, as Lightning does, without asking a lost server for the run
        first; say where the calls still pending are and how to send them."""
        if not self._initialized:
            return
        if self._checkpoint_callback:
            self._scan_and_log_checkpoints(self._checkpoint_callback)
        self.experiment.set_terminated(self.run_id, _STATUS.get(status, status))
        client = self._mlflow_client
        if hasattr(client, "flush") and client.flush(force=True):
            # the store named: a sync sends to the configured one otherwise (a journal never picks its destination)
            Console(stderr=True).print(
                f"[bold yellow]MLflow server {self._tracking_uri} unreachable:[/bold yellow] {client.pending()} "
                f"logging calls kept in {client.journal}; send them with "
                f"[green]zoo tracking sync {client.journal} --tracking-uri {self._tracking_uri}[/green]",
                highlight=False)
