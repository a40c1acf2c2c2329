"""Name registries, one per kind of component (scenarios, agents, rewards, networks).

A registry maps a name to an object (a class, a factory or a preset). Unknown names raise a
:class:`~zoo.errors.ZooError` that lists the valid names and suggests the closest ones, so a typo in a recipe
or on the command line is answered with the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from zoo.errors import ZooError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of one kind of component.

    Example:
        >>> reg = Registry("color")
        >>> reg.register("red", 1)
        1
        >>> reg.get("red")
        1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ZooError(unknown_choice(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def unknown_choice(kind: str, value: object, choices: list[str]) -> str:
    """The message for a value that is not among ``choices``: names the value, the choices, the closest."""
    close = difflib.get_close_matches(str(value), choices, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {value!r}.{hint} Valid choices: {', '.join(choices)}."


def check_choice(kind: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a :class:`ZooError` naming them."""
    if value not in choices:
        raise ZooError(unknown_choice(kind, value, list(choices)))
    return value
