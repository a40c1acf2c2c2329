"""A checkpoint's stored hyper-parameters are data: plain values naming zoo components only.

A checkpoint (or a policy folder's ``agent.yaml``) comes from anywhere: a download, an MLflow run. Its
hyper-parameters reach a config parser (jsonargparse, when ``zoo fit --ckpt_path`` resumes) that imports
whatever a ``class_path`` names, and loaders that switch on model code when ``trust_remote_code`` says so.
:func:`check_hyperparameters` runs before either sees them (docs/reliability.md, threat model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.hub.cards import CODE_KEYS, check_plain_data, code_key_refusal

#: packages whose classes a checkpoint may name in a ``class_path``: the zoo's component registries
COMPONENT_PACKAGES = ("zoo.agents.", "zoo.rewards.", "zoo.perception.", "zoo.envs.", "zoo.train.")
#: the one instantiator Lightning records for modules built by LightningCLI
INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"
#: hyper-parameters that are free-form dicts handed to a library (the env's highway-env ``config``): no
#: component entries at all
FREE_FORM = ("env",)
#: highway-env config keys whose value highway-env imports as a class, and the packages it may name
ENV_CLASS_KEYS = {"other_vehicles_type": ("highway_env.", "zoo.envs.")}
#: keys of a component entry (``{"class_path": ..., "init_args": {...}}``) as recipes and checkpoints write it
ENTRY_KEYS = {"class_path", "init_args", "dict_kwargs"}


def check_hyperparameters(hparams: Any, source: str | Path) -> dict[str, Any]:
    """Return ``hparams`` if it is plain data whose ``class_path`` entries name zoo components only.

    Refused, naming the key and ``source`` (e.g. ``"checkpoint runs/…/last.ckpt"``): anything but JSON-like data;
    a ``class_path`` outside :data:`COMPONENT_PACKAGES`, or anywhere inside :data:`FREE_FORM` hyper-parameters;
    other code keys (``__class__``, ``_target_`` …); ``trust_remote_code`` switched on; an ``other_vehicles_type``
    outside highway-env and the zoo; an instantiator other than LightningCLI's.

    Example:
        >>> check_hyperparameters({"_class_path": "zoo.agents.DQN", "gamma": 0.9}, "checkpoint last.ckpt")["gamma"]
        0.9
    """
    where = str(source)
    if not isinstance(hparams, dict):
        raise ZooError(f"{where} holds hyper-parameters of type {type(hparams).__name__}, not a mapping")
    if hparams.get("_instantiator", INSTANTIATOR) != INSTANTIATOR:
        raise ZooError(f"{where} names the instantiator {hparams['_instantiator']!r}; only {INSTANTIATOR} is accepted")
    if "_class_path" in hparams:
        _check_component(hparams["_class_path"], where, "_class_path")
    for key, value in hparams.items():
        if key not in ("_class_path", "_instantiator"):
            _check_value(value, where, key, free_form=key in FREE_FORM)
    return hparams


def _check_value(value: Any, where: str, at: str, free_form: bool) -> None:
    """Check one hyper-parameter value, recursively; ``at`` is its dotted key for the message."""
    if isinstance(value, dict):
        if "class_path" in value and not free_form and set(value) <= ENTRY_KEYS:
            _check_component(value["class_path"], where, f"{at}.class_path")
            value = {k: v for k, v in value.items() if k != "class_path"}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ZooError(f"{where} has a non-string key {key!r} at {at}")
            if key == "trust_remote_code" and item is False:  # a reward's recorded default: off
                continue
            if key in CODE_KEYS:
                raise ZooError(code_key_refusal(where, f"{at}.{key}"))
            if free_form and key in ENV_CLASS_KEYS:
                _check_env_class(item, where, f"{at}.{key}", ENV_CLASS_KEYS[key])
            _check_value(item, where, f"{at}.{key}", free_form)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, where, f"{at}.{i}", free_form)
    else:
        check_plain_data(value, where, f"{at}.")


def _check_component(class_path: Any, where: str, at: str) -> None:
    if not isinstance(class_path, str) or not class_path.startswith(COMPONENT_PACKAGES):
        raise ZooError(f"{where} names the class {class_path!r} at {at}; a checkpoint may name only the zoo's "
                       f"components ({', '.join(p + '*' for p in COMPONENT_PACKAGES)})")


def _check_env_class(value: Any, where: str, at: str, packages: tuple[str, ...]) -> None:
    if not isinstance(value, str) or not value.startswith(packages):
        raise ZooError(f"{where} sets {at} = {value!r}; highway-env imports it as a class, so only "
                       f"{', '.join(p + '*' for p in packages)} are accepted")
