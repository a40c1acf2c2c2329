"""Load a trained agent back from a Lightning checkpoint or an MLflow run, safely."""

from __future__ import annotations

from pathlib import Path

from zoo.registry import ZooError
from zoo.tracking.settings import resolve_checkpoint

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
    except (RuntimeError, ValueError, KeyError, EOFError) as err:
        first_line = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ZooError(f"checkpoint {path} does not match the agent its recipe describes ({first_line})") from None
