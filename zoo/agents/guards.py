"""Checks on what enters the learner: a NaN or infinite value stops training before it reaches the optimizer.

One non-finite reward or observation turns every loss, gradient and weight it touches into NaN, and the
run goes on "training" garbage. :func:`check_finite_batch` refuses such a batch, naming the keys, the
update and the env steps collected so far, so the fault (a reward model, an env, a relabelling) is found
at the step it appears rather than hours later.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from zoo.errors import ZooError


def non_finite_keys(batch: TensorDictBase) -> dict[str, tuple[int, int]]:
    """Floating-point entries of ``batch`` holding NaN or ±inf: ``{key: (nan count, inf count)}``.

    Example:
        >>> td = TensorDict({"reward": torch.tensor([1.0, float("nan")])}, batch_size=[2])
        >>> non_finite_keys(td)
        {'reward': (1, 0)}
    """
    found = {}
    for key, value in batch.items(include_nested=True, leaves_only=True):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            nan, inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
            if nan or inf:
                found["/".join(key) if isinstance(key, tuple) else key] = (nan, inf)
    return found


def check_finite_batch(batch: TensorDictBase, update: int, env_steps: int) -> None:
    """Raise a :class:`~zoo.errors.ZooError` if ``batch`` holds NaN or ±inf in any float entry.

    Args:
        batch: the training batch about to enter the loss.
        update: index of the gradient update (Lightning's batch index).
        env_steps: environment steps collected so far.

    Example:
        >>> check_finite_batch(td, update=3, env_steps=64)  # doctest: +SKIP
        ZooError: non-finite values in the training batch of update 3 (after 64 env steps): next/reward (1 NaN) …
    """
    found = non_finite_keys(batch)
    if found:
        described = ", ".join(f"{key} ({nan} NaN, {inf} inf)" for key, (nan, inf) in found.items())
        raise ZooError(f"non-finite values in the training batch of update {update} (after {env_steps} env "
                       f"steps): {described}; stopped before the optimizer step. Check the reward model and "
                       "the environment's observations")
