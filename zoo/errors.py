"""The zoo's user-facing errors and warnings, and how to find the user error behind a library's wrapping."""

from __future__ import annotations


class ZooError(ValueError):
    """A user error: bad name, bad value, missing file. The CLI prints it without a traceback."""


class UsageError(ZooError):
    """Command-line options out of range or that do not go together: the ``zoo`` command answers with its usage."""


class ZooWarning(UserWarning):
    """Something works but may not be what the user expects (e.g. a policy pinned to other reward-model weights)."""


def user_error(err: BaseException | None) -> ZooError | None:
    """The :class:`ZooError` behind ``err``: ``err`` itself, or the one a library wrapped (its cause or context, and
    so on; jsonargparse and Lightning wrap errors raised while they build or run the zoo's components)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ZooError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
