"""Policy folders: a trained agent written as a zoo model folder of kind ``policy`` (card, safetensors weights,
``agent.yaml``, README), and the agent rebuilt from one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_file, save_file

from zoo import keys
from zoo.agents.checkpoint import agent_classes, build_acting_agent, load_agent, plain_data
from zoo.errors import ZooError
from zoo.evaluation import EVAL_SEED_OFFSET
from zoo.hub.pins import training_pins, warn_on_drift
from zoo.hub.resolve import check_safetensors
from zoo.tracking import tracking_uri


def save_policy_folder(agent, folder: str | Path, name: str, summary: str, training: dict | None = None,
                       metrics: dict | None = None) -> Path:
    """Export a trained agent as a zoo model folder of kind ``policy``.

    Writes ``zoo.json`` (the card, with the observation and action spec), ``model.safetensors`` (the
    agent's state dict), ``agent.yaml`` (its recipe entry: ``class_path`` and ``init_args``) and a
    ``README.md``. Nothing is pickled. The card and ``agent.yaml`` pin the reward's models by weights digest
    and the scenario preset's version (:mod:`zoo.hub.pins`), as they resolve when the folder is written:
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
    if not isinstance(name, str) or name.count(".") < 1 or not all(name.split(".")):
        raise ZooError(f"policy name must look like 'family.tag', got {name!r}")
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary.strip():
        raise ZooError(f"summary must be one non-empty line, got {summary!r}")
    hparams = dict(agent.hparams)
    class_path = hparams.pop("_class_path", f"{type(agent).__module__}.{type(agent).__name__}")
    hparams.pop("_instantiator", None)
    if class_path not in agent_classes():
        raise ZooError(f"agent class {class_path!r} is not a registered zoo agent; known: "
                       f"{', '.join(sorted(agent_classes()))}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Clones: TorchRL losses share tensors with the networks, and safetensors refuses shared storage.
    state = {k: v.detach().cpu().clone().contiguous() for k, v in agent.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    pins = training_pins(hparams.get("reward"), agent.env_config.scenario)
    entry = {"class_path": class_path, "init_args": plain_data(hparams), "pins": pins}
    (folder / "agent.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    action = agent.action_spec
    card = {
        "name": name, "kind": "policy", "summary": summary.strip(),
        "policy": {"algorithm": type(agent).__name__, "scenario": agent.env_config.scenario,
                   "obs_key": agent.obs_key, "obs_shape": list(agent.obs_shape),
                   "obs_dtype": "uint8" if agent.obs_key == keys.PIXELS else "float32",
                   "action_shape": list(action.shape), "action_dtype": str(action.dtype).removeprefix("torch.")},
        "pins": pins,
        **({"training": plain_data(training)} if training else {}),
        **({"metrics": plain_data(metrics)} if metrics else {}),
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


def save_checkpoint_as_policy(source: str, *, name: str, summary: str, out: str, run: str | None = None,
                              command: str | None = None) -> None:
    """Write a trained policy as a zoo model folder with its card.

    Write a trained agent (Lightning checkpoint or runs:/<id>) as a policy folder (safetensors weights, agent.yaml,
    zoo.json card, README.md) that zoo.load_policy(name) loads once it sits under checkpoints/. The card gets the
    training command and reward, and the held-out metrics of an MLflow run.

    Args:
        source: a .ckpt file or runs:/<run id>
        name: card name, family.tag (e.g. sac-merge.benchmark)
        summary: one line for the card
        out: folder to write (e.g. checkpoints/<name>)
        run: MLflow run id whose eval/* metrics and benchmark tags go on the card (default: the run of a runs:/
            source)
        command: the command that trained it, for the card
    """
    agent = load_agent(source)
    hparams = agent.hparams
    reward = hparams.get("reward")
    training = {"command": command, "algorithm": type(agent).__name__, "scenario": agent.env_config.scenario,
                "action": agent.env_config.action, "env_steps": hparams.get("total_frames"),
                "reward": reward.get("class_path") if isinstance(reward, dict)
                else f"{type(reward).__module__}.{type(reward).__name__}" if reward is not None
                else "zoo.rewards.EngineeredReward (default)"}
    run_id = run or (source.removeprefix("runs:/").split("/")[0] if source.startswith("runs:/") else None)
    metrics = _run_metrics(run_id, training) if run_id else None
    folder = save_policy_folder(agent, out, name, summary, training={k: v for k, v in training.items() if v is not None},
                                metrics=metrics)
    print(f"wrote {folder} ({sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.1f} MB)")


def _run_metrics(run_id: str, training: dict[str, Any]) -> dict[str, Any]:
    """The held-out metrics (``eval/*``) of the MLflow run ``run_id`` for a policy's card; its benchmark tags
    (method, seed, machine) and id go into ``training``."""
    import mlflow  # lazy: mlflow is slow to import

    run = mlflow.MlflowClient(tracking_uri()).get_run(run_id)
    tags = run.data.tags
    training.update({k: tags[f"zoo.benchmark.{k}"] for k in ("method", "seed", "machine")
                     if f"zoo.benchmark.{k}" in tags}, run=run_id)
    metrics = {k.removeprefix("eval/"): v for k, v in sorted(run.data.metrics.items())
               if k.startswith("eval/") and not k.endswith("_std")}
    if not metrics:
        raise ZooError(f"run {run_id} has no eval/* metrics (train with zoo.callbacks.EvaluateAfterFit)")
    episodes = tags.get("zoo.benchmark.eval_episodes")
    metrics["episodes"] = int(episodes) if episodes is not None else "see the run"
    metrics["seeds"] = f"held out: {EVAL_SEED_OFFSET} + i"
    return metrics


def _card_value(key: str, value: Any) -> str:
    if key == "command":
        return f"`{value}`"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def load_policy_folder(folder: str | Path, map_location: str = "cpu"):
    """Rebuild the agent of a policy folder written by :func:`save_policy_folder`.

    The class comes from ``agent.yaml`` and must be a registered zoo agent; the weights are read with
    ``safetensors`` (no pickle). The training reward recorded in ``agent.yaml`` is not rebuilt: acting
    does not need it. A pin in ``agent.yaml`` that no longer holds (a reward model's name now resolving to
    other weights, another scenario preset version) is warned about (:func:`zoo.hub.pins.warn_on_drift`).

    Example:
        >>> agent = load_policy_folder("exports/dqn")  # doctest: +SKIP
        >>> td = agent.act(env.reset())  # doctest: +SKIP
    """
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
