"""TD3 (Fujimoto et al. 2018) with TorchRL's ``TD3Loss``: twin critics, target smoothing, delayed actor.

Reads top to bottom: deterministic tanh actor with Gaussian exploration noise and twin Q critics →
loss with target-policy smoothing → critic update every step, actor and targets every ``policy_delay``.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torchrl.modules import AdditiveGaussianModule
from torchrl.objectives import SoftUpdate, TD3Loss

from zoo.agents.base import OffPolicyAgent
from zoo.agents.networks import deterministic_actor, q_critic


class TD3(OffPolicyAgent):
    """Twin-delayed DDPG for continuous (steer, throttle) control.

    Args:
        tau: soft target-update rate.
        policy_delay: critic updates per actor (and target) update.
        policy_noise: std of the target-policy smoothing noise.
        noise_clip: clip of the smoothing noise.
        exploration_noise: std of the Gaussian exploration noise added by the collector.
        **kwargs: see :class:`~zoo.agents.base.OffPolicyAgent`.

    Example:
        >>> from zoo.agents import TD3
        >>> from zoo.envs import EnvConfig
        >>> agent = TD3(env=EnvConfig("highway-fast"), total_frames=1_000)  # doctest: +SKIP
    """

    action_modes = ("continuous",)
    resume_attributes = ("updates",)

    def __init__(self, tau: float = 0.005, policy_delay: int = 2, policy_noise: float = 0.2, noise_clip: float = 0.5,
                 exploration_noise: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy_delay = policy_delay
        self.actor = deterministic_actor(self.encoder(), self.obs_key, self.action_spec)
        # The loss keeps its own stacked copies of the twin critics (trained there), so no attribute here.
        critic = q_critic(self.encoder(), self.obs_key, self.action_spec.shape[-1])
        self.noise = AdditiveGaussianModule(self.action_spec, sigma_init=exploration_noise,
                                            sigma_end=exploration_noise, annealing_num_steps=1)
        self.loss = TD3Loss(self.actor, critic, action_spec=self.action_spec, num_qvalue_nets=2,
                            policy_noise=policy_noise, noise_clip=noise_clip, loss_function="l2")
        self.loss.make_value_estimator(gamma=self.gamma)
        self.target_updater = SoftUpdate(self.loss, tau=tau)
        self.updates = 0

    @property
    def policy(self) -> TensorDictModuleBase:
        return self.actor

    def exploration_policy(self) -> TensorDictModuleBase:
        return TensorDictSequential(self.actor, self.noise)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(self.loss.qvalue_network_params.values(True, True), lr=self.lr),
            torch.optim.Adam(self.loss.actor_network_params.values(True, True), lr=self.lr),
        ]

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        critic_opt, actor_opt = self.optimizers()
        losses = self.loss(batch)
        self.updates += 1
        if self.updates % self.policy_delay:
            self.optimizer_step(critic_opt, losses["loss_qvalue"])
        else:
            # The actor loss sees detached critic parameters: one backward serves both optimizers.
            self.optimizer_step([critic_opt, actor_opt], losses["loss_qvalue"] + losses["loss_actor"])
            self.target_updater.step()
        return {"loss_qvalue": losses["loss_qvalue"], "loss_actor": losses["loss_actor"]}
