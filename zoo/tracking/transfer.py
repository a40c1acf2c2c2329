"""Copy finished MLflow runs from one tracking store into another (``zoo tracking import``).

A benchmark grid spread over several machines leaves its runs in several stores (each machine's
``mlflow.db``); importing them into one store lets ``zoo benchmark --report-only`` see the whole grid
and lets a later ``zoo benchmark`` skip the cells already run elsewhere. A copy keeps the run's name,
tags, params, every metric's full history (steps and timestamps), artifacts, status and start/end times,
and is tagged ``zoo.imported_from`` with ``<source store>#<run id>``, so importing again copies nothing twice.
Only runs that ended (FINISHED, FAILED, KILLED) are copied.

Example:
    >>> import_runs("sqlite:////data/gpu-box/mlflow.db", "benchmark-paper")  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param

from zoo.errors import ZooError
from zoo.tracking.settings import check_tracking_uri, tracking_uri

#: tag naming where a copied run came from: ``<source tracking URI>#<source run id>``
IMPORTED_FROM = "zoo.imported_from"
#: MLflow's limit on entities per ``log_batch`` call
_BATCH = 1000
_ENDED = ("FINISHED", "FAILED", "KILLED")


def import_runs(source_uri: str, experiment: str, target_uri: str | None = None,
                progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Copy the ended runs of ``experiment`` from the store at ``source_uri`` into the target store.

    Args:
        source_uri: tracking URI to copy from (``sqlite:///…/mlflow.db``, a folder, a server).
        experiment: experiment name; created in the target when missing.
        target_uri: tracking URI to copy into; default :func:`zoo.tracking.tracking_uri`.
        progress: called with one line per copied run.

    Returns:
        The new run ids in the target store (empty when everything was imported before).

    Raises:
        ZooError: the source has no such experiment, or source and target are the same store.
    """
    target_uri = target_uri or tracking_uri()
    for uri in (source_uri, target_uri):
        check_tracking_uri(uri)
    if store_identity(source_uri) == store_identity(target_uri):
        raise ZooError(f"source and target are the same tracking store: {source_uri}")
    source, target = mlflow.MlflowClient(source_uri), mlflow.MlflowClient(target_uri)
    found = source.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in source.search_experiments())
        raise ZooError(f"no experiment {experiment!r} in {source_uri}; it has: {', '.join(names) or 'none'}")
    existing = target.get_experiment_by_name(experiment)
    experiment_id = existing.experiment_id if existing else target.create_experiment(experiment)
    already = {_origin_identity(run.data.tags.get(IMPORTED_FROM))
               for run in target.search_runs([experiment_id], max_results=50_000)}
    copied = []
    for run in source.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"], max_results=50_000):
        origin = f"{store_identity(source_uri)}#{run.info.run_id}"
        if run.info.status not in _ENDED or origin in already:
            continue
        copied.append(_copy_run(source, target, run, experiment_id, origin))
        progress(f"{run.info.run_name or run.info.run_id} -> {copied[-1]}")
    return copied


def import_experiment(source: str, *, experiment: str, tracking_uri: str | None = None) -> None:
    """Copy the ended runs of an experiment from another tracking store.

    Copy the ended runs of an experiment (names, tags, params, full metric histories, artifacts, times) from
    another MLflow store into this one, e.g. a benchmark grid's cells run on another machine; runs imported before
    are skipped.

    Args:
        source: tracking URI to copy from, e.g. sqlite:////path/to/mlflow.db
        experiment: experiment name, e.g. benchmark-paper
        tracking_uri: store to copy into (default: this folder's)
    """
    copied = import_runs(source, experiment, tracking_uri, progress=print)
    print(f"imported {len(copied)} runs into {experiment!r}")


def store_identity(uri: str) -> str:
    """One spelling per store, so that the same store named two ways is recognised: a SQLite file or a folder by
    its absolute resolved path, a server URI without trailing slashes.

    Example:
        >>> store_identity("sqlite:///mlflow.db") == store_identity(f"sqlite:///{Path.cwd()}/./mlflow.db")
        True
    """
    if uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).expanduser().resolve()}"
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")).expanduser().resolve().as_uri()
    if "://" not in uri:  # a plain folder: MLflow's file store
        return Path(uri).expanduser().resolve().as_uri()
    return uri.rstrip("/")


def _origin_identity(tag: str | None) -> str | None:
    """An ``zoo.imported_from`` tag with its store in :func:`store_identity`'s spelling (older tags kept theirs)."""
    if not tag or "#" not in tag:
        return tag
    uri, _, run_id = tag.rpartition("#")
    return f"{store_identity(uri)}#{run_id}"


def _copy_run(source: mlflow.MlflowClient, target: mlflow.MlflowClient, run, experiment_id: str,
              origin: str) -> str:
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.runName"}
    new = target.create_run(experiment_id, start_time=run.info.start_time, run_name=run.info.run_name,
                            tags={**tags, IMPORTED_FROM: origin})
    new_id = new.info.run_id
    params = [Param(k, v) for k, v in run.data.params.items()]
    metrics = [Metric(m.key, m.value, m.timestamp, m.step)
               for key in run.data.metrics for m in source.get_metric_history(run.info.run_id, key)]
    for start in range(0, max(len(params), len(metrics)), _BATCH):
        target.log_batch(new_id, metrics=metrics[start:start + _BATCH], params=params[start:start + _BATCH])
    with tempfile.TemporaryDirectory() as tmp:
        if source.list_artifacts(run.info.run_id):
            local = source.download_artifacts(run.info.run_id, "", tmp)
            target.log_artifacts(new_id, str(Path(local)))
    target.set_terminated(new_id, run.info.status, end_time=run.info.end_time)
    return new_id
