"""One frozen ``EnvConfig`` from recipe to env, and one answer to what a reward needs rendered (``render_needs``),
which agents and ``zoo reward calibrate`` both build their envs from."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from zoo.envs import EnvConfig, RenderNeeds
from zoo.errors import ZooError
from zoo.rewards import RewardModule, render_needs


class _Reads(RewardModule):
    """A reward that reads what it is told to (no backbone)."""

    def __init__(self, needs: RenderNeeds) -> None:
        super().__init__()
        self.needs = needs

    def render_needs(self) -> RenderNeeds:
        return self.needs

    def compute(self, next_state):
        return {"reward": torch.zeros(*next_state.batch_size, 1)}


def test_the_config_is_frozen_and_a_variant_is_checked_again():
    config = EnvConfig("highway-fast", action="continuous")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_envs = 2
    assert dataclasses.replace(config, num_envs=2).num_envs == 2 and config.num_envs == 1
    with pytest.raises(ZooError, match="'merge' supports action modes"):
        dataclasses.replace(config, scenario="merge")
    with pytest.raises(ZooError, match="'sunny'.*unseen"):
        dataclasses.replace(config, condition="sunny")
    with pytest.raises(ZooError, match="frame_window=4 reads BEV frames, so it needs obs 'bev' or 'both'"):
        EnvConfig(frame_window=4)


def test_jsonargparse_builds_the_config_a_recipe_spells():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--env", type=EnvConfig)
    config = parser.instantiate(parser.parse_object({"env": {"scenario": "merge", "obs": "both"}})).env
    assert config == EnvConfig("merge", obs="both")


def test_rendering_adds_what_is_needed_and_keeps_the_policy_input():
    kinematics = EnvConfig()
    assert kinematics.rendering(RenderNeeds()) == kinematics
    assert kinematics.rendering(RenderNeeds(frames=True)).obs == "both"
    windows = kinematics.rendering(RenderNeeds(frame_window=4, objects=True))
    assert (windows.obs, windows.frame_window, windows.objects) == ("both", 4, True)
    bev = EnvConfig(obs="bev", frame_window=6)
    assert bev.rendering(RenderNeeds(frames=True, frame_window=4)) == bev  # already renders more


def test_render_needs_joins_the_rewards_and_skips_none():
    frames, oracle = _Reads(RenderNeeds(frames=True)), _Reads(RenderNeeds(frame_window=4, objects=True))
    assert render_needs() == render_needs(None) == RenderNeeds()
    assert render_needs(frames, None, oracle) == RenderNeeds(frames=True, frame_window=4, objects=True)
    with pytest.raises(ZooError, match="frame_window must be >= 1"):
        RenderNeeds(frame_window=0)


def test_calibration_records_what_its_rewards_need(monkeypatch):
    from zoo.rewards import calibrate

    recorded = []

    def fake_record(env, frames, seed, progress):
        recorded.append(env)
        raise RuntimeError("recorded")

    monkeypatch.setattr(calibrate, "record", fake_record)
    rewards = {"a": _Reads(RenderNeeds(frames=True)), "b": _Reads(RenderNeeds(frame_window=3, objects=True))}
    with pytest.raises(RuntimeError, match="recorded"):
        calibrate.calibrate_heads(rewards, scenario="merge", frames=10, bev_size=48)
    assert recorded == [EnvConfig("merge", action="discrete", obs="bev", bev_size=48, frame_window=3, objects=True)]


def test_an_agent_renders_what_its_reward_needs(make_agent):
    agent = make_agent("dqn", reward=_Reads(RenderNeeds(frame_window=2)), env={"scenario": "highway-fast",
                                                                              "bev_size": 32})
    assert agent.env_config == EnvConfig("highway-fast", action="discrete", obs="both", bev_size=32, frame_window=2)
