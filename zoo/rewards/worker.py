"""The asynchronous reward pipeline (DriveVLM-RL): a worker scores transitions out of band.

The method: docs/method.md#reward-pipeline.

The collector hands each collected batch to :meth:`RewardWorker.submit` and goes on stepping; a background
thread relabels the batch with the reward module (static + dynamic pathways, synthesis) and queues it; the
learner takes labelled batches with :meth:`RewardWorker.ready` and only then stores them in the replay
buffer. So the learner never samples an unlabelled reward: the paper writes rewards back into the buffer,
the zoo holds transitions until they are labelled, which gives the same data without a "not yet labelled"
state in the buffer (see docs/design-notes.md).

* **Order and exactly-once**: one thread labels the batches in submission order; every batch is handed out
  once, with its sequence number checked.
* **Back-pressure and staleness**: at most ``max_pending`` batches wait or are being labelled; ``submit``
  blocks beyond that, so the collector never runs more than ``max_pending`` batches ahead of the labels
  (labelled batches are handed out at the caller's next ``ready``, right after each ``submit``).
  Label lag is measured in seconds and in learner updates (policy versions) between collection and storage.
* **Errors and shutdown**: an exception in the worker is re-raised in the caller's thread at its next
  ``submit``/``ready``/``flush`` (chained to the original); :meth:`close` (also on Ctrl-C, through the
  agent's ``finally``) stops the thread and joins it.

PyTorch releases the GIL inside its kernels, so the thread overlaps the backbone's forward passes with the
simulator's Python.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from tensordict import TensorDictBase

from zoo.errors import ZooError


class RewardWorkerError(RuntimeError):
    """The reward worker failed; the original exception is the ``__cause__``."""


@dataclass
class _Job:
    sequence: int
    batch: TensorDictBase
    version: int
    submitted: float = field(default_factory=time.perf_counter)


_STOP = object()


class RewardWorker:
    """Labels collected batches with a reward module in a background thread.

    Args:
        reward: the reward module; called on each batch (relabels ``("next", "reward")`` and its terms).
        max_pending: batches waiting for or in labelling, at most (``submit`` blocks beyond).
        lag_window: batches the reported label lag is averaged over.

    Example:
        >>> with RewardWorker(reward, max_pending=4) as worker:  # doctest: +SKIP
        ...     for batch in collector:
        ...         worker.submit(batch, version=updates)
        ...         for labelled in worker.ready(version=updates):
        ...             buffer.extend(labelled)
    """

    def __init__(self, reward: Any, max_pending: int = 4, lag_window: int = 20) -> None:
        if max_pending < 1:
            raise ZooError(f"max_pending must be >= 1, got {max_pending}")
        self.reward = reward
        self.max_pending = max_pending
        self._slots = threading.BoundedSemaphore(max_pending)
        self._todo: queue.Queue[Any] = queue.Queue()
        self._done: queue.Queue[tuple[_Job, float]] = queue.Queue()
        self._error: BaseException | None = None
        self._submitted = 0
        self._handed_out = 0
        self.labelled_frames = 0
        self.blocked_s = 0.0  # time submit() waited for a free slot (back-pressure)
        self._lag_s: deque[float] = deque(maxlen=lag_window)
        self._lag_updates: deque[int] = deque(maxlen=lag_window)
        self.max_lag_updates = 0
        self._thread = threading.Thread(target=self._run, name="zoo-reward-worker", daemon=True)
        self._thread.start()

    # -- the worker thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._todo.get()
            if job is _STOP:
                return
            try:
                self.reward(job.batch)
            except BaseException as error:  # noqa: BLE001  handed to the caller's thread
                self._error = error
                return
            finally:
                self._slots.release()  # a submit() blocked on back-pressure goes on (or raises the error)
            self._done.put((job, time.perf_counter()))

    def _check(self) -> None:
        if self._error is not None:
            raise RewardWorkerError(f"the reward worker failed: {type(self._error).__name__}: {self._error}") \
                from self._error

    # -- the caller's side ------------------------------------------------------------------------
    def submit(self, batch: TensorDictBase, version: int = 0) -> None:
        """Queue ``batch`` for labelling; blocks while ``max_pending`` batches are pending.

        Args:
            batch: collected transitions (labelled in place).
            version: the learner's update count now, to measure staleness.
        """
        self._check()
        if not self._thread.is_alive():
            raise ZooError("the reward worker is closed")
        start = time.perf_counter()
        while not self._slots.acquire(timeout=0.1):
            self._check()
        self._check()
        self.blocked_s += time.perf_counter() - start
        self._todo.put(_Job(self._submitted, batch, version))
        self._submitted += 1

    def ready(self, version: int = 0, block: bool = False) -> list[TensorDictBase]:
        """Labelled batches not handed out yet, in submission order.

        Args:
            version: the learner's update count now (label lag in updates = ``version`` − the batch's).
            block: wait for at least one batch when some are pending.
        """
        out = []
        while True:
            self._check()
            try:
                job, finished = self._done.get(timeout=0.1 if block and not out and self.pending else 0)
            except queue.Empty:
                if block and not out and self.pending:
                    continue
                return out
            if job.sequence != self._handed_out:
                raise RewardWorkerError(f"batch {job.sequence} labelled out of order (expected {self._handed_out})")
            self._handed_out += 1
            self.labelled_frames += job.batch.numel()
            self._lag_s.append(finished - job.submitted)
            lag = version - job.version
            self._lag_updates.append(lag)
            self.max_lag_updates = max(self.max_lag_updates, lag)
            out.append(job.batch)

    def flush(self, version: int = 0) -> list[TensorDictBase]:
        """Wait until every submitted batch is labelled; return those not handed out yet."""
        out = []
        while self.pending:
            out += self.ready(version, block=True)
        return out

    @property
    def pending(self) -> int:
        """Batches submitted and not handed out yet (waiting, being labelled, or labelled)."""
        return self._submitted - self._handed_out

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread after the batch it is labelling; pending batches are dropped."""
        if self._thread.is_alive():
            self._todo.put(_STOP)
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise RewardWorkerError(f"the reward worker did not stop within {timeout} s")

    def stats(self) -> dict[str, float]:
        """Queue length, label lag (s and learner updates), batches labelled, time blocked on back-pressure."""
        def mean(xs: deque) -> float:
            return sum(xs) / len(xs) if xs else 0.0

        return {"queue_length": float(self.pending), "label_lag_s": mean(self._lag_s),
                "label_lag_updates": mean(self._lag_updates), "max_label_lag_updates": float(self.max_lag_updates),
                "labelled_batches": float(self._handed_out), "blocked_s": self.blocked_s}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
