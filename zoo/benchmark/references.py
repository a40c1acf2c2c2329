"""Reference policies beside a grid's trained methods: every constant meta-action, uniform random, and the
rule-based IDM + MOBIL driver. A page that shows them tells whether a method learnt more than a constant
action would get (issue 15: pressing SLOWER forever once beat every row of the results page).

They are evaluated by ``zoo.evaluation.reference.evaluate_reference`` on the grid's held-out episodes and
recorded only in the results file (they train nothing, so they have no MLflow run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zoo.registry import ZooError

#: highway-env's meta-actions (``DiscreteMetaAction.ACTIONS_ALL``), kept here so a name is checked without gym
META_ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
REFERENCES = (*(f"constant:{a}" for a in META_ACTIONS), "random", "idm")


def check_references(names: Sequence[str]) -> list[str]:
    """``names`` if each is a reference policy; ``["none"]`` means none.

    Raises:
        ZooError: naming the bad value and the valid ones.
    """
    if list(names) == ["none"]:
        return []
    for name in names:
        if name not in REFERENCES:
            raise ZooError(f"unknown reference policy {name!r}. Valid choices: {', '.join(REFERENCES)}, or none")
    return list(names)


def reference_evaluator() -> Callable[..., Any]:
    """``zoo.evaluation.reference.evaluate_reference``, imported when first needed: a grid asks for it before
    it trains, so a zoo without it fails in a second, not after hours of training.

    Raises:
        ZooError: the module is missing; the message says how to run without references.
    """
    try:
        from zoo.evaluation.reference import evaluate_reference
    except ImportError:
        raise ZooError("reference policies need zoo.evaluation.reference (issue 15 item 1), which this version of "
                       "the zoo does not have; run the grid with --references none") from None
    return evaluate_reference
