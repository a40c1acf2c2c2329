"""Reward modules: the shared contract (reward + reward_terms), relabelling stored batches, recipe config."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.cli import instantiate_class
from tensordict import TensorDict

import zoo
from zoo import keys
from zoo.rewards import EngineeredReward, RewardModule, SparseCollisionReward


def _next_state(env_reward: list[float], crashed: list[float]) -> TensorDict:
    """A batch of next states as the env writes them (every value shaped [..., 1])."""
    n = len(env_reward)
    return TensorDict({
        keys.ENV_REWARD: torch.tensor(env_reward).unsqueeze(-1),
        keys.VEHICLE_STATE: TensorDict({"crashed": torch.tensor(crashed).unsqueeze(-1)}, batch_size=[n]),
    }, batch_size=[n])


def _transitions(env_reward: list[float], crashed: list[float], reward: list[float]) -> TensorDict:
    """Stored transitions: root state plus a "next" sub-tensordict holding the (old) reward."""
    nxt = _next_state(env_reward, crashed)
    nxt.set(keys.REWARD, torch.tensor(reward).unsqueeze(-1))
    n = len(reward)
    return TensorDict({keys.OBSERVATION: torch.zeros(n, 4), "next": nxt}, batch_size=[n])


def test_engineered_reward_copies_env_reward_into_reward_and_its_term():
    td = EngineeredReward()(_next_state([0.5, -0.25, 1.0], [0.0, 0.0, 1.0]))
    expected = torch.tensor([[0.5], [-0.25], [1.0]])
    assert torch.equal(td[keys.REWARD], expected)
    assert torch.equal(td[keys.REWARD_TERMS, "engineered"], expected)
    assert td[keys.REWARD].dtype == torch.float32


def test_sparse_collision_reward_is_minus_one_exactly_on_collision():
    td = SparseCollisionReward()(_next_state([0.9, 0.9, 0.1, 0.9], [0.0, 1.0, 0.0, 1.0]))
    assert td[keys.REWARD].squeeze(-1).tolist() == [0.0, -1.0, 0.0, -1.0]
    assert torch.equal(td[keys.REWARD_TERMS, "collision"], td[keys.REWARD])


def test_sparse_collision_penalty_is_configurable():
    td = SparseCollisionReward(penalty=-5.0)(_next_state([0.0, 0.0], [1.0, 0.0]))
    assert td[keys.REWARD].squeeze(-1).tolist() == [-5.0, 0.0]


def test_relabelling_a_stored_batch_rewrites_next_reward():
    batch = _transitions(env_reward=[0.7, 0.3], crashed=[0.0, 1.0], reward=[0.7, 0.3])
    out = SparseCollisionReward()(batch)
    assert out is batch  # relabelled in place, as a replay-buffer transform would
    assert batch["next", keys.REWARD].squeeze(-1).tolist() == [0.0, -1.0]
    assert batch["next", keys.REWARD_TERMS, "collision"].squeeze(-1).tolist() == [0.0, -1.0]
    assert keys.REWARD not in batch.keys()  # the root state is not a reward slot
    assert torch.equal(batch[keys.OBSERVATION], torch.zeros(2, 4))


def test_relabelling_a_real_rollout_with_another_reward():
    env = zoo.make_env("highway-fast", seed=0, config={"vehicles_density": 3})
    try:
        rollout = env.rollout(20)
    finally:
        env.close()
    # engineered by default
    assert torch.equal(rollout["next", keys.REWARD], rollout["next", keys.ENV_REWARD])
    SparseCollisionReward()(rollout)
    assert torch.equal(rollout["next", keys.REWARD], -rollout["next", keys.CRASHED])


def test_reward_module_on_an_env_scores_each_step_and_resets_its_terms():
    torch.manual_seed(0)  # the random actions of env.rollout
    env = zoo.make_env("highway-fast", seed=0, reward=SparseCollisionReward(), config={"vehicles_density": 3})
    try:
        reset = env.reset()
        rollout = env.rollout(20)
        spec_keys = env.observation_spec.keys(True, True)
    finally:
        env.close()
    assert reset[keys.REWARD_TERMS, "collision"].item() == 0.0
    assert (keys.REWARD_TERMS, "collision") in spec_keys
    assert rollout["next", keys.CRASHED].any(), "dense traffic should end in a collision"
    assert torch.equal(rollout["next", keys.REWARD], -rollout["next", keys.CRASHED])
    assert torch.equal(rollout["next", keys.REWARD_TERMS, "collision"], rollout["next", keys.REWARD])


@pytest.mark.parametrize("module", [EngineeredReward(), SparseCollisionReward(),
                                    SparseCollisionReward(penalty=-2.5)],
                         ids=["engineered", "sparse", "sparse-penalty"])
def test_config_round_trips_through_a_recipe_entry(module: RewardModule):
    config = module.config()
    assert set(config) == {"class_path", "init_args"}
    rebuilt = instantiate_class((), config)  # what LightningCLI does with a recipe's reward entry
    assert type(rebuilt) is type(module)
    assert rebuilt.config() == config
    state = _next_state([0.4, 0.4], [0.0, 1.0])
    assert torch.equal(rebuilt(state.clone())[keys.REWARD], module(state.clone())[keys.REWARD])


def test_config_names_init_arguments():
    assert SparseCollisionReward(penalty=-3.0).config() == {
        "class_path": "zoo.rewards.SparseCollisionReward", "init_args": {"penalty": -3.0}}
    assert EngineeredReward().config()["init_args"] == {}
