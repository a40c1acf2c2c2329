"""``zoo register``: any model source as a zoo model folder, registered in the MLflow model registry
(:func:`zoo.hub.mlflow_registry.register_model`); an agent checkpoint is written as a policy folder first."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from zoo.errors import ZooError
from zoo.hub.mlflow_registry import download_model, register_model
from zoo.hub.resolve import shipped_models, shipped_name
from zoo.tracking import tracking_uri, ui_command
from zoo.tracking.settings import _RUN_ID


def register(source: str, *, as_: str, alias: str | None = None, summary: str | None = None,
             allow_pickle: bool = False) -> None:
    """Register a zoo model in the MLflow model registry.

    The registry of MLFLOW_TRACKING_URI, else the local store ./mlflow.db; the model is registered as a pyfunc
    model whose artifacts are the model folder's files.

    Args:
        source: zoo model folder (with zoo.json), agent checkpoint (.ckpt), training run (runs:/<run_id>),
            models:/ URI or zoo model name
        as_: registered model name
        alias: alias to point at the new version (e.g. champion)
        summary: card summary of a policy exported from a checkpoint
        allow_pickle: also read a checkpoint that holds pickled objects (runs code from the file: only for a
            source you trust; default: weights_only loading)
    """
    with tempfile.TemporaryDirectory(prefix="zoo-register-") as tmp:
        version = register_model(model_folder(source, Path(tmp), summary, allow_pickle), as_, alias=alias)
    ref = f"models:/{version.name}@{alias}" if alias else f"models:/{version.name}/{version.version}"
    aliased = f" (alias @{alias})" if alias else ""
    print(f"registered {version.name} version {version.version}{aliased}\n"
          f"load it: zoo.create_reward_model(\"{ref}\") / zoo.load_policy(\"{ref}\"), or without the zoo's "
          f"registry: mlflow.pyfunc.load_model(\"{ref}\")")
    Console(stderr=True).print(f"store: {tracking_uri()}; UI: {ui_command()}", highlight=False)


def model_folder(source: str, tmp: Path, summary: str | None, allow_pickle: bool = False) -> Path:
    """A zoo model folder for ``source``: the folder itself, a checkpoint or training run exported as a policy folder
    under ``tmp``, a registered version downloaded, or a shipped model's folder."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "zoo.json").is_file():
            raise ZooError(f"{source} is not a zoo model folder (no zoo.json)")
        return path
    if (path.is_file() and path.suffix == ".ckpt") or _RUN_ID.match(source):
        from zoo.agents.checkpoint import load_agent  # lazy: would load lightning, torchrl, tensordict
        from zoo.hub.policies import save_policy_folder  # lazy: would load lightning, torchrl, tensordict

        agent = load_agent(source, allow_pickle=allow_pickle)
        run = _RUN_ID.match(source)
        tag = run.group(2)[:8] if run else path.stem.replace(".", "-")
        algorithm, scenario = type(agent).__name__, agent.env_config.scenario
        return save_policy_folder(agent, tmp / "policy", f"{algorithm.lower()}-{scenario}.{tag}",
                                  summary or f"{algorithm} policy on {scenario}, from {source}")
    if source.startswith(("models:/", "runs:/")):
        return download_model(source)

    shipped = shipped_models()
    name = shipped_name(source, shipped)  # a name as `zoo models list` shows it, or its family
    if name is not None:  # register the shipped folder itself, not its completed cache copy
        return shipped[name]
    raise ZooError(f"cannot register {source!r}: give a zoo model folder (with zoo.json), a shipped model name "
                   f"({', '.join(shipped) or 'none shipped'}), a .ckpt checkpoint, runs:/<run_id> of a "
                   "training run, or a models:/ URI")
