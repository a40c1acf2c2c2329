"""The model zoo: everything about zoo models in one package.

One public way to load each kind of model, from any source :func:`resolve_model` takes (a zoo name
``family.tag`` or ``family``, a folder, ``models:/name@alias``, ``models:/name/version``, ``runs:/<id>/<path>``,
``random:<family>-<size>``, a cached Hugging Face hub id):

* reward models: ``zoo.create_reward_model(source, ...)`` (:mod:`zoo.rewards.factory`);
* policies: ``zoo.load_policy(source)`` (:mod:`zoo.api`; policy folders: :mod:`zoo.hub.policies`);
* detectors and describers: by name inside a reward's gate and describer (:mod:`zoo.perception`, :mod:`zoo.vlm`).

Rooms: :mod:`~zoo.hub.cards` (the ``zoo.json`` schema: cards are data), :mod:`~zoo.hub.resolve` (the one resolver,
the shipped models, weight digests), :mod:`~zoo.hub.packaging` (writing and completing model folders),
:mod:`~zoo.hub.policies` (policy folders), :mod:`~zoo.hub.pins` (a policy's pins on its reward models and scenario),
:mod:`~zoo.hub.mlflow_registry` (register and download through the MLflow model registry),
:mod:`~zoo.hub.registration` (``zoo register``: any source as a model folder, registered),
:mod:`~zoo.hub.pyfunc` (the pyfunc entry point MLflow runs for a registered model) and :mod:`~zoo.hub.catalog`
(``zoo models list`` and ``info``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "list_models": "zoo.hub.resolve",
    "resolve_model": "zoo.hub.resolve",
    "model_weights_digest": "zoo.hub.resolve",
    "read_card": "zoo.hub.cards",
    "save_policy_folder": "zoo.hub.policies",
    "load_policy_folder": "zoo.hub.policies",
    "register_model": "zoo.hub.mlflow_registry",
    "download_model": "zoo.hub.mlflow_registry",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # imports stay lazy: the registry functions import MLflow, the policies torch
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.hub' has no attribute {name!r}")
