"""Logging that outlives a tracking-server outage: what the server cannot take is kept on disk, then sent.

:class:`PendingClient` is an :class:`mlflow.MlflowClient` whose logging calls (metrics, params, tags,
artifacts, the run's end) never fail because the server is gone: when the server does not answer, the
call is appended to a journal folder (``calls.jsonl``; files to log are copied beside it) and training
goes on. Every later call first replays the journal, in order, once the server answers again (checked at
most every ``retry_every`` seconds). What is still pending at the end stays on disk until :func:`sync`
(``zoo tracking sync``) sends it. While the server is up, each call costs one extra ``GET /health``.

Only outages are journaled: an error the server answers (a bad value, an unknown run) is raised as usual.

Example:
    >>> client = PendingClient("http://127.0.0.1:5000", lambda: Path("runs/x/run-id/mlflow-pending"))  # doctest: +SKIP
    >>> client.log_batch(run_id, metrics=[Metric("loss", 0.5, 0, 1)])  # doctest: +SKIP
    >>> sync(Path("runs/x/run-id/mlflow-pending"))  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag

from zoo.registry import ZooError
from zoo.tracking.settings import check_tracking_uri

#: the journal folder's name inside a run folder (``runs/<experiment>/<run id>/``)
PENDING_DIR = "mlflow-pending"
CALLS = "calls.jsonl"
#: the client's logging calls that are journaled during an outage
JOURNALED = ("log_batch", "log_metric", "log_param", "set_tag", "log_text", "log_dict", "log_artifact",
             "log_artifacts", "set_terminated")
_ENTITIES = {"Metric": Metric, "Param": Param, "RunTag": RunTag}


def server_answers(uri: str) -> bool:
    """Whether the tracking server at ``uri`` answers (always true for a local store)."""
    try:
        check_tracking_uri(uri, timeout=5)
    except ZooError:
        return False
    return True


def _encode(value: Any) -> Any:
    if type(value).__name__ in _ENTITIES:
        return {"__entity__": type(value).__name__, **dict(value)}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if hasattr(value, "item"):  # tensors and numpy scalars
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__entity__" in value:
        fields = dict(value)
        return _ENTITIES[fields.pop("__entity__")](**fields)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class PendingClient(mlflow.MlflowClient):
    """An MLflow client that journals its logging calls while the tracking server is unreachable.

    Args:
        tracking_uri: the tracking server.
        journal: returns the journal folder (called when the first call is journaled: a logger knows its
            run folder only once the run exists).
        retry_every: seconds between checks whether the server is back.
    """

    def __init__(self, tracking_uri: str, journal: Callable[[], Path], retry_every: float = 10.0) -> None:
        super().__init__(tracking_uri=tracking_uri)
        self.uri = tracking_uri
        self._journal = journal
        self.retry_every = retry_every
        self._last_check = 0.0

    @property
    def journal(self) -> Path:
        return Path(self._journal())

    def pending(self) -> int:
        """Calls kept in the journal, not yet sent."""
        return pending_calls(self.journal)

    def flush(self, force: bool = False) -> int:
        """Send the journal if the server answers (checked at most every ``retry_every`` seconds unless
        ``force``); return the calls still pending."""
        if not self.pending():
            return 0
        if force or time.monotonic() - self._last_check >= self.retry_every:
            self._last_check = time.monotonic()
            if server_answers(self.uri):
                return sync(self.journal, self.uri, quiet=True)
        return self.pending()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        # While calls are pending, later ones queue behind them (order matters: the run's end comes last).
        # A quick health check first: MLflow itself retries a lost server for minutes before it gives up.
        if self.flush() == 0 and server_answers(self.uri):
            try:
                return getattr(super(), name)(*args, **kwargs)
            except Exception:
                if server_answers(self.uri):
                    raise  # the server answered: a real error, not an outage
        self._last_check = time.monotonic()
        self._append(name, args, kwargs)
        return None

    def _append(self, name: str, args: tuple, kwargs: dict) -> None:
        bound = inspect.signature(getattr(mlflow.MlflowClient, name)).bind(self, *args, **kwargs)
        call = {k: v for k, v in bound.arguments.items() if k != "self"}
        call.pop("synchronous", None)
        folder = self.journal
        folder.mkdir(parents=True, exist_ok=True)
        if name in ("log_artifact", "log_artifacts"):  # the file may be temporary or overwritten later
            copy = folder / "files" / f"{time.time_ns()}"
            source = Path(call.pop("local_dir" if name == "log_artifacts" else "local_path"))
            if source.is_dir():
                shutil.copytree(source, copy)
            else:
                copy.mkdir(parents=True)
                shutil.copy2(source, copy / source.name)
                copy = copy / source.name
            call["local_dir" if name == "log_artifacts" else "local_path"] = str(copy.relative_to(folder))
        with open(folder / CALLS, "a") as journal:
            journal.write(json.dumps({"uri": self.uri, "method": name, "args": _encode(call)}) + "\n")


def _journaled(name: str) -> Callable[..., Any]:
    def method(self: PendingClient, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"{getattr(mlflow.MlflowClient, name).__doc__ or ''}\n\nJournaled while the server is unreachable."
    return method


for _name in JOURNALED:
    setattr(PendingClient, _name, _journaled(_name))


def sync(journal: str | Path, tracking_uri: str | None = None, quiet: bool = False) -> int:
    """Send the calls of a journal folder to the tracking server, in order; return how many are left.

    Sent calls are removed from the journal; the folder goes once it is empty. An unreachable server leaves
    the rest for a later sync.

    Args:
        journal: a journal folder (``runs/<experiment>/<run id>/mlflow-pending``).
        tracking_uri: send there instead of the server each call was meant for.
        quiet: return the count instead of raising when the server is unreachable.

    Raises:
        ZooError: not a journal folder; the server is unreachable (unless ``quiet``).
    """
    folder = Path(journal)
    calls_file = folder / CALLS
    if not calls_file.is_file():
        raise ZooError(f"{folder} is not an MLflow journal folder (no {CALLS})")
    calls = []
    for number, line in enumerate(calls_file.read_text().splitlines(), 1):
        try:
            calls += [json.loads(line)] if line.strip() else []
        except json.JSONDecodeError as err:  # a line cut short by a crash while it was written
            raise ZooError(f"{calls_file} line {number} is not a complete call ({err.msg}); remove it and "
                           "sync again") from None
    clients: dict[str, mlflow.MlflowClient] = {}
    sent = 0
    try:
        for call in calls:
            uri = tracking_uri or call["uri"]
            if uri not in clients:
                check_tracking_uri(uri)
                clients[uri] = mlflow.MlflowClient(tracking_uri=uri)
            args = _decode(call["args"])
            for key in ("local_path", "local_dir"):
                if key in args:
                    args[key] = str(folder / args[key])
            getattr(clients[uri], call["method"])(**args)
            sent += 1
    except Exception:
        _keep(folder, calls[sent:])
        if quiet and not server_answers(tracking_uri or calls[sent]["uri"]):
            return len(calls) - sent
        raise
    _keep(folder, [])
    return 0


def _keep(folder: Path, calls: list[dict[str, Any]]) -> None:
    """Rewrite the journal with the calls not sent yet; remove the folder when none is left."""
    if calls:
        tmp = folder / f"{CALLS}.tmp"
        tmp.write_text("".join(json.dumps(call) + "\n" for call in calls))
        tmp.replace(folder / CALLS)  # atomic: a crash never leaves a half-written journal
    else:
        shutil.rmtree(folder)


def pending_calls(journal: str | Path) -> int:
    """How many calls a journal folder holds (0 when there is none)."""
    calls = Path(journal) / CALLS
    return sum(1 for line in calls.read_text().splitlines() if line.strip()) if calls.is_file() else 0


def find_journals(root: str | Path = "runs") -> list[Path]:
    """Journal folders under ``root`` (default: the runs folder of the working directory)."""
    return sorted(p.parent for p in Path(root).glob(f"**/{PENDING_DIR}/{CALLS}"))
