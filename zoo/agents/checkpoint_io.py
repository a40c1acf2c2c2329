"""Checkpoint files of a training run: atomic writes, finding the run to resume, one writer per run folder.

Lightning's own ``TorchCheckpointIO`` writes through fsspec's transaction: the bytes go to a file made by
``tempfile.mkstemp()`` (in ``$TMPDIR``) and are then ``shutil.move``-d onto the checkpoint. When ``$TMPDIR``
and the run folder are on different file systems that move is a copy, and a process killed during it
leaves a truncated ``last.ckpt`` where a valid one was. :class:`AtomicCheckpointIO` writes beside the
target instead, flushes it to disk and renames it over the target (``os.replace``, atomic on POSIX): a
reader sees the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zoo.errors import ZooError

#: checkpoint file a resumed run continues from (Lightning's ``ModelCheckpoint(save_last=True)``)
LAST = "last.ckpt"
#: lock file in a run folder, held by the training process writing to it (it holds that process's pid)
RUN_LOCK = "run.lock"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that never leaves a half-written checkpoint under the final name.

    Example:
        >>> trainer = L.Trainer(plugins=[AtomicCheckpointIO()])  # doctest: +SKIP
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        directory = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _remove_stale_partials(path: Path) -> None:
    """Remove the partial files of writers that no longer run: a killed process skips its own clean-up, and each
    leftover is a whole checkpoint's size."""
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        pid = stale.name[len(path.name) + 2:-len(".partial")]
        if pid.isdigit() and not _process_exists(int(pid)):
            stale.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def find_last_checkpoint(root: str | Path, experiment: str) -> Path | None:
    """The most recently written ``last.ckpt`` of ``experiment``'s runs under ``root``, or ``None``.

    The zoo keeps each run's checkpoints in ``<root>/<experiment>/<MLflow run id>/checkpoints/``.

    Example:
        >>> find_last_checkpoint("runs", "sac_highway")  # doctest: +SKIP
        PosixPath('runs/sac_highway/3f2a…/checkpoints/last.ckpt')
    """
    candidates = list(Path(root, experiment).glob(f"*/checkpoints/{LAST}"))
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


@contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold a run folder for this process while it trains: a second ``zoo fit`` of the same run (two resumes,
    or a resume of a run still training) would interleave its checkpoints and MLflow run with this one's.

    The lock is an OS file lock on ``<folder>/run.lock`` (released when the process ends, even killed); the file
    names the holder's pid and stays behind.

    Raises:
        ZooError: another process holds the folder (its pid named).

    Example:
        >>> with run_lock("runs/sac_highway/3f2a…"):  # doctest: +SKIP
        ...     trainer.fit(agent, ckpt_path="runs/sac_highway/3f2a…/checkpoints/last.ckpt")
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / RUN_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = (folder / RUN_LOCK).read_text().strip() or "unknown"
        raise ZooError(f"run folder {folder} is in use by another training process (pid {holder}); wait for it to "
                       "end or stop it, then resume") from None
    try:
        (folder / RUN_LOCK).write_text(f"{os.getpid()}\n")  # the lock is on the file, not its contents
        yield
    finally:
        lock.release()
