"""Composed recipes: a recipe file that names the recipe files it is made of under ``compose:``.

LightningCLI takes several ``--config`` files, each overriding the ones before it (jsonargparse merges mappings
key by key; a component whose ``class_path`` changes keeps the earlier ``init_args`` its new class takes; a list is
replaced whole).
The zoo's recipes use that to keep one base recipe per algorithm (``recipes/base/``) and one fragment per reward
(``recipes/rewards/``). A composed recipe writes such a chain down in one file::

    # recipes/sac_vlmrl_highway.yaml
    compose: [base/sac.yaml, rewards/vlm-rl.yaml]
    trainer:
      logger:
        init_args:
          experiment_name: sac_vlmrl_highway

and ``zoo fit --config recipes/sac_vlmrl_highway.yaml`` runs as ``zoo fit --config recipes/base/sac.yaml --config
recipes/rewards/vlm-rl.yaml --config '<the file's other keys>'``. The parts are paths from the composed file's
folder and may be composed recipes themselves; ``${...}`` interpolations resolve within one file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from zoo.errors import ZooError

#: the key of a composed recipe that lists its parts
COMPOSE_KEY = "compose"
_CONFIG_FLAGS = ("-c", "--config")


def _is_file(value: str) -> bool:
    """Whether ``value`` names a file (an inline YAML string may be too long to be a path at all)."""
    try:
        return Path(value).is_file()
    except OSError:
        return False


def config_sources(value: str, _within: frozenset[Path] = frozenset()) -> list[str]:
    """The ``--config`` values that ``value`` stands for: itself, or, for a composed recipe, its parts' sources
    in order and then its own other keys as a YAML string.

    Raises:
        ZooError: ``compose`` is not a list of file names, names a file that does not exist, or loops.

    Example:
        >>> config_sources("recipes/sac_highway.yaml")  # doctest: +SKIP
        ['recipes/base/sac.yaml', 'recipes/rewards/engineered.yaml', 'trainer: ...']
    """
    if not _is_file(value):
        return [value]
    path = Path(value)
    try:
        recipe = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):  # not a recipe of ours: LightningCLI says what is wrong with it
        return [value]
    if not isinstance(recipe, dict) or COMPOSE_KEY not in recipe:
        return [value]
    parts = recipe.pop(COMPOSE_KEY)
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        raise ZooError(f"{value}: `{COMPOSE_KEY}` must list recipe files (paths from {path.parent}), got {parts!r}")
    here = path.resolve()
    if here in _within:
        raise ZooError(f"{value} is composed of itself (through {', '.join(sorted(map(str, _within)))})")
    sources = []
    for part in parts:
        part_path = path.parent / part
        if not part_path.is_file():
            raise ZooError(f"{value}: `{COMPOSE_KEY}` names {part!r}, which is no file ({part_path})")
        sources += config_sources(str(part_path), _within | {here})
    if recipe:
        sources.append(yaml.safe_dump(recipe, sort_keys=False))
    return sources


def expand_composed(argv: list[str]) -> list[str]:
    """``argv`` of ``zoo fit`` with each ``--config`` of a composed recipe replaced by one ``--config`` per source
    (:func:`config_sources`), in order; every other argument as it was.

    Example:
        >>> expand_composed(["fit", "--config", "recipes/sac_highway.yaml", "--trainer.max_steps=10"])  # doctest: +SKIP
        ['fit', '--config', 'recipes/base/sac.yaml', '--config', 'recipes/rewards/engineered.yaml', '--config',
         'trainer: ...', '--trainer.max_steps=10']
    """
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, _, value = arg.partition("=")
        if flag not in _CONFIG_FLAGS:
            out.append(arg)
            continue
        value = value if "=" in arg else next(args, None)
        if value is None:  # a trailing --config: LightningCLI says what is missing
            out.append(arg)
            continue
        for source in config_sources(value):
            out += ["--config", source]
    return out
