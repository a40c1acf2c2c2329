"""LightningModules wrapping TorchRL losses, one file per algorithm."""

from zoo.agents.base import Agent, OffPolicyAgent, OnPolicyAgent
from zoo.agents.dqn import DQN
from zoo.agents.ppo import PPO
from zoo.agents.sac import SAC
from zoo.agents.td3 import TD3
from zoo.registry import Registry

AGENTS: Registry[type[Agent]] = Registry("agent")
for _cls in (DQN, PPO, SAC, TD3):
    AGENTS.register(_cls.__name__, _cls)

__all__ = ["AGENTS", "Agent", "DQN", "OffPolicyAgent", "OnPolicyAgent", "PPO", "SAC", "TD3"]
