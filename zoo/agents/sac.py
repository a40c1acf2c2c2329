"""SAC (Haarnoja et al. 2018) with TorchRL's ``SACLoss``: separate actor, critic and α optimizers.

Reads top to bottom: tanh-Gaussian actor and twin Q critics → loss with learned temperature α and
target critics → one update of critic, actor and α → soft target update.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.objectives import SACLoss, SoftUpdate

from zoo.agents.base import OffPolicyAgent
from zoo.agents.networks import q_critic, tanh_gaussian_actor


class SAC(OffPolicyAgent):
    """Soft actor-critic for continuous (steer, throttle) control.

    Args:
        tau: soft target-update rate.
        alpha_init: initial entropy temperature.
        target_entropy: ``"auto"`` (minus the action dimension) or a number.
        actor_lr: actor learning rate (default: ``lr``).
        alpha_lr: temperature learning rate (default: ``lr``).
        **kwargs: see :class:`~zoo.agents.base.OffPolicyAgent` (``lr`` is the critic's).

    Example:
        >>> from zoo.agents import SAC
        >>> from zoo.envs import EnvConfig
        >>> agent = SAC(env=EnvConfig("highway-fast"), total_frames=1_000)  # doctest: +SKIP
    """

    action_modes = ("continuous",)

    def __init__(self, tau: float = 0.005, alpha_init: float = 1.0, target_entropy: float | str = "auto",
                 actor_lr: float | None = None, alpha_lr: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actor_lr = actor_lr or self.lr
        self.alpha_lr = alpha_lr or self.lr
        self.actor = tanh_gaussian_actor(self.encoder(), self.obs_key, self.action_spec)
        # The loss keeps its own stacked copies of the twin critics (trained there), so no attribute here.
        critic = q_critic(self.encoder(), self.obs_key, self.action_spec.shape[-1])
        self.loss = SACLoss(self.actor, critic, num_qvalue_nets=2, alpha_init=alpha_init,
                            target_entropy=target_entropy, action_spec=self.action_spec, loss_function="l2")
        self.loss.make_value_estimator(gamma=self.gamma)
        self.loss.target_entropy  # noqa: B018  registers the lazily created buffer, so checkpoints load
        self.target_updater = SoftUpdate(self.loss, tau=tau)

    @property
    def policy(self) -> TensorDictModuleBase:
        return self.actor

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(self.loss.qvalue_network_params.values(True, True), lr=self.lr),
            torch.optim.Adam(self.loss.actor_network_params.values(True, True), lr=self.actor_lr),
            torch.optim.Adam([self.loss.log_alpha], lr=self.alpha_lr),
        ]

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        losses = self.loss(batch)
        # The actor loss sees detached critic parameters and the α loss a detached log-prob, so one
        # backward of the sum gives each optimizer exactly its own loss's gradients.
        total = losses["loss_qvalue"] + losses["loss_actor"] + losses["loss_alpha"]
        self.optimizer_step(self.optimizers(), total)
        self.target_updater.step()
        return {k: losses[k] for k in ("loss_qvalue", "loss_actor", "loss_alpha", "alpha", "entropy")}
