"""Optional dependencies (pyproject's extras): imported where needed, or refused in one line naming the extra.

Example:
    >>> onnx = require("onnx", "ONNX export")  # doctest: +SKIP
    ZooError: ONNX export needs the onnx package: pip install "drive-zoo[export]"
"""

from __future__ import annotations

import importlib
from types import ModuleType

from zoo.errors import ZooError

#: import name → (pip package, the extra of pyproject.toml that installs it)
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "stable_baselines3": ("stable-baselines3", "bench"),
    "ray": ("ray", "ray"),
}


def require(module: str, purpose: str) -> ModuleType:
    """Import the optional ``module``, or raise a :class:`ZooError` saying which extra installs it.

    Args:
        module: a key of :data:`OPTIONAL_MODULES`.
        purpose: what needs it, starting the message (``"ONNX export"``).

    Raises:
        ZooError: ``module`` is not installed. A module that is there but fails to import raises its own
            error: that is a broken install, which installing the extra would not fix.
    """
    package, extra = OPTIONAL_MODULES[module]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise ZooError(f'{purpose} needs the {package} package: pip install "drive-zoo[{extra}]"') from None
