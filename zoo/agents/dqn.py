"""DQN (Mnih et al. 2015) on discrete meta-actions, with TorchRL's ``DQNLoss``.

Reads top to bottom: Q-network → ε-greedy exploration → loss and target network → one update.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torchrl.modules import EGreedyModule, QValueActor
from torchrl.objectives import DQNLoss, HardUpdate

from zoo.agents.base import OffPolicyAgent
from zoo.agents.networks import Head


class DQN(OffPolicyAgent):
    """Deep Q-learning with a target network and ε-greedy exploration.

    Args:
        eps_init: initial exploration rate.
        eps_end: final exploration rate.
        exploration_fraction: share of ``total_frames`` over which ε is annealed.
        target_update_interval: gradient updates between copies of the online network to the target.
        double_dqn: use double Q-learning targets.
        loss_function: TD-error loss, ``"smooth_l1"`` (Huber, as the DQN paper and stable-baselines3) or ``"l2"``.
        **kwargs: see :class:`~zoo.agents.base.OffPolicyAgent`.

    Example:
        >>> from zoo.agents import DQN
        >>> from zoo.envs import EnvConfig
        >>> agent = DQN(env=EnvConfig("highway-fast"), total_frames=1_000)  # doctest: +SKIP
    """

    action_modes = ("discrete",)
    resume_attributes = ("updates",)

    def __init__(self, eps_init: float = 1.0, eps_end: float = 0.05, exploration_fraction: float = 0.5,
                 target_update_interval: int = 50, double_dqn: bool = False, loss_function: str = "smooth_l1",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        num_actions = self.action_spec.space.n
        self.q_network = QValueActor(Head(self.encoder(), num_actions, hidden_sizes=()), in_keys=[self.obs_key],
                                     spec=self.action_spec)
        self.greedy = EGreedyModule(self.action_spec, eps_init=eps_init, eps_end=eps_end,
                                    annealing_num_steps=max(1, int(exploration_fraction * self.total_frames)))
        self.loss = DQNLoss(self.q_network, action_space=self.action_spec, double_dqn=double_dqn,
                            delay_value=True, loss_function=loss_function)
        self.loss.make_value_estimator(gamma=self.gamma)
        self.target_update_interval = target_update_interval
        self.target_updater = HardUpdate(self.loss, value_network_update_interval=0)  # copies on every step()
        self.updates = 0

    @property
    def policy(self) -> TensorDictModuleBase:
        return self.q_network

    def exploration_policy(self) -> TensorDictModuleBase:
        return TensorDictSequential(self.q_network, self.greedy)

    def after_collect(self, batch: TensorDictBase) -> None:
        self.greedy.step(batch.numel())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.q_network.parameters(), lr=self.lr)

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        loss = self.loss(batch)["loss"]
        self.optimizer_step(self.optimizers(), loss)
        self.updates += 1
        if self.updates % self.target_update_interval == 0:
            self.target_updater.step()
        return {"loss_q": loss, "epsilon": self.greedy.eps.detach().clone()}
