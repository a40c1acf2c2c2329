"""Load a trained agent back from a Lightning checkpoint or an MLflow run, safely; export it as a policy folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.agents.hparams import check_hyperparameters
from zoo.registry import ZooError
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
    import pickle
    import re

    import torch

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
    classes = _agent_classes()
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


def _plain(value: Any) -> Any:
    """Recipe values as YAML-safe data: tuples as lists, dataclasses and namespaces as dicts."""
    from dataclasses import asdict, is_dataclass

    if hasattr(value, "as_dict"):
        value = value.as_dict()
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _agent_classes() -> dict[str, type]:
    """Registered agent classes by every class path a recipe or checkpoint may name."""
    from zoo.agents import AGENTS

    by_path = {f"{cls.__module__}.{cls.__name__}": cls for cls in map(AGENTS.get, AGENTS.names())}
    by_path.update({f"zoo.agents.{name}": AGENTS.get(name) for name in AGENTS.names()})
    return by_path


def save_policy_folder(agent, folder: str | Path, name: str, summary: str, training: dict | None = None,
                       metrics: dict | None = None) -> Path:
    """Export a trained agent as a zoo model folder of kind ``policy``.

    Writes ``zoo.json`` (the card, with the observation and action spec), ``model.safetensors`` (the
    agent's state dict), ``agent.yaml`` (its recipe entry: ``class_path`` and ``init_args``) and a
    ``README.md``. Nothing is pickled. The card and ``agent.yaml`` pin the reward's models by weights digest
    and the scenario preset's version (:mod:`zoo.agents.pins`), as they resolve when the folder is written:
    save a policy right after training it.

    Args:
        agent: a zoo agent (:class:`zoo.agents.Agent`).
        folder: where to write (created; files of the same names are replaced).
        name: card name, ``family.tag`` (e.g. ``dqn-highway.v1``).
        summary: one line for the card.
        training: how it was trained, for the card (e.g. ``command``, ``reward``, ``env_steps``, ``seed``).
        metrics: its held-out metrics, for the card (e.g. ``{"SR": 1.0, "CR": 0.0, "episodes": 20}``).

    Example:
        >>> save_policy_folder(zoo.load_agent("last.ckpt"), "exports/dqn", "dqn-highway.v1", "DQN on highway-fast")  # doctest: +SKIP
    """
    import json

    import yaml
    from safetensors.torch import save_file

    from zoo import keys
    from zoo.agents.pins import training_pins

    if not isinstance(name, str) or name.count(".") < 1 or not all(name.split(".")):
        raise ZooError(f"policy name must look like 'family.tag', got {name!r}")
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary.strip():
        raise ZooError(f"summary must be one non-empty line, got {summary!r}")
    hparams = dict(agent.hparams)
    class_path = hparams.pop("_class_path", f"{type(agent).__module__}.{type(agent).__name__}")
    hparams.pop("_instantiator", None)
    if class_path not in _agent_classes():
        raise ZooError(f"agent class {class_path!r} is not a registered zoo agent; known: "
                       f"{', '.join(sorted(_agent_classes()))}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Clones: TorchRL losses share tensors with the networks, and safetensors refuses shared storage.
    state = {k: v.detach().cpu().clone().contiguous() for k, v in agent.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    pins = training_pins(hparams.get("reward"), agent.env_config.scenario)
    entry = {"class_path": class_path, "init_args": _plain(hparams), "pins": pins}
    (folder / "agent.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    action = agent.action_spec
    card = {
        "name": name, "kind": "policy", "summary": summary.strip(),
        "policy": {"algorithm": type(agent).__name__, "scenario": agent.env_config.scenario,
                   "obs_key": agent.obs_key, "obs_shape": list(agent.obs_shape),
                   "obs_dtype": "uint8" if agent.obs_key == keys.PIXELS else "float32",
                   "action_shape": list(action.shape), "action_dtype": str(action.dtype).removeprefix("torch.")},
        "pins": pins,
        **({"training": _plain(training)} if training else {}),
        **({"metrics": _plain(metrics)} if metrics else {}),
    }
    (folder / "zoo.json").write_text(json.dumps(card, indent=2) + "\n")
    sections = [(f"# {name}\n\n{summary.strip()}\n\n"
                 f"A {type(agent).__name__} policy for the `{agent.env_config.scenario}` scenario "
                 f"({agent.env_config.action} actions): it reads `{agent.obs_key}` {list(agent.obs_shape)} and "
                 f"outputs actions {list(action.shape)} ({str(action.dtype).removeprefix('torch.')}).\n")]
    pinned = {**{f"reward model `{n}`": f"sha256 {d}" for n, d in pins["reward_models"].items()},
              f"scenario `{pins['scenario']['name']}`": f"preset version {pins['scenario']['version']}"}
    for title, values in (("Training", training), ("Trained with (pinned)", pinned), ("Held-out metrics", metrics)):
        if values:
            sections.append(f"## {title}\n\n" + "".join(f"* **{k}**: {_card_value(k, v)}\n" for k, v in values.items()))
    sections.append("```python\nimport zoo\n\nagent = zoo.load_policy(\"path/to/this/folder\")  # or its zoo name\n"
                    "td = agent.act(env.reset())\n```\n")
    (folder / "README.md").write_text("\n".join(sections))
    return folder


def _card_value(key: str, value: Any) -> str:
    if key == "command":
        return f"`{value}`"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def load_policy_folder(folder: str | Path, map_location: str = "cpu"):
    """Rebuild the agent of a policy folder written by :func:`save_policy_folder`.

    The class comes from ``agent.yaml`` and must be a registered zoo agent; the weights are read with
    ``safetensors`` (no pickle). The training reward recorded in ``agent.yaml`` is not rebuilt: acting
    does not need it. A pin in ``agent.yaml`` that no longer holds (a reward model's name now resolving to
    other weights, another scenario preset version) is warned about (:func:`zoo.agents.pins.warn_on_drift`).

    Example:
        >>> agent = load_policy_folder("exports/dqn")  # doctest: +SKIP
        >>> td = agent.act(env.reset())  # doctest: +SKIP
    """
    import yaml
    from safetensors.torch import load_file

    from zoo.agents.pins import warn_on_drift
    from zoo.registry import check_safetensors

    folder = Path(folder)
    for file in ("agent.yaml", "model.safetensors"):
        if not (folder / file).is_file():
            raise ZooError(f"{folder} is not a policy folder (no {file})")
    check_safetensors(folder)
    try:
        entry = yaml.safe_load((folder / "agent.yaml").read_text()) or {}
    except yaml.YAMLError as err:
        raise ZooError(f"{folder / 'agent.yaml'} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(entry, dict):
        raise ZooError(f"{folder / 'agent.yaml'} is not a recipe entry (class_path, init_args)")
    warn_on_drift(entry.get("pins"), folder.name)
    agent = build_acting_agent({"_class_path": entry.get("class_path"), **(entry.get("init_args") or {})},
                               folder / "agent.yaml")
    try:
        agent.load_state_dict(load_file(str(folder / "model.safetensors"), device=map_location))
    except RuntimeError as err:
        detail = str(err).strip().splitlines()
        raise ZooError(f"{folder / 'model.safetensors'} does not match the agent agent.yaml describes "
                       f"({(detail[1] if len(detail) > 1 else detail[0]).strip()[:300]})") from None
    return agent.to(map_location).eval()
