"""The user error behind a failed ``zoo fit``: jsonargparse, OmegaConf and torch wrap or raise it in their own words.

A :class:`~zoo.errors.ZooError` raised by the zoo's own code speaks for itself (:func:`zoo.errors.user_error` finds
it); here the libraries' errors about a recipe or a checkpoint are turned into one.
"""

from __future__ import annotations

from argparse import ArgumentError

from zoo.errors import ZooError


def recipe_error(err: BaseException | None) -> ZooError | None:
    """A :class:`ZooError` for the library error that comes first in ``err``'s chain (``err``, its cause or context,
    and so on): a recipe key or value jsonargparse refused, a recipe's ``${...}`` that loops or points nowhere, a
    checkpoint whose weights do not fit the agent. ``None`` where a ``ZooError`` comes first, or none of these."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ZooError):
            return None
        if isinstance(err, ArgumentError) or type(err).__name__ == "ArgumentError":
            return ZooError(summarize_argument_error(str(err)))
        if type(err).__module__.startswith("omegaconf."):  # a recipe's ${...} that loops or points nowhere
            key = getattr(err, "full_key", None)
            message = (getattr(err, "msg", None) or str(err)).strip().splitlines()[0]
            return ZooError(f"bad interpolation in the recipe{f' at {key}' if key else ''}: {message}")
        if isinstance(err, RuntimeError) and "Error(s) in loading state_dict" in str(err):
            detail = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
            return ZooError(f"the checkpoint does not match the agent the recipe describes ({detail[:300]})")
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def summarize_argument_error(message: str) -> str:
    """jsonargparse's errors for a recipe key list every alternative it tried; keep the informative lines."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    noise = ("Expected a <class 'NoneType'>", "Given value type", "Given value:", "Subtypes:", "Errors:",
             "Does not validate against any of the Union subtypes")
    useful = [line.lstrip("- ") for line in lines if not line.lstrip("- ").startswith(noise)]
    text = "; ".join(dict.fromkeys(useful)).replace(":; ", ": ")
    for package, names in (("zoo.agents", _agent_names), ("zoo.rewards", _reward_names)):
        if f"module '{package}' has no attribute" in text:
            text += f". Valid: {', '.join(f'{package}.{n}' for n in names())}"
    return text + "  (see `zoo fit --help`)"


def _agent_names() -> list[str]:
    from zoo.agents import AGENTS  # lazy: would load lightning, torchrl, tensordict

    return AGENTS.names()


def _reward_names() -> list[str]:
    import zoo.rewards  # lazy: would load torchrl, tensordict, torch

    return sorted(n for n in zoo.rewards.__all__ if n.endswith("Reward") and n != "VLMReward")
