"""Joining a Ray cluster: for the benchmark's cells (:mod:`zoo.benchmark.ray_cells`) and a run's remote env workers
(``collector: ray``, :mod:`zoo.agents.collect`). One place for the address rules, the usage stats kept off, the
one-line error naming the extra and the unreachable address, and the caller's SIGTERM handler kept."""

from __future__ import annotations

import os
import signal
import threading
from types import ModuleType
from typing import Any

from zoo.errors import ZooError
from zoo.extras import require


def connect(address: str | None, purpose: str, **init: Any) -> ModuleType:
    """``ray.init(address, **init)`` and the ``ray`` module; the caller ends it with ``ray.shutdown()``.

    Ray's usage statistics stay off (nothing goes to the network), and Ray's own SIGTERM handler (a bare exit) is
    taken back, so SIGTERM stops the job as Ctrl-C does.

    Args:
        address: the cluster: host:port of the head, ``ray://host:10001`` (Ray Client), ``auto`` (the cluster this
            machine belongs to) or ``local`` (a Ray instance started for this job, stopped after it); default
            (``None``): ``RAY_ADDRESS``, else the last ``ray start`` on this machine, else local.
        purpose: what needs Ray, for the error when it is not installed (``"collector: ray"``).
        **init: more ``ray.init`` arguments (``runtime_env`` …).

    Raises:
        ZooError: ray is not installed (naming the extra), or nothing answers at ``address``.
    """
    ray = require("ray", purpose)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=address, **init)
    except ConnectionError as err:
        raise ZooError(f"cannot connect to the Ray cluster at {address!r}: {err}") from None
    if main:
        signal.signal(signal.SIGTERM, sigterm)
    return ray
