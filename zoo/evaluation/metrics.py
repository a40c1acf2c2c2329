"""Driving metrics of the papers (docs/method.md#metrics), computed per episode and summarised over episodes.

Per episode (one rollout, time-major TensorDict of a single env):

* ``AS`` average speed, km/h, over the episode's steps;
* ``RC`` route completion, fraction of the scenario's route length (may exceed 1);
* ``TD`` total distance, m;
* ``CS`` collision speed, km/h: the ego speed at the start of the step in which it collided (highway-env
  brakes a crashed car within the step, so the speed after the step understates the impact), 0 without collision;
* ``SR`` success: no collision, on the road at the end, and ``RC >= 1``;
* ``collisions`` 1 if the episode ended in a collision (every preset ends an episode at its first
  collision, so ``AC``, the mean of this, equals ``CR``, the share of episodes with a collision);
* ``return`` (sum of the reward the agent was trained on) and ``length`` (steps).
"""

from __future__ import annotations

import math

from tensordict import TensorDictBase

from zoo import keys

MS_TO_KMH = 3.6
#: summary names in the order of the paper's tables
SUMMARY_METRICS = ("AS", "RC", "TD", "CS", "SR", "AC", "CR", "return", "length")


def episode_metrics(rollout: TensorDictBase) -> dict[str, float]:
    """Metrics of one finished episode (``rollout`` of shape ``[T]``)."""
    nxt = rollout.get("next")
    crashed = bool(nxt.get(keys.CRASHED)[-1].item() > 0.5)
    on_road = bool(nxt.get(keys.ON_ROAD)[-1].item() > 0.5)
    progress = float(nxt.get(keys.ROUTE_PROGRESS)[-1].item())
    return {
        "AS": float(nxt.get(keys.SPEED).mean().item()) * MS_TO_KMH,
        "RC": progress,
        "TD": float(nxt.get(keys.DISTANCE)[-1].item()),
        "CS": float(rollout.get(keys.SPEED)[-1].item()) * MS_TO_KMH if crashed else 0.0,
        "SR": float(not crashed and on_road and progress >= 1.0),
        "collisions": float(crashed),
        "return": float(nxt.get(keys.REWARD).sum().item()),
        "length": float(rollout.shape[0]),
    }


def summarize(episodes: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and (population) standard deviation of each metric over episodes.

    Example:
        >>> summarize([{"AS": 10.0, "RC": 1.0, "TD": 5.0, "CS": 0.0, "SR": 1.0, "collisions": 0.0,
        ...             "return": 1.0, "length": 3.0}])["SR"]
        (1.0, 0.0)
    """
    if not episodes:
        raise ValueError("no episodes to summarise")

    def stats(values: list[float]) -> tuple[float, float]:
        mean = sum(values) / len(values)
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))

    column = {name: [e[name] for e in episodes] for name in episodes[0]}
    out = {name: stats(column[name]) for name in ("AS", "RC", "TD", "CS", "SR")}
    out["AC"] = stats(column["collisions"])
    out["CR"] = out["AC"]
    out["return"] = stats(column["return"])
    out["length"] = stats(column["length"])
    return out
