"""SAC (Haarnoja et al. 2018) with TorchRL's ``SACLoss``: separate actor, critic and α optimizers.

Reads top to bottom: tanh-Gaussian actor and twin Q critics → loss with learned temperature α and
target critics → one update of critic, actor and α → soft target update. With discrete actions
(highway-env's meta-actions) the actor is categorical and the critics give Q(s, ·) for every action:
TorchRL's ``DiscreteSACLoss`` (Christodoulou 2019); everything else is the same.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.objectives import DiscreteSACLoss, SACLoss, SoftUpdate

from zoo.agents.base import OffPolicyAgent
from zoo.agents.networks import action_values, categorical_actor, q_critic, tanh_gaussian_actor


class SAC(OffPolicyAgent):
    """Soft actor-critic for continuous (steer, throttle) control or discrete meta-actions.

    Args:
        tau: soft target-update rate.
        alpha_init: initial entropy temperature.
        target_entropy: ``"auto"`` or a number (nats). ``"auto"`` is minus the action dimension for continuous
            actions and ``target_entropy_weight · log(number of actions)`` for discrete ones.
        target_entropy_weight: discrete actions: the fraction of the uniform policy's entropy that ``"auto"``
            aims at. TorchRL's 0.98 keeps the policy close to uniform; 0.5 lets it commit to an action
            (about 75 % on one of five).
        actor_lr: actor learning rate (default: ``lr``).
        alpha_lr: temperature learning rate (default: ``lr``).
        **kwargs: see :class:`~zoo.agents.base.OffPolicyAgent` (``lr`` is the critic's).

    Example:
        >>> from zoo.agents import SAC
        >>> from zoo.envs import EnvConfig
        >>> agent = SAC(env=EnvConfig("highway-fast"), total_frames=1_000)  # doctest: +SKIP
        >>> agent = SAC(env=EnvConfig("highway-fast", action="discrete"), total_frames=1_000)  # doctest: +SKIP
    """

    action_modes = ("continuous", "discrete")

    def __init__(self, tau: float = 0.005, alpha_init: float = 1.0, target_entropy: float | str = "auto",
                 target_entropy_weight: float = 0.5, actor_lr: float | None = None, alpha_lr: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actor_lr = actor_lr or self.lr
        self.alpha_lr = alpha_lr or self.lr
        # The loss keeps its own stacked copies of the twin critics (trained there), so no critic attribute here.
        if self.env_config.action == "continuous":
            self.actor = tanh_gaussian_actor(self.encoder(), self.obs_key, self.action_spec)
            critic = q_critic(self.encoder(), self.obs_key, self.action_spec.shape[-1])
            self.loss = SACLoss(self.actor, critic, num_qvalue_nets=2, alpha_init=alpha_init,
                                target_entropy=target_entropy, action_spec=self.action_spec, loss_function="l2")
        else:
            actions = self.action_spec.space.n
            self.actor = categorical_actor(self.encoder(), self.obs_key, self.action_spec)
            self.loss = DiscreteSACLoss(self.actor, action_values(self.encoder(), self.obs_key, actions),
                                        action_space=self.action_spec, num_actions=actions, num_qvalue_nets=2,
                                        alpha_init=alpha_init, target_entropy=target_entropy,
                                        target_entropy_weight=target_entropy_weight, loss_function="l2")
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
