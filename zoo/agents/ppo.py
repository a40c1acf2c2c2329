"""PPO (Schulman et al. 2017) with TorchRL's ``ClipPPOLoss`` and GAE, continuous or discrete actions.

Reads top to bottom: stochastic actor (tanh-Gaussian or categorical) and value critic → GAE
advantages once per rollout → clipped-surrogate update on each minibatch.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from zoo.agents.base import OnPolicyAgent
from zoo.agents.networks import categorical_actor, tanh_gaussian_actor, v_critic


class PPO(OnPolicyAgent):
    """Proximal policy optimisation with a clipped surrogate objective.

    Args:
        gae_lambda: GAE λ.
        clip_epsilon: surrogate clip range.
        entropy_coeff: entropy bonus weight.
        critic_coeff: value-loss weight.
        **kwargs: see :class:`~zoo.agents.base.OnPolicyAgent`.

    Example:
        >>> from zoo.agents import PPO
        >>> from zoo.envs import EnvConfig
        >>> agent = PPO(env=EnvConfig("highway-fast", action="discrete"), total_frames=1_000)  # doctest: +SKIP
    """

    action_modes = ("continuous", "discrete")

    def __init__(self, gae_lambda: float = 0.95, clip_epsilon: float = 0.2, entropy_coeff: float = 0.01,
                 critic_coeff: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        make_actor = tanh_gaussian_actor if self.env_config.action == "continuous" else categorical_actor
        self.actor = make_actor(self.encoder(), self.obs_key, self.action_spec, return_log_prob=True)
        self.critic = v_critic(self.encoder(), self.obs_key)
        self.advantage = GAE(gamma=self.gamma, lmbda=gae_lambda, value_network=self.critic, average_gae=True)
        self.loss = ClipPPOLoss(self.actor, self.critic, clip_epsilon=clip_epsilon, entropy_coeff=entropy_coeff,
                                critic_coeff=critic_coeff, loss_critic_type="smooth_l1")

    @property
    def policy(self) -> TensorDictModuleBase:
        return self.actor

    def prepare(self, rollout: TensorDictBase) -> TensorDictBase:
        return self.advantage(rollout)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.loss.parameters(), lr=self.lr)

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        losses = self.loss(batch)
        self.optimizer_step(self.optimizers(), losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"])
        return {k: losses[k] for k in ("loss_objective", "loss_critic", "loss_entropy", "entropy")}
