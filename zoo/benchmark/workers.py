"""Train grid cells as ``zoo fit`` subprocesses, up to N at once (``zoo benchmark --workers N``).

Each child is ``python -m zoo.cli fit <the cell's arguments>`` with one torch thread and
``OMP_NUM_THREADS=1`` / ``MKL_NUM_THREADS=1``, in its own process group, its stdout and stderr in one log
file per cell. A child that exits 0 has its run looked up in MLflow: the newest FINISHED run, started
after the launch, whose tags and run name are the cell's. On Ctrl-C (or SIGTERM / SIGHUP) every running
child's process group gets SIGINT, then SIGKILL after :data:`GRACE_S` seconds, and KeyboardInterrupt is
raised.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import zoo
from zoo.benchmark.grid import find_finished

#: seconds an interrupted child has to end its run before it is killed
GRACE_S = 10.0
#: lines of a failed cell's log shown on the console
TAIL_LINES = 15


@dataclass
class Job:
    """One grid cell to train.

    Attributes:
        name: ``method/scenario/seed<k>`` (the run name).
        arguments: its ``zoo fit`` arguments (:func:`~zoo.benchmark.grid.fit_arguments`).
        tags: the tags its MLflow run carries (:func:`~zoo.benchmark.grid.cell_tags` and the run name).
    """

    name: str
    arguments: list[str]
    tags: dict[str, str]

    def log_name(self) -> str:
        return self.name.replace("/", "_") + ".log"


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen
    log: Path
    started_ms: int


def fit_in_subprocesses(jobs: Sequence[Job], workers: int, client: Any, experiment_id: str, log_dir: Path,
                        console: Console) -> Iterator[tuple[Job, str | None, str | None]]:
    """Run ``jobs`` as ``zoo fit`` subprocesses, ``workers`` at a time; yield each as it ends.

    Args:
        jobs: the cells to train (none of them twice).
        workers: how many children run at once.
        client: the ``mlflow.MlflowClient`` of the store the children log to.
        experiment_id: their experiment (created beforehand: children creating it at once would collide).
        log_dir: where ``<method>_<scenario>_seed<k>.log`` go.
        console: progress and failures.

    Yields:
        ``(job, run_id, None)`` for a cell that finished, ``(job, None, reason)`` for one that failed.

    Example:
        >>> for job, run_id, error in fit_in_subprocesses(jobs, 4, client, "1", Path("logs"), console):  # doctest: +SKIP
        ...     print(job.name, run_id or error)
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    waiting, running = list(jobs), []
    counts = {"done": 0, "failed": 0}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, _deferred_interrupts() as interrupted:
        bar = progress.add_task("", total=len(jobs))
        try:
            while waiting or running:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                while waiting and len(running) < workers:
                    running.append(_launch(waiting.pop(0), log_dir, console))
                for cell in [c for c in running if c.process.poll() is not None]:
                    running.remove(cell)
                    run_id, error = _outcome(cell, client, experiment_id, console)
                    counts["failed" if error else "done"] += 1
                    progress.advance(bar)
                    yield cell.job, run_id, error
                progress.update(bar, description=f"cells: {counts['done']} done, {len(running)} running, "
                                                 f"{counts['failed']} failed, {len(jobs)} total")
                time.sleep(0.5)
        finally:  # an interrupt, or the caller stopped early
            _stop(running)


def _launch(job: Job, log_dir: Path, console: Console) -> _Running:
    log = log_dir / job.log_name()
    root = str(Path(zoo.__file__).parents[1])  # the children run this zoo
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "COLUMNS": "200",  # rich's width in the log: an error message stays on one line (the failure's reason)
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    started_ms = int(time.time() * 1000)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "zoo.cli", *job.arguments], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)  # Ctrl-C reaches the parent only, which stops it
    console.print(f"[bold]run {job.name}[/bold] (pid {process.pid}): log {escape(str(log))}", highlight=False,
                  soft_wrap=True)
    return _Running(job, process, log, started_ms)


def _outcome(cell: _Running, client: Any, experiment_id: str, console: Console) -> tuple[str | None, str | None]:
    """``(run_id, None)`` when the child exited 0 and its finished run is found, else ``(None, reason)``."""
    code = cell.process.returncode
    if code == 0:
        runs = client.search_runs([experiment_id], f"attributes.status = 'FINISHED' AND "
                                                   f"attributes.start_time >= {cell.started_ms}",
                                  order_by=["attributes.start_time DESC"], max_results=1_000)
        run = find_finished(runs, cell.job.tags)
        if run is not None:
            return run.info.run_id, None
        reason = "exited 0 but no FINISHED MLflow run with its tags was found"
    else:
        reason = f"exit code {code}"
    tail = _tail(cell.log)
    if tail:
        reason += f": {tail[-1]}"
    console.print(f"[red]{cell.job.name} ended[/red], last lines of {escape(str(cell.log))}:", highlight=False,
                  soft_wrap=True)
    console.print("\n".join(f"  | {line}" for line in tail), markup=False, highlight=False, soft_wrap=True)
    return None, f"{reason} (log {cell.log})"


def _tail(log: Path) -> list[str]:
    """The last non-empty lines of a log."""
    lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-TAIL_LINES:]


def _stop(running: list[_Running]) -> None:
    """SIGINT to every running child's process group (its run ends as failed), SIGKILL after the grace."""
    for cell in running:
        _signal_group(cell.process, signal.SIGINT)
    deadline = time.monotonic() + GRACE_S
    for cell in running:
        try:
            cell.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(cell.process, signal.SIGKILL)
            cell.process.wait()
    running.clear()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the child and anything it started (env workers, reward workers)
    except ProcessLookupError:
        pass


@contextmanager
def _deferred_interrupts() -> Iterator[threading.Event]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP only set the returned event (the loop then stops the
    children and raises KeyboardInterrupt), so that no interrupt lands between starting a child and
    recording it; a signal the process ignores (``nohup``) or handles itself is left alone."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield requested
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    ours = [sig for sig, handler in previous.items() if handler in (signal.SIG_DFL, signal.default_int_handler)]

    def request_stop(signum: int, frame: Any) -> None:
        requested.set()

    for sig in ours:
        signal.signal(sig, request_stop)
    try:
        yield requested
    finally:
        for sig in ours:
            signal.signal(sig, previous[sig])
