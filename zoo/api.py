"""Discovery functions of the public API."""

from __future__ import annotations


def list_scenarios() -> list[str]:
    """Names accepted by ``zoo.make_env``.

    Example:
        >>> import zoo
        >>> "highway-fast" in zoo.list_scenarios()
        True
    """
    from zoo.envs.presets import SCENARIOS

    return SCENARIOS.names()


def list_agents() -> list[str]:
    """Names of the RL algorithms (``zoo.agents.<Name>`` in recipes)."""
    from zoo.agents import AGENTS

    return AGENTS.names()
