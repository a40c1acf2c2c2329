"""Policy and value networks for kinematics vectors (MLP) and BEV frames (small CNN).

A recipe picks the encoder by name (``network: mlp | cnn``); the heads on top are the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torch.distributions import Categorical
from torchrl.modules import Actor, ProbabilisticActor, TanhNormal, ValueOperator

from zoo import keys
from zoo.registry import Registry


def mlp(in_features: int, hidden_sizes: Sequence[int], out_features: int | None = None) -> nn.Sequential:
    """Linear + ReLU layers; a last linear layer to ``out_features`` when given."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(in_features, size), nn.ReLU()]
        in_features = size
    if out_features is not None:
        layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class VectorEncoder(nn.Module):
    """Encodes the kinematics vector (``observation``) with an MLP."""

    in_key = keys.OBSERVATION

    def __init__(self, obs_shape: Sequence[int], hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp(int(torch.Size(obs_shape).numel()), hidden_sizes)
        self.out_features = hidden_sizes[-1]

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.net(observation)


class PixelEncoder(nn.Module):
    """Encodes the uint8 BEV frame (``pixels``, C x H x W) with a small Nature-DQN style CNN."""

    in_key = keys.PIXELS

    def __init__(self, obs_shape: Sequence[int], hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        channels = obs_shape[-3]
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            conv_features = self.conv(torch.zeros(1, *obs_shape[-3:])).shape[-1]
        self.head = mlp(conv_features, hidden_sizes)
        self.out_features = hidden_sizes[-1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        batch = pixels.shape[:-3]
        x = pixels.reshape(-1, *pixels.shape[-3:]).float() / 255.0
        return self.head(self.conv(x)).reshape(*batch, -1)


ENCODERS: Registry[type[nn.Module]] = Registry("network")
ENCODERS.register("mlp", VectorEncoder)
ENCODERS.register("cnn", PixelEncoder)


class Head(nn.Module):
    """Encoder followed by an MLP to ``out_features``; extra inputs (an action) join after encoding."""

    def __init__(self, encoder: nn.Module, out_features: int, extra_features: int = 0,
                 hidden_sizes: Sequence[int] = ()) -> None:
        super().__init__()
        self.encoder = encoder
        self.mlp = mlp(encoder.out_features + extra_features, hidden_sizes, out_features)

    def forward(self, obs: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.encoder(obs), *extra], dim=-1))


# -- TensorDict modules shared by the algorithms ------------------------------------------------
def tanh_gaussian_actor(encoder: nn.Module, in_key, action_spec, return_log_prob: bool = False):
    """Stochastic actor: tanh-squashed Gaussian over a bounded continuous action (SAC, PPO)."""
    head = nn.Sequential(Head(encoder, 2 * action_spec.shape[-1]), NormalParamExtractor())
    return ProbabilisticActor(
        TensorDictModule(head, in_keys=[in_key], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], spec=action_spec, distribution_class=TanhNormal,
        distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high},
        return_log_prob=return_log_prob,
    )


def categorical_actor(encoder: nn.Module, in_key, action_spec, return_log_prob: bool = False):
    """Stochastic actor over discrete actions (PPO, discrete SAC)."""
    return ProbabilisticActor(
        TensorDictModule(Head(encoder, action_spec.space.n), in_keys=[in_key], out_keys=["logits"]),
        in_keys=["logits"], spec=action_spec, distribution_class=Categorical, return_log_prob=return_log_prob,
    )


def deterministic_actor(encoder: nn.Module, in_key, action_spec):
    """Deterministic tanh actor in [-1, 1] (TD3)."""
    return Actor(nn.Sequential(Head(encoder, action_spec.shape[-1]), nn.Tanh()), in_keys=[in_key], spec=action_spec)


def q_critic(encoder: nn.Module, in_key, action_dim: int):
    """State-action value Q(s, a), written to ``state_action_value`` (SAC, TD3)."""
    return ValueOperator(Head(encoder, 1, extra_features=action_dim), in_keys=[in_key, keys.ACTION])


def action_values(encoder: nn.Module, in_key, num_actions: int):
    """Q(s, ·) for every discrete action, written to ``action_value`` (discrete SAC)."""
    return TensorDictModule(Head(encoder, num_actions), in_keys=[in_key], out_keys=["action_value"])


def v_critic(encoder: nn.Module, in_key):
    """State value V(s), written to ``state_value`` (PPO)."""
    return ValueOperator(Head(encoder, 1), in_keys=[in_key])
