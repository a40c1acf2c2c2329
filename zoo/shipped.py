"""Where the data the zoo ships lies: the model folders (``checkpoints/``) and the recipes (``recipes/``).

In a checkout they are top-level folders beside the ``zoo`` package. A wheel (``pip install .``, or a built wheel)
carries them inside the package, as ``zoo/checkpoints`` and ``zoo/recipes``: pyproject.toml maps the packages
``zoo.checkpoints`` and ``zoo.recipes`` to the top-level folders. Every lookup of them goes through here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _shipped(name: str) -> Path:
    """``zoo/<name>`` in an installed package, else ``<checkout>/<name>`` beside the ``zoo`` package."""
    package = Path(str(files("zoo"))).resolve()
    installed = package / name
    if installed.is_dir() or not (package.parent / "pyproject.toml").is_file():
        return installed
    return package.parent / name  # a checkout (an editable install, or the source tree on PYTHONPATH)


def checkpoints_dir() -> Path:
    """The folder of the shipped models, one ``<name>/`` folder each (weights, config, ``zoo.json`` card)."""
    return _shipped("checkpoints")


def recipes_dir() -> Path:
    """The folder of the shipped recipes, ``<name>.yaml`` each (``zoo fit --config <name>`` finds them), with the base
    recipes under ``base/`` and the reward fragments under ``rewards/`` (:mod:`zoo.composition`)."""
    return _shipped("recipes")


def recipe_names() -> list[str]:
    """Names of the shipped recipes (paths from the recipes folder without ``.yaml``: ``quickstart``, and the base
    recipes and reward fragments ``base/sac``, ``rewards/vlm-rl``): what ``zoo fit --config`` accepts by name."""
    folder = recipes_dir()
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml")) \
        if folder.is_dir() else []


def shipped_recipe(name: str) -> Path | None:
    """The shipped recipe ``name`` (``quickstart``, ``quickstart.yaml``, ``base/sac.yaml``); ``None`` when there is
    none."""
    stem = name[:-len(".yaml")] if name.endswith(".yaml") else name
    return recipes_dir() / f"{stem}.yaml" if stem in recipe_names() else None
