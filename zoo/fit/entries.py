"""Recipe entries as the zoo compares them: the class an entry names, and its values as plain data."""

from __future__ import annotations

import importlib
from dataclasses import asdict, is_dataclass


def named_class(entry) -> type | None:
    """The class of a recipe entry (an instance, or ``class_path``/``init_args``); ``None`` if it names none
    that imports (jsonargparse reports a bad class path itself when it builds the component)."""
    if not hasattr(entry, "get"):
        return type(entry) if entry is not None and not isinstance(entry, (bool, str, list)) else None
    module, _, name = str(entry.get("class_path") or "").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name, None) if module else None
    except ImportError:
        return None
    return cls if isinstance(cls, type) else None


def plain(value):
    """Namespaces and dataclasses as dicts, tuples as lists, for comparing recipe entries."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    elif is_dataclass(value):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
