"""Logging that outlives a tracking-server outage: what the server cannot take is kept on disk, then sent.

:class:`PendingClient` is an :class:`mlflow.MlflowClient` whose logging calls (metrics, params, tags,
artifacts, the run's end) never fail because the server is gone: when the server does not answer, the
call is appended to a journal folder (``calls.jsonl``; files to log are copied beside it) and training
goes on. Every later call first replays the journal, in order, once the server answers again (checked at
most every ``retry_every`` seconds). What is still pending at the end stays on disk until :func:`sync`
(``zoo tracking sync``) sends it. While the server is up, each call costs one extra ``GET /health``.

A journal on disk is untrusted data: :func:`read_journal` accepts only the calls of :data:`JOURNALED`, with
their arguments checked, logging to the journal's own run and reading files only from its ``files/`` folder;
the store they go to is the caller's choice (:func:`destination`), never the journal's.

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
from pathlib import Path, PurePosixPath
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag

from zoo.errors import ZooError
from zoo.tracking.settings import check_tracking_uri
from zoo.tracking.settings import tracking_uri as configured_tracking_uri

#: the journal folder's name inside a run folder (``runs/<experiment>/<run id>/``)
PENDING_DIR = "mlflow-pending"
CALLS = "calls.jsonl"
#: the folder beside the journal holding copies of the files its artifact calls log (replay reads only there)
FILES = "files"
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
            copy = folder / FILES / f"{time.time_ns()}"
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

    The journal is data, not instructions: every call is checked by :func:`read_journal` before the first
    one is sent, and it goes to the store the caller names, never to one the journal names (see
    :func:`destination`). Sent calls leave the journal, and so do the file copies they logged; the journal
    folder goes once nothing else is in it. An unreachable server leaves the rest for a later sync.

    Args:
        journal: a journal folder (``runs/<experiment>/<run id>/mlflow-pending``).
        tracking_uri: the store to send to (default: the configured one, :func:`zoo.tracking.tracking_uri`).
        quiet: return the count instead of raising when the server is unreachable.

    Raises:
        ZooError: not a journal folder, a call the zoo never journals or that reaches outside the journal, a
            journal written for another store than the one sent to; the server is unreachable (unless ``quiet``).
    """
    folder = Path(journal)
    calls = read_journal(folder)
    uri = destination(folder, calls, tracking_uri)
    sent = 0
    try:
        check_tracking_uri(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        for call in calls:
            getattr(client, call["method"])(**_arguments(folder, call))
            sent += 1
    except Exception:
        _keep(folder, calls, sent)
        if quiet and not server_answers(uri):
            return len(calls) - sent
        raise
    _keep(folder, calls, sent)
    return 0


def read_journal(journal: str | Path) -> list[dict[str, Any]]:
    """The calls of a journal folder, each checked (nothing is sent or changed here).

    A call must be one of :data:`JOURNALED` with the arguments the zoo journals and values of their types,
    log to the journal's own run (the run folder's name), and name local files only inside the journal's
    ``files/`` folder (relative, no ``..``, no symbolic link on the way or inside).

    Raises:
        ZooError: the folder is no journal, or a line is not such a call (its line number and why).
    """
    folder = Path(journal)
    calls_file = folder / CALLS
    if folder.name != PENDING_DIR or not calls_file.is_file() or calls_file.is_symlink():
        raise ZooError(f"{folder} is not an MLflow journal folder (a {PENDING_DIR} folder holding {CALLS}); "
                       "nothing was sent or removed")
    calls = []
    for number, line in enumerate(calls_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            call = json.loads(line)
        except json.JSONDecodeError as err:  # a line cut short by a crash while it was written
            raise ZooError(f"{calls_file} line {number} is not a complete call ({err.msg}); remove it and "
                           "sync again") from None
        problem = _call_problem(folder, call)
        if problem:
            raise ZooError(f"{calls_file} line {number} refused: {problem}; nothing was sent or removed")
        calls.append(call)
    return calls


def destination(journal: str | Path, calls: list[dict[str, Any]], tracking_uri: str | None = None) -> str:
    """The store a journal's calls go to: ``tracking_uri`` when given, else the configured store.

    The URI recorded in the journal only guards against sending a run's calls to the wrong store: a journal
    recorded for another store than the configured one is refused, naming both, so that the user picks the
    destination (``--tracking-uri``); the journal never does.

    Raises:
        ZooError: no ``tracking_uri`` and the journal was written for another store.
    """
    if tracking_uri:
        return tracking_uri
    configured = configured_tracking_uri()
    others = sorted({call["uri"] for call in calls if call.get("uri", configured).rstrip("/") != configured.rstrip("/")})
    if others:
        raise ZooError(f"{journal} was journaled for the store {others[0]}, not the configured {configured}: "
                       "pass --tracking-uri (or set MLFLOW_TRACKING_URI) to the store its run belongs to")
    return configured


def _arguments(folder: Path, call: dict[str, Any]) -> dict[str, Any]:
    """A checked call's keyword arguments for the client: entities rebuilt, file copies as full paths."""
    args = dict(call["args"])
    for name in ("metrics", "params", "tags"):
        if name in args:
            args[name] = [_ENTITIES[item["__entity__"]](**{k: v for k, v in item.items() if k != "__entity__"})
                          for item in args[name]]
    for name in _LOCAL_PATHS:
        if name in args:
            args[name] = str(folder / args[name])
    return args


def _keep(folder: Path, calls: list[dict[str, Any]], sent: int) -> None:
    """Rewrite the journal with the calls not sent yet, then remove the file copies only sent calls used.

    The journal is rewritten first: a crash in between leaves a copy too many, never a call without its file.
    Only the journal's own files go: ``calls.jsonl``, the copies its sent calls logged, and the ``files/`` and
    journal folders once they are empty (anything else in them stays).
    """
    left = calls[sent:]
    if left:
        tmp = folder / f"{CALLS}.tmp"
        tmp.write_text("".join(json.dumps(call) + "\n" for call in left))
        tmp.replace(folder / CALLS)  # atomic: a crash never leaves a half-written journal
    else:
        (folder / CALLS).unlink()
    for copy in _copies(folder, calls[:sent]) - _copies(folder, left):
        shutil.rmtree(copy) if copy.is_dir() else copy.unlink()
    for empty in (folder / FILES, folder):
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()


def _copies(folder: Path, calls: list[dict[str, Any]]) -> set[Path]:
    """The entries of ``files/`` that ``calls`` log (each journaled artifact call has its own)."""
    return {folder / FILES / PurePosixPath(call["args"][name]).parts[1]
            for call in calls for name in _LOCAL_PATHS if name in call["args"]}


# -- what a journaled call may hold ------------------------------------------------------------------
def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _is_relative_path(value: Any) -> bool:
    """A relative artifact path that stays inside the run's artifacts (no ``..``, not absolute)."""
    if not isinstance(value, str) or not value or "\\" in value:
        return False
    path = PurePosixPath(value)
    return not path.is_absolute() and ".." not in path.parts


_ENTITY_FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "Metric": {"key": _is_text, "value": _is_number, "timestamp": _is_integer, "step": _is_integer,
               "model_id": _optional(_is_text), "dataset_name": _optional(_is_text),
               "dataset_digest": _optional(_is_text), "run_id": _optional(_is_text)},
    "Param": {"key": _is_text, "value": _is_text},
    "RunTag": {"key": _is_text, "value": _is_text},
}
_ENTITY_REQUIRED = {"Metric": ("key", "value", "timestamp", "step"), "Param": ("key", "value"),
                    "RunTag": ("key", "value")}


def _entities(kind: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, list) and all(
            isinstance(item, dict) and item.get("__entity__") == kind
            and set(_ENTITY_REQUIRED[kind]) <= item.keys() <= {"__entity__", *_ENTITY_FIELDS[kind]}
            and all(_ENTITY_FIELDS[kind][k](v) for k, v in item.items() if k != "__entity__") for item in value)

    return check


#: arguments naming a local file or folder: a copy inside the journal's ``files/`` folder
_LOCAL_PATHS = ("local_path", "local_dir")
_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
#: per journaled method: its arguments besides ``run_id`` (name → check of its value) and which are required
_SIGNATURES: dict[str, tuple[dict[str, Callable[[Any], bool]], tuple[str, ...]]] = {
    "log_batch": ({"metrics": _entities("Metric"), "params": _entities("Param"), "tags": _entities("RunTag")}, ()),
    "log_metric": ({"key": _is_text, "value": _is_number, "timestamp": _optional(_is_integer),
                    "step": _optional(_is_integer)}, ("key", "value")),
    "log_param": ({"key": _is_text, "value": _is_scalar}, ("key", "value")),
    "set_tag": ({"key": _is_text, "value": _is_scalar}, ("key", "value")),
    "log_text": ({"text": _is_text, "artifact_file": _is_relative_path}, ("text", "artifact_file")),
    "log_dict": ({"dictionary": lambda value: isinstance(value, dict), "artifact_file": _is_relative_path},
                 ("dictionary", "artifact_file")),
    "log_artifact": ({"local_path": _is_relative_path, "artifact_path": _optional(_is_relative_path)},
                     ("local_path",)),
    "log_artifacts": ({"local_dir": _is_relative_path, "artifact_path": _optional(_is_relative_path)},
                      ("local_dir",)),
    "set_terminated": ({"status": _optional(lambda value: value in _STATUSES), "end_time": _optional(_is_integer)},
                       ()),
}


def _call_problem(folder: Path, call: Any) -> str | None:
    """Why a journal line is not a call the zoo journals for this journal's run, or ``None``."""
    if not isinstance(call, dict) or not isinstance(call.get("args"), dict) or not _optional(_is_text)(call.get("uri")):
        return "not a journaled call ({\"uri\", \"method\", \"args\"})"
    method, args = call.get("method"), call["args"]
    if method not in JOURNALED:
        return f"method {method!r} is not one the zoo journals ({', '.join(JOURNALED)})"
    checks, required = _SIGNATURES[method]
    unknown = sorted(args.keys() - {"run_id", *checks})
    missing = sorted({"run_id", *required} - args.keys())
    bad = sorted(name for name, check in checks.items() if name in args and not check(args[name]))
    if unknown or missing or bad:
        return f"{method} with " + "; ".join(f"{what} {', '.join(names)}" for what, names in (
            ("unknown arguments", unknown), ("missing arguments", missing), ("bad values of", bad)) if names)
    run = folder.resolve().parent.name  # journals live in their run's folder, named by the run id
    if args["run_id"] != run:
        return f"{method} logs to run {args['run_id']!r}, not the journal's own run {run!r}"
    for name in _LOCAL_PATHS:
        if name in args:
            problem = _copy_problem(folder, args[name])
            if problem:
                return f"{method} {name} {args[name]!r} {problem}"
    return None


def _copy_problem(folder: Path, relative: str) -> str | None:
    """Why a journaled file path is not a copy inside the journal's ``files/`` folder, or ``None``."""
    parts = PurePosixPath(relative).parts
    if len(parts) < 2 or parts[0] != FILES:
        return f"is not inside the journal's {FILES}/ folder"
    path = folder / relative
    if not path.exists():
        return "does not exist"
    if path.resolve() != folder.resolve().joinpath(*parts):
        return "passes through a symbolic link"  # no '..' (checked before): any difference is a link
    if path.is_dir() and any(entry.is_symlink() for entry in path.rglob("*")):
        return "holds a symbolic link"
    return None


def pending_calls(journal: str | Path) -> int:
    """How many calls a journal folder holds (0 when there is none)."""
    calls = Path(journal) / CALLS
    return sum(1 for line in calls.read_text().splitlines() if line.strip()) if calls.is_file() else 0


def find_journals(root: str | Path = "runs") -> list[Path]:
    """Journal folders under ``root`` (default: the runs folder of the working directory)."""
    return sorted(p.parent for p in Path(root).glob(f"**/{PENDING_DIR}/{CALLS}"))


def sync_journals(journals: list[str], *, root: str = "runs", tracking_uri: str | None = None) -> None:
    """Send what a run journaled while the tracking server was unreachable.

    Send the logging calls that runs kept in <run folder>/mlflow-pending while their MLflow server was
    unreachable, in order; sent calls leave the journal. Every journal is checked before the first call is sent.

    Args:
        journals: journal folders (default: every one under --root)
        root: runs folder searched when no journal is given
        tracking_uri: the store to send to (default: MLFLOW_TRACKING_URI, else ./mlflow.db); a journal written for
            another store is refused unless this names where to send it
    """
    folders = [Path(j) for j in journals] or find_journals(root)
    if not folders:
        print(f"nothing to sync: no mlflow-pending journal under {root}")
    calls = {folder: read_journal(folder) for folder in folders}  # every journal checked before any is sent
    for folder in folders:
        destination(folder, calls[folder], tracking_uri)
    for folder in folders:
        sync(folder, tracking_uri)
        print(f"sent {len(calls[folder])} logging calls from {folder}")
