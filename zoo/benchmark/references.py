"""Reference policies beside a grid's trained methods: every constant meta-action, uniform random, and the
rule-based IDM + MOBIL driver. A page that shows them tells whether a method learnt more than a constant
action would get (issue 15: pressing SLOWER forever once beat every row of the results page).

They are evaluated by ``zoo.evaluation.reference.evaluate_reference`` on the grid's held-out episodes and
recorded only in the results file (they train nothing, so they have no MLflow run).
"""

from __future__ import annotations

from collections.abc import Sequence

from zoo.errors import ZooError
from zoo.evaluation.reference import REFERENCE_POLICIES as REFERENCES


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
