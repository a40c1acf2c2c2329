"""The zoo's user-facing errors and warnings, and how to find the user error behind a library's wrapping."""

from __future__ import annotations


class ZooError(ValueError):
    """A user error: bad name, bad value, missing file. The CLI prints it without a traceback."""


class ZooWarning(UserWarning):
    """Something works but may not be what the user expects (e.g. a policy pinned to other reward-model weights)."""
