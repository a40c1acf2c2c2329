"""Train grid cells as Ray tasks on a Ray cluster (``zoo benchmark --backend ray [--address ...]``).

Each cell is one Ray task that declares :data:`CELL_CPUS` CPU (a cell is single-threaded) and ``--cell-gpus``
GPUs, and runs the cell's ``zoo fit`` child exactly as ``--workers N`` does (:mod:`zoo.benchmark.workers`: the
same command, environment, log file and MLflow look-up), so a cell's MLflow run is the same whichever backend
trained it. Every task logs to the driver's tracking store (``MLFLOW_TRACKING_URI`` in the tasks' runtime
environment); a store that is a file on the driver's machine (SQLite, a folder) is refused when the cluster has
other machines. The cells run in the driver's working folder path on their node (made there if missing): logs
in ``runs/benchmark-<suite>/logs/``, checkpoints under ``runs/``.

A dead worker (killed, out of memory, its node lost) is a system failure: Ray runs the task again, at most
:data:`RETRIES` times. The child dies with its worker (``PR_SET_PDEATHSIG`` on Linux), so the two attempts
never train at once. Each submission tags its runs ``zoo.benchmark.attempt`` with a token of its own; an attempt
that finds runs of an earlier one deletes those left unfinished (the killed attempt's, RUNNING forever
otherwise) and, if one FINISHED (a worker lost after its child ended), returns it instead of training again:
no cell ends with two runs, nor with a half-written one. On Ctrl-C (or SIGTERM / SIGHUP) the waiting cells are
cancelled, the running ones interrupted (their child gets SIGINT: Lightning ends the run as FAILED, as with
``--workers``), those still running after the grace killed, and their runs left RUNNING ended as KILLED.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from zoo.benchmark.grid import TAG, machine, matching
from zoo.benchmark.workers import GRACE_S, CellProgress, Job, deferred_interrupts, launch, outcome, stop
from zoo.errors import ZooError
from zoo.ray_runtime import connect
from zoo.tracking import tracking_uri

#: CPUs a cell declares: its ``zoo fit`` runs one torch thread (``--torch_threads=1``, ``OMP_NUM_THREADS=1``)
CELL_CPUS = 1
#: times Ray runs a cell again after its worker died (a failed ``zoo fit`` is a result, never retried)
RETRIES = 3
#: the tag that tells one submission's attempts from any other run of the same cell
ATTEMPT_TAG = f"{TAG}attempt"


@dataclass(frozen=True)
class RayCluster:
    """Where and how the cells run.

    Attributes:
        address: ``ray.init``'s address: ``host:port`` of the head, ``ray://host:10001`` (Ray Client),
            ``auto`` (the cluster this machine belongs to) or ``local`` (a Ray instance started for the grid, stopped
            after it); ``None``: ``RAY_ADDRESS``, else the last ``ray start`` on this machine, else ``local``.
        cell_gpus: GPUs each cell declares (a fraction shares one GPU between cells; 0: Ray hides the GPUs).
    """

    address: str | None = None
    cell_gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.cell_gpus < 0:
            raise ZooError(f"cell GPUs must be >= 0, got {self.cell_gpus}")


@dataclass(frozen=True)
class CellResult:
    """What a cell's task returns.

    Attributes:
        run_id: its FINISHED run, ``None`` when it failed.
        error: why it failed (exit code, the last line of its log, the log's path on its node).
        machine: the node that trained it (:func:`~zoo.benchmark.grid.machine`); ``None`` when the task never
            returned (retries spent, cluster lost).
        deleted: unfinished runs of earlier attempts that this one deleted.
    """

    run_id: str | None
    error: str | None
    machine: str | None
    deleted: tuple[str, ...] = ()


def fit_cell(job: Job, experiment_id: str, log_dir: str, workdir: str) -> CellResult:
    """The Ray task of one cell: clear what an earlier attempt left, run ``zoo fit``, find its run.

    Args:
        job: the cell, tagged with its submission's :data:`ATTEMPT_TAG`.
        experiment_id: the grid's experiment in the tracking store (``MLFLOW_TRACKING_URI``).
        log_dir: the folder of the cell logs (a path on the node).
        workdir: the child's working folder (made if missing).
    """
    import mlflow  # lazy: mlflow is slow to import

    client = mlflow.MlflowClient(tracking_uri())
    console = Console(stderr=True)  # Ray forwards it to the driver's console
    earlier = matching(client.search_runs([experiment_id], f"tags.`{ATTEMPT_TAG}` = '{job.tags[ATTEMPT_TAG]}'",
                                          order_by=["attributes.start_time DESC"]), job.tags)
    deleted = tuple(run.info.run_id for run in earlier if run.info.status != "FINISHED")
    for run_id in deleted:
        client.set_terminated(run_id, "KILLED")
        client.delete_run(run_id)
    finished = [run for run in earlier if run.info.status == "FINISHED"]
    if finished:
        return CellResult(finished[0].info.run_id, None, machine(), deleted)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    cell = launch(job, Path(log_dir), console, cwd=Path(workdir), die_with_parent=True)
    try:
        while cell.process.poll() is None:  # short sleeps: ray.cancel's KeyboardInterrupt lands between them
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop([cell])
        raise
    run_id, error = outcome(cell, client, experiment_id, console)
    return CellResult(run_id, error, machine(), deleted)


def fit_on_ray(jobs: Sequence[Job], cluster: RayCluster, client: Any, experiment_id: str, log_dir: Path,
               console: Console) -> Iterator[tuple[Job, str | None, str | None, str | None]]:
    """Train ``jobs`` as Ray tasks on ``cluster``; yield each as it ends.

    Args:
        jobs: the cells to train (none of them twice); each is yielded tagged with its :data:`ATTEMPT_TAG`.
        cluster: the cluster's address and each cell's GPUs.
        client: the ``mlflow.MlflowClient`` of the store the cells log to.
        experiment_id: their experiment (created beforehand).
        log_dir: where the cell logs go on each node.
        console: progress, retries and failures.

    Yields:
        ``(job, run_id, None, machine)`` for a cell that finished, ``(job, None, reason, machine)`` for one that
        failed (``machine`` ``None`` when its task never returned: retries spent, cluster lost).

    Raises:
        ZooError: ray is not installed, the cluster cannot be reached, or it cannot reach the tracking store.
        KeyboardInterrupt: after Ctrl-C, SIGTERM or SIGHUP, once the cluster's cells are stopped.
    """
    uri = tracking_uri()
    ray = connect(cluster.address, "zoo benchmark --backend ray", runtime_env={"env_vars": {"MLFLOW_TRACKING_URI": uri}})
    try:
        check_store_reachable(uri, {node["NodeManagerHostname"] for node in ray.nodes() if node["Alive"]})
        task = ray.remote(num_cpus=CELL_CPUS, num_gpus=cluster.cell_gpus, max_retries=RETRIES)(fit_cell)
        tagged = [job.with_tag(ATTEMPT_TAG, uuid.uuid4().hex) for job in jobs]
        pending = {task.remote(job, experiment_id, str(log_dir), str(Path.cwd())): job for job in tagged}
        console.print(f"{len(jobs)} cells submitted to the Ray cluster ({ray.cluster_resources().get('CPU', 0):g} "
                      f"CPUs); each declares {CELL_CPUS} CPU, {cluster.cell_gpus:g} GPU")
        with CellProgress(console, len(jobs)) as progress, deferred_interrupts() as interrupted:
            try:
                while pending:
                    if interrupted.is_set():
                        raise KeyboardInterrupt
                    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
                    for ref in ready:
                        job = pending.pop(ref)
                        result = _result(ray, ref)
                        if result.deleted:
                            console.print(f"{job.name}: an attempt's worker died; its unfinished run "
                                          f"{', '.join(result.deleted)} was deleted and the cell trained again")
                        progress.ended(failed=result.error is not None)
                        yield job, result.run_id, result.error, result.machine
                    progress.show(running=len(pending))
            finally:  # an interrupt, or the caller stopped early
                _cancel(ray, pending, client, experiment_id)
    finally:
        ray.shutdown()


def check_store_reachable(uri: str, hosts: set[str]) -> None:
    """Refuse a tracking store that is a file on this machine when the cluster has other machines.

    Args:
        uri: the tracking URI the cells log to.
        hosts: the host names of the cluster's alive nodes.

    Raises:
        ZooError: ``uri`` is ``sqlite:``, ``file:`` or a plain path and a node is another machine.
    """
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    others = sorted(hosts - {socket.gethostname()})
    if local and others:
        raise ZooError(f"the tracking store {uri} is a file on this machine; the Ray cluster's nodes "
                       f"{', '.join(others)} cannot log to it: set MLFLOW_TRACKING_URI to a tracking server every "
                       "node reaches (http://host:5000, see docs/reliability.md)")


def _result(ray: Any, ref: Any) -> CellResult:
    """The task's result, or a failed one naming Ray's error (retries spent, node lost)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return CellResult(None, f"Ray task failed after {RETRIES} retries: {type(err).__name__}: {reason}", None)


def _cancel(ray: Any, pending: dict[Any, Job], client: Any, experiment_id: str) -> None:
    """Stop the cells still pending: waiting ones never start, running ones get KeyboardInterrupt (their child
    SIGINT), those still running after the grace are killed; a run they left RUNNING ends as KILLED."""
    if not pending:
        return
    refs = list(pending)
    for ref in refs:
        ray.cancel(ref)
    _, left = ray.wait(refs, num_returns=len(refs), timeout=GRACE_S + 5)
    for ref in left:
        ray.cancel(ref, force=True)
    tokens = {job.tags[ATTEMPT_TAG] for job in pending.values()}
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        if run.data.tags.get(ATTEMPT_TAG) in tokens:
            client.set_terminated(run.info.run_id, "KILLED")
    pending.clear()
