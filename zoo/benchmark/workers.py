"""Train grid cells as ``zoo fit`` subprocesses, up to N at once (``zoo benchmark --workers N``).

Each child is ``python -m zoo.cli fit <the cell's arguments>`` with one torch thread and
``OMP_NUM_THREADS=1`` / ``MKL_NUM_THREADS=1``, in its own process group, its stdout and stderr in one log
file per cell. A child that exits 0 has its run looked up in MLflow: the newest FINISHED run, started
after the launch, whose tags and run name are the cell's. On Ctrl-C (or SIGTERM / SIGHUP) every running
child's process group gets SIGINT, then SIGKILL after :data:`GRACE_S` seconds, and KeyboardInterrupt is
raised. :mod:`zoo.benchmark.ray_cells` starts the same children from Ray tasks (``zoo benchmark --backend ray``)
with :func:`launch`, :func:`outcome` and :func:`stop`.
"""

from __future__ import annotations

import ctypes
import json
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
from zoo.benchmark.grid import TAGS_OPTION, find_finished

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

    def with_tag(self, key: str, value: str) -> Job:
        """The same cell with one more tag on its MLflow run (in ``tags`` and in its ``zoo fit`` arguments)."""
        prefix = f"{TAGS_OPTION}="
        arguments = [f"{prefix}{json.dumps({**json.loads(a[len(prefix):]), key: value})}" if a.startswith(prefix)
                     else a for a in self.arguments]
        return Job(self.name, arguments, {**self.tags, key: value})


@dataclass
class Running:
    """A started cell: its job, ``zoo fit`` process, log file and start time (ms since the epoch)."""

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
    waiting, running = list(jobs), []
    with CellProgress(console, len(jobs)) as progress, deferred_interrupts() as interrupted:
        try:
            while waiting or running:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                while waiting and len(running) < workers:
                    running.append(launch(waiting.pop(0), log_dir, console))
                for cell in [c for c in running if c.process.poll() is not None]:
                    running.remove(cell)
                    run_id, error = outcome(cell, client, experiment_id, console)
                    progress.ended(failed=error is not None)
                    yield cell.job, run_id, error
                progress.show(running=len(running))
                time.sleep(0.5)
        finally:  # an interrupt, or the caller stopped early
            stop(running)


class CellProgress:
    """The console's progress line of a grid: cells done, running, failed, total (a bar on a terminal).

    Example:
        >>> with CellProgress(console, total=4) as progress:  # doctest: +SKIP
        ...     progress.ended(failed=False)
        ...     progress.show(running=2)
    """

    def __init__(self, console: Console, total: int) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.progress = Progress(*columns, console=console)
        self.bar = self.progress.add_task("", total=total)
        self.total, self.done, self.failed = total, 0, 0

    def __enter__(self) -> CellProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def ended(self, failed: bool) -> None:
        """Count a cell that ended."""
        self.failed += failed
        self.done += not failed
        self.progress.advance(self.bar)

    def show(self, running: int) -> None:
        """Update the line with the number of cells running now."""
        self.progress.update(self.bar, description=f"cells: {self.done} done, {running} running, "
                                                   f"{self.failed} failed, {self.total} total")


def launch(job: Job, log_dir: Path, console: Console, cwd: Path | None = None,
           die_with_parent: bool = False) -> Running:
    """Start ``job``'s ``zoo fit`` child (one thread, its own process group, its output in ``log_dir``).

    Args:
        job: the cell.
        log_dir: where its log goes (made if missing).
        console: where its start line goes (cell, pid, log).
        cwd: the child's working folder (default this process's): its ``runs/`` and default MLflow store.
        die_with_parent: on Linux, the child is killed (SIGKILL) when the thread that starts it ends, which is
            when this process dies, even by SIGKILL (``PR_SET_PDEATHSIG``; call it from a thread that lives as
            long as the process: a Ray task runs on its worker's main thread): a Ray worker that dies never
            leaves its cell training on. Elsewhere ignored.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / job.log_name()
    root = str(Path(zoo.__file__).parents[1])  # the children run this zoo
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "COLUMNS": "200",  # rich's width in the log: an error message stays on one line (the failure's reason)
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    started_ms = int(time.time() * 1000)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "zoo.cli", *job.arguments], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                   start_new_session=True,  # Ctrl-C reaches the parent only, which stops it
                                   preexec_fn=_death_signal_hook() if die_with_parent else None)
    console.print(f"[bold]run {job.name}[/bold] (pid {process.pid}): log {escape(str(log))}", highlight=False,
                  soft_wrap=True)
    return Running(job, process, log, started_ms)


def _death_signal_hook() -> Any:
    """A ``preexec_fn`` asking Linux for SIGKILL when the parent dies; ``None`` where ``prctl`` is missing.

    The function is resolved here, before the fork: the child only calls it (no import, no lookup). It checks
    that the parent is still the one that forked it (one that died in between left the child orphaned already).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return die_with_parent


def outcome(cell: Running, client: Any, experiment_id: str, console: Console) -> tuple[str | None, str | None]:
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


def stop(running: list[Running]) -> None:
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
def deferred_interrupts() -> Iterator[threading.Event]:
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
