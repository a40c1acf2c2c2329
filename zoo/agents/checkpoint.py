"""Load a trained agent back from a Lightning checkpoint or an MLflow run, safely; export it as a policy folder."""

from __future__ import annotations

import pickle
import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.agents import AGENTS
from zoo.agents.hparams import check_hyperparameters
from zoo.errors import ZooError
from zoo.tracking.settings import resolve_checkpoint


def read_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict[str, Any]:
    """The contents of a Lightning checkpoint, read with ``torch.load(weights_only=True)``.

    Args:
        path: a ``.ckpt`` file.
        allow_pickle: also read a checkpoint that holds pickled objects (``weights_only=False``): this runs
            code from the file, so only for checkpoints of a source you trust.

    Raises:
        ZooError: the file is truncated or corrupted, or needs pickle and ``allow_pickle`` is off.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, KeyError, AttributeError) as err:
        text = str(err)
        refused = re.search(r"GLOBAL ([\w.]+)", text)  # weights_only refused a class or function: needs pickle
        if refused and not allow_pickle:
            raise ZooError(f"checkpoint {path} holds pickled objects ({refused.group(1)}); the zoo never "
                           "unpickles a file by default: only if you trust its source, load it with "
                           "allow_pickle=True (zoo evaluate and zoo register: --allow-pickle)") from None
        first_line = text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__
        raise ZooError(f"cannot read checkpoint {path} (truncated or corrupted?): {first_line}") from None


def load_agent(source: str | Path, map_location: str = "cpu", allow_pickle: bool = False):
    """Rebuild a trained agent from ``source`` (checkpoint file or MLflow run), for acting: evaluation, export.

    Checkpoints are read with ``torch.load(weights_only=True)``: no pickled code is executed unless
    ``allow_pickle`` (see :func:`read_checkpoint`). The agent class and its arguments come from the
    hyper-parameters saved in the checkpoint, checked first (:func:`zoo.agents.hparams.check_hyperparameters`).
    The training reward they record is not rebuilt (acting does not need it, and a reward loads a model): it
    stays in ``agent.hparams["reward"]`` as data, and ``agent.reward`` is ``None``.

    Example:
        >>> agent = zoo.load_agent("runs/quickstart/checkpoints/last.ckpt")  # doctest: +SKIP
        >>> td = agent.act(env.reset())  # doctest: +SKIP
    """
    path = resolve_checkpoint(source)
    checkpoint = read_checkpoint(path, allow_pickle)
    agent = build_acting_agent(checkpoint.get("hyper_parameters", {}), f"checkpoint {path}")
    try:
        agent.on_load_checkpoint(checkpoint)  # refuses weights of other shapes, naming them
        agent.load_state_dict(checkpoint.get("state_dict", {}))
    except (ZooError, RuntimeError) as err:
        first_line = str(err).strip().splitlines()[0][:300]
        raise ZooError(f"checkpoint {path} does not match the agent its recipe describes ({first_line})") from None
    return agent.to(map_location)


def build_acting_agent(hparams: Any, source: str | Path):
    """The agent that stored ``hparams`` (``_class_path`` and init arguments) describe, without its training reward.

    ``hparams`` are checked first (:func:`zoo.agents.hparams.check_hyperparameters`); the reward entry is kept in
    the agent's hyper-parameters as the record it is (policy cards and ``agent.yaml`` repeat it), never built.

    Raises:
        ZooError: not a registered zoo agent, hyper-parameters that are not plain data naming zoo components, or
            arguments that do not fit the agent.
    """
    classes = agent_classes()
    class_path = hparams.get("_class_path") if isinstance(hparams, dict) else None
    if class_path not in classes:
        raise ZooError(f"{source} names agent class {class_path!r}; known: {', '.join(sorted(classes))}")
    init_args = {k: v for k, v in check_hyperparameters(hparams, source).items()
                 if k not in ("_class_path", "_instantiator")}
    reward_entry = init_args.get("reward")
    try:
        agent = classes[class_path](**{k: v for k, v in init_args.items() if k != "reward"})
    except TypeError as err:
        raise ZooError(f"{source} does not fit {class_path}: {err}") from None
    agent.hparams["reward"] = reward_entry
    return agent


POLICY_FILES = ("zoo.json", "README.md", "agent.yaml", "model.safetensors")


def plain_data(value: Any) -> Any:
    """Recipe values as YAML-safe data: tuples as lists, dataclasses and namespaces as dicts."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    return value


def agent_classes() -> dict[str, type]:
    """Registered agent classes by every class path a recipe or checkpoint may name."""
    by_path = {f"{cls.__module__}.{cls.__name__}": cls for cls in map(AGENTS.get, AGENTS.names())}
    by_path.update({f"zoo.agents.{name}": AGENTS.get(name) for name in AGENTS.names()})
    return by_path
