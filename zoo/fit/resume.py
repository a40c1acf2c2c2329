"""``zoo fit --ckpt_path``: the last checkpoint of the recipe's experiment (``last``), refused when it describes
another agent than the recipe, and the values the user asked for kept over the checkpoint's."""

from __future__ import annotations

import inspect
from dataclasses import asdict

from rich.console import Console

from zoo.errors import ZooError
from zoo.fit.entries import named_class, plain

#: recipe entries that decide the networks' shapes: a checkpoint must agree on them
STRUCTURAL = ("env", "network", "hidden_sizes")


def resolve_last_checkpoint(config) -> None:
    """``--ckpt_path last``: the newest ``last.ckpt`` of the recipe's experiment, continued in the same MLflow run.

    Lightning's own ``"last"`` looks in the new run's checkpoint folder, which is empty: the zoo keeps
    checkpoints per MLflow run (``<default_root_dir>/<experiment>/<run id>/checkpoints``). Here the run is
    found, its checkpoint becomes ``ckpt_path`` and the logger resumes that run (same run id: metrics go on
    at the steps they had reached, checkpoints land in the same folder). With no checkpoint yet the fit
    starts from scratch, as Lightning does, and says so.
    """
    # lazy: would load lightning, torchrl, tensordict
    from zoo.agents.checkpoint_io import find_last_checkpoint

    logger = config.trainer.get("logger")
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    experiment = (init_args.get("experiment_name") if init_args is not None else None) or "zoo"
    root = config.trainer.get("default_root_dir") or "runs"
    found = find_last_checkpoint(root, experiment)
    if found is None:
        Console(stderr=True).print(f"--ckpt_path last: no {root}/{experiment}/*/checkpoints/last.ckpt yet; "
                                   "starting from scratch", highlight=False)
        config.ckpt_path = None
        return
    config.ckpt_path = str(found)
    from lightning.pytorch.loggers import MLFlowLogger  # lazy: lightning is slow to import

    logger_class = named_class(logger)
    if init_args is not None and logger_class is not None and issubclass(logger_class, MLFlowLogger):
        init_args.run_id = found.parents[1].name
    Console(stderr=True).print(f"resuming from {found}", highlight=False)


def check_checkpoint_matches_recipe(ckpt_path: str, model_config) -> None:
    """Refuse a checkpoint whose hyper-parameters are not plain data naming zoo components (Lightning hands them
    to the config parser next), or that describe another agent than the recipe."""
    from zoo.agents.checkpoint import read_checkpoint  # lazy: would load lightning, torchrl, tensordict
    from zoo.agents.hparams import check_hyperparameters  # lazy: would load lightning, torchrl, tensordict

    hparams = check_hyperparameters(read_checkpoint(ckpt_path).get("hyper_parameters", {}), f"checkpoint {ckpt_path}")
    recipe_class = model_config.get("class_path") if hasattr(model_config, "get") else None
    ckpt_class = hparams.get("_class_path")
    if recipe_class and ckpt_class and recipe_class.rsplit(".", 1)[-1] != ckpt_class.rsplit(".", 1)[-1]:
        raise ZooError(f"checkpoint {ckpt_path} holds a {ckpt_class} agent but the recipe asks for {recipe_class}")
    init_args = model_config.get("init_args") or {}
    for key in STRUCTURAL:
        ours, theirs = _structural(key, init_args.get(key)), _structural(key, hparams.get(key))
        if ours is not None and theirs is not None and ours != theirs:
            raise ZooError(f"checkpoint {ckpt_path} does not match the recipe: {key} is {theirs!r} in the checkpoint "
                           f"but {ours!r} in the recipe")


def explicit_init_args(model_config) -> dict:
    """The model arguments the recipe and command line set to something other than the agent's default, minus
    the structural ones (checked equal to the checkpoint's by :func:`check_checkpoint_matches_recipe`) and the
    reward (rebuilt from the checkpoint)."""
    from zoo.agents.checkpoint import agent_classes  # lazy: would load lightning, torchrl, tensordict

    cls = agent_classes().get(model_config.get("class_path") if hasattr(model_config, "get") else None)
    init_args = plain(model_config.get("init_args") or {}) if cls is not None else {}
    defaults = _signature_defaults(cls) if cls is not None else {}
    return {key: value for key, value in init_args.items()
            if key not in (*STRUCTURAL, "reward") and key in defaults and value != plain(defaults[key])}


def override_checkpoint_values(model_config, asked: dict) -> None:
    """Put the values the user asked for back over the checkpoint's, saying which ones changed."""
    init_args = model_config.init_args
    for key, value in asked.items():
        stored = plain(init_args.get(key))
        if stored != value:
            Console(stderr=True).print(f"resume: {key} = {value!r} (the checkpoint's run had {stored!r})",
                                       highlight=False, markup=False)
            init_args[key] = value


def _signature_defaults(cls: type) -> dict:
    """Default of every keyword argument of ``cls`` and the base classes its ``**kwargs`` reach."""
    defaults: dict = {}
    for base in cls.__mro__:
        for name, parameter in inspect.signature(base.__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults.setdefault(name, parameter.default)
    return defaults


def _structural(key: str, value):
    """A structural recipe entry for comparison; an ``env`` written before a field existed gets its default."""
    value = plain(value)
    if key == "env" and isinstance(value, dict):
        from zoo.envs.config import EnvConfig  # lazy: would load gymnasium, numpy

        value = {**plain(asdict(EnvConfig())), **value}
    return value
