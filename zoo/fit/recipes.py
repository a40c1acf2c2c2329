"""The recipes ``zoo fit --config`` names: a file, or a shipped recipe by name from any folder; a composed recipe
stands for its parts (:mod:`zoo.composition`)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from zoo.composition import expand_composed
from zoo.errors import ZooError
from zoo.shipped import recipe_names, shipped_recipe

#: a ``--config`` value that can only mean a shipped recipe: a bare file name, or ``recipes/<name>`` as the recipes'
#: own comments write it (anything else that names no shipped recipe, a path elsewhere or inline YAML, is left to
#: LightningCLI)
_RECIPE_NAME = re.compile(r"(?:recipes/)?[\w.-]+")


def shipped_recipes_by_name(argv: list[str]) -> list[str]:
    """``argv`` with each ``--config NAME`` that is no file in the working folder replaced by the shipped recipe
    ``NAME`` (``quickstart``, ``quickstart.yaml``, ``recipes/quickstart.yaml``, or a base recipe or reward fragment
    such as ``base/sac`` and ``recipes/rewards/vlm-rl.yaml``), so an installed zoo runs ``zoo fit --config quickstart``
    from any folder. A bare name that is neither raises a :class:`ZooError` naming the shipped recipes."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("-c", "--config") and i + 1 < len(out):
            at, value, prefix = i + 1, out[i + 1], ""
        elif arg.startswith("--config="):
            at, value, prefix = i, arg.partition("=")[2], "--config="
        else:
            continue
        if Path(value).is_file():
            continue
        name = value.removeprefix("recipes/")
        found = shipped_recipe(name)
        if found is None and not _RECIPE_NAME.fullmatch(value):  # a path elsewhere or inline YAML
            continue
        if found is None:
            close = difflib.get_close_matches(name.removesuffix(".yaml"), recipe_names(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ZooError(f"no recipe file {value!r} in the working folder ({Path.cwd()}) and no shipped recipe of "
                           f"that name{hint}; the shipped recipes: {', '.join(recipe_names())}")
        out[at] = prefix + str(found)
    return out


def recipe_arguments(argv: list[str]) -> list[str]:
    """The arguments of ``zoo fit`` as LightningCLI takes them: shipped recipes by name found, composed recipes
    expanded into their parts."""
    return expand_composed(shipped_recipes_by_name(argv))
