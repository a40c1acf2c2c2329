"""MLflow settings for every run of the zoo (light: imports neither mlflow nor Lightning).

* Tracking URI: ``MLFLOW_TRACKING_URI`` when set (a team server), else ``sqlite:///<cwd>/mlflow.db``.
* Artifacts of the local store go to ``<cwd>/mlartifacts``.
* Telemetry off (``MLFLOW_DISABLE_TELEMETRY``, ``DO_NOT_TRACK``) before mlflow is imported.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from zoo.errors import ZooError


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


#: tracking URI schemes MLflow stores accept (a plain path is a local folder store)
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks", "databricks-uc", "uc")


def check_tracking_uri(uri: str, timeout: float = 10) -> None:
    """Fail fast, naming the URI, when it is no MLflow store or its tracking server does not answer (MLflow
    itself retries for minutes). A local store (``sqlite:``, a folder) passes without a look.

    Raises:
        ZooError: ``unsupported MLflow tracking URI …`` or ``cannot reach the MLflow tracking server at <uri> …``.
    """
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", uri)
    if scheme and scheme.group(1).split("+")[0].lower() not in TRACKING_SCHEMES:
        raise ZooError(f"unsupported MLflow tracking URI {uri!r}: use http(s)://host:port (a tracking server), "
                       "sqlite:///path/mlflow.db, postgresql://user@host/db or a folder")
    if not uri.startswith(("http://", "https://")):
        return
    import requests  # lazy: requests is slow to import

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
    except requests.RequestException as err:
        raise ZooError(f"cannot reach the MLflow tracking server at {uri} ({type(err).__name__}); "
                       "is it running? (MLFLOW_TRACKING_URI selects it)") from None


def ui_command(uri: str | None = None) -> str:
    """The shell command that opens the MLflow UI on this store."""
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


_RUN_ID = re.compile(r"^(runs:/)?([0-9a-f]{32})/?$")


def resolve_checkpoint(source: str | Path) -> Path:
    """A local checkpoint path for ``source``: a ``.ckpt`` file, or an MLflow run (``runs:/<id>`` or ``<id>``)."""
    text = str(source)
    path = Path(text)
    if path.is_file():
        return path
    match = _RUN_ID.match(text)
    if match:
        return find_checkpoint(match.group(2))
    raise ZooError(f"checkpoint {text!r} not found: give a .ckpt file or an MLflow run id (runs:/<run_id>)")


def find_checkpoint(run_id: str, uri: str | None = None) -> Path:
    """Download the final Lightning checkpoint logged by a run and return its local path.

    Prefers ``last.ckpt``; otherwise the most recent ``*.ckpt`` artifact. The download is a temporary folder,
    removed when the process ends.
    """
    import mlflow  # lazy: mlflow is slow to import
    from mlflow.exceptions import MlflowException  # lazy: mlflow is slow to import

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
    # MLflow's own download folder is never removed: this one goes when the process ends (callers read it until then)
    download = tempfile.mkdtemp(prefix="zoo-checkpoint-")
    atexit.register(shutil.rmtree, download, ignore_errors=True)
    return Path(client.download_artifacts(run_id, found[0], download))
