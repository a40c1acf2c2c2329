"""Load a trained agent back from a Lightning checkpoint or an MLflow run, safely."""

from __future__ import annotations

import re
from pathlib import Path

from zoo.registry import ZooError

_RUN_ID = re.compile(r"^(runs:/)?([0-9a-f]{32})/?$")


def resolve_checkpoint(source: str | Path) -> Path:
    """A local checkpoint path for ``source``: a ``.ckpt`` file, or an MLflow run (``runs:/<id>`` or ``<id>``)."""
    text = str(source)
    path = Path(text)
    if path.is_file():
        return path
    match = _RUN_ID.match(text)
    if match:
        from zoo.tracking import find_checkpoint

        return find_checkpoint(match.group(2))
    raise ZooError(f"checkpoint {text!r} not found: give a .ckpt file or an MLflow run id (runs:/<run_id>)")


def load_agent(source: str | Path, map_location: str = "cpu"):
    """Rebuild a trained agent from ``source`` (checkpoint file or MLflow run).

    Checkpoints are read with ``torch.load(weights_only=True)``: no pickled code is executed. The
    agent class and its arguments come from the recipe saved in the checkpoint.

    Example:
        >>> agent = zoo.load_agent("runs/quickstart/checkpoints/last.ckpt")  # doctest: +SKIP
        >>> td = agent.act(env.reset())  # doctest: +SKIP
    """
    import torch

    from zoo.agents import AGENTS

    path = resolve_checkpoint(source)
    try:
        hparams = torch.load(path, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    except Exception as err:  # a truncated, corrupted or pickle-only file
        raise ZooError(f"cannot read checkpoint {path}: {err}") from None
    class_path = hparams.get("_class_path", "")
    by_path = {f"{cls.__module__}.{cls.__name__}": cls for cls in map(AGENTS.get, AGENTS.names())}
    by_path.update({f"zoo.agents.{name}": AGENTS.get(name) for name in AGENTS.names()})
    if class_path not in by_path:
        raise ZooError(f"checkpoint {path} names agent class {class_path!r}; known: {', '.join(sorted(by_path))}")
    try:
        return by_path[class_path].load_from_checkpoint(path, map_location=map_location, weights_only=True)
    except RuntimeError as err:
        if "state_dict" in str(err) or "size mismatch" in str(err):
            raise ZooError(f"checkpoint {path} does not match the agent its recipe describes: {err}") from None
        raise ZooError(f"cannot load checkpoint {path}: {err}") from None
    except (KeyError, ValueError, EOFError) as err:
        raise ZooError(f"cannot load checkpoint {path}: {err}") from None
