"""Discovery functions of the public API."""

from __future__ import annotations

from pathlib import Path

from zoo.errors import ZooError
from zoo.hub.resolve import resolve_model


def list_scenarios() -> list[str]:
    """Names accepted by ``zoo.make_env``.

    Example:
        >>> import zoo
        >>> "highway-fast" in zoo.list_scenarios()
        True
    """
    from zoo.envs.presets import SCENARIOS  # lazy: would load gymnasium, numpy

    return SCENARIOS.names()


def list_agents() -> list[str]:
    """Names of the RL algorithms (``zoo.agents.<Name>`` in recipes)."""
    from zoo.agents import AGENTS  # lazy: would load lightning, torchrl, tensordict

    return AGENTS.names()


def load_policy(source: str, map_location: str = "cpu"):
    """A trained policy by zoo name, ``models:/`` URI, policy folder, Lightning checkpoint or ``runs:/`` run.

    Example:
        >>> agent = zoo.load_policy("models:/highway-dqn@champion")  # doctest: +SKIP
        >>> td = agent.act(env.reset())  # doctest: +SKIP
    """
    path = Path(str(source)).expanduser()
    if path.is_file() or str(source).startswith("runs:/"):  # a Lightning checkpoint
        from zoo.agents.checkpoint import load_agent  # lazy: would load lightning, torchrl, tensordict

        return load_agent(source, map_location=map_location)
    resolved = resolve_model(source)
    if (resolved.card or {}).get("kind") != "policy":
        kind = (resolved.card or {}).get("kind", "plain Hugging Face")
        raise ZooError(f"{source!r} is a {kind} model, not a policy; see zoo.list_models('policy')")
    from zoo.hub.policies import load_policy_folder  # lazy: would load lightning, torchrl, tensordict

    return load_policy_folder(resolved.path, map_location=map_location)

