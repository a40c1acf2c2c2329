"""DriveVLM-RL's dual-pathway reward against hand computation (docs/method.md#dual-pathway):
gate off → the static CLG only; gate on → plus α_d·cos(x, l_pos_dyn) − β_d·cos(x, l_dyn) with the
description as l_dyn; unusable descriptions fall back to 0 and are counted; frame windows from the env;
synthesis on top.

The gate and the describer are stand-ins with known outputs here (their own tests cover the real ones), the
dual encoder a random tiny model whose embeddings are replaced by known unit vectors.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from tensordict import TensorDict, TensorDictBase

import zoo
from zoo import keys
from zoo.envs import RenderNeeds, build_env
from zoo.errors import ZooError
from zoo.hub.random_models import build_random_dual_encoder
from zoo.rewards import DYNAMIC_POSITIVE, DualPathwayReward, HierarchicalReward

DIM = 64
WINDOW = 3
CUT_IN = "A car cuts in ahead"
CLEAR = "The road ahead is clear"


class KeyGate:
    """Gate on where the test says so (``next_state["gate_truth"]``)."""

    def __init__(self) -> None:
        self.calls = 0
        self.on = 0

    def __call__(self, next_state: TensorDictBase) -> torch.Tensor:
        gate = next_state.get("gate_truth").bool()
        self.calls += gate.numel()
        self.on += int(gate.sum())
        return gate

    def stats(self) -> dict[str, float]:
        return {"gate_rate": self.on / max(self.calls, 1)}


class ScriptedDescriber:
    """Describes a window by its first pixel: 1 → a cut-in, 2 → unusable (None), 3 → a clear road; records what
    it saw."""

    def __init__(self) -> None:
        self.windows: list[torch.Tensor] = []

    def describe(self, windows: torch.Tensor) -> list[str | None]:
        self.windows.append(windows)
        return [{1: CUT_IN, 3: CLEAR}.get(int(w[0, 0, 0, 0])) for w in windows]

    def stats(self) -> dict[str, float]:
        return {"calls": float(len(self.windows))}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> str:
    return str(build_random_dual_encoder(tmp_path_factory.mktemp("dual") / "clip", "clip", size="tiny"))


@pytest.fixture
def describer(monkeypatch) -> ScriptedDescriber:
    scripted = ScriptedDescriber()
    monkeypatch.setattr("zoo.rewards.dynamic.load_describer", lambda source, **options: scripted)
    return scripted


def _unit(rng: np.random.Generator, n: int | None = None) -> torch.Tensor:
    v = rng.standard_normal((n, DIM) if n else DIM)
    return torch.tensor(v / np.linalg.norm(v, axis=-1, keepdims=True), dtype=torch.float32)


def _state(gate: list[bool], first_pixel: list[int], size: int = 32) -> TensorDict:
    n = len(gate)
    windows = torch.zeros(n, WINDOW, 3, size, size, dtype=torch.uint8)
    windows[:, 0, 0, 0, 0] = torch.tensor(first_pixel, dtype=torch.uint8)
    for i in range(n):
        windows[i, -1, 1, 0, 0] = i  # distinct current frames
    return TensorDict({keys.PIXELS: windows[:, -1].clone(), keys.PIXELS_WINDOW: windows,
                       "gate_truth": torch.tensor(gate).unsqueeze(-1)}, batch_size=[n])


def _reward(clip_dir: str, **kwargs: Any) -> DualPathwayReward:
    return DualPathwayReward(clip_dir, gate=KeyGate(), describer="scripted", window=WINDOW, device="cpu", **kwargs)


def test_dynamic_reward_matches_the_hand_computation(clip_dir, describer, monkeypatch):
    reward = _reward(clip_dir, alpha=0.9, beta=1.1, dynamic_alpha=0.7, dynamic_beta=1.3)
    rng = np.random.default_rng(0)
    pos, neg, pos_dyn, dyn, x = _unit(rng), _unit(rng), _unit(rng), _unit(rng), _unit(rng, 4)
    reward._texts.update({reward.positive: pos, reward.negative: neg, DYNAMIC_POSITIVE: pos_dyn})
    reward._goals.put(CUT_IN, dyn)
    monkeypatch.setattr(reward, "image_embeddings", lambda frames: x[:len(frames)])
    # frame 0: gate off; 1: gate on, cut-in; 2: gate on, unusable description; 3: gate off (a window that
    # would describe a cut-in: the describer must not even see it)
    out = reward.compute(_state([False, True, True, False], [1, 1, 2, 1]))

    static = 0.9 * (x @ pos) - 1.1 * (x @ neg)
    dynamic = torch.zeros(4)
    dynamic[1] = 0.7 * (x[1] @ pos_dyn) - 1.3 * (x[1] @ dyn)
    torch.testing.assert_close(out["static"].squeeze(-1), static)
    torch.testing.assert_close(out["clg"].squeeze(-1), static)
    torch.testing.assert_close(out["dynamic"].squeeze(-1), dynamic)
    torch.testing.assert_close(out[keys.REWARD].squeeze(-1), static + dynamic)
    torch.testing.assert_close(out["gate"].squeeze(-1), torch.tensor([0.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(out["dynamic_fallback"].squeeze(-1), torch.tensor([0.0, 0.0, 1.0, 0.0]))
    torch.testing.assert_close(out["cos_dynamic"][1, 0], x[1] @ dyn)
    assert set(out) == {keys.REWARD, *reward.terms}
    # only the gated windows reached the describer, whole and in order
    (seen,) = describer.windows
    assert seen.shape == (2, WINDOW, 3, 32, 32)
    assert [int(w[-1, 1, 0, 0]) for w in seen] == [1, 2]


def test_a_description_of_a_clear_road_never_becomes_the_negative_goal(clip_dir, describer):
    reward = _reward(clip_dir)
    out = reward.compute(_state([True, True, True], [3, 1, 2]))  # clear road, cut-in, unusable
    assert out["dynamic"][0, 0] == 0 and out["cos_dynamic"][0, 0] == 0
    assert out["dynamic"][1, 0] != 0
    torch.testing.assert_close(out["dynamic_clear"].squeeze(-1), torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(out["dynamic_fallback"].squeeze(-1), torch.tensor([0.0, 0.0, 1.0]))
    assert CLEAR not in reward._goals  # never embedded as a goal


def test_gate_off_everywhere_is_the_static_pathway_alone_and_runs_no_describer(clip_dir, describer):
    reward = _reward(clip_dir)
    from zoo.rewards import CLGReward

    static = CLGReward(clip_dir, device="cpu")
    state = _state([False, False, False], [1, 1, 1])
    out = reward.compute(state)
    torch.testing.assert_close(out[keys.REWARD], static.compute(state)[keys.REWARD])
    assert torch.all(out["dynamic"] == 0)
    assert describer.windows == []


def test_each_description_is_embedded_once_and_the_goal_cache_is_bounded(clip_dir, describer, monkeypatch):
    reward = _reward(clip_dir, goal_cache_size=2)
    calls = []
    embed = reward.encoder.embed_texts
    monkeypatch.setattr(reward.encoder, "embed_texts", lambda texts: calls.append(list(texts)) or embed(texts))
    reward.goal_embeddings(["a", "b", "a"])
    reward.goal_embeddings(["a", "c"])
    assert calls == [["a", "b"], ["c"]]
    assert list(reward._goals) == ["a", "c"]  # "b", the least recently used, dropped


def test_stats_report_the_gate_rate_and_the_describer(clip_dir, describer):
    reward = _reward(clip_dir)
    reward.compute(_state([True, False, False, False], [1, 1, 1, 1]))
    stats = reward.stats()
    assert stats["gate_rate"] == pytest.approx(0.25)
    assert stats["describer_calls"] == 1.0
    assert "cache_hit_rate" in stats


def test_synthesis_normalises_the_sum_of_both_pathways(clip_dir, describer):
    dual = _reward(clip_dir)
    reward = HierarchicalReward(dual, theta_min=-0.5, theta_max=0.5)
    assert reward.render_needs() == RenderNeeds(frames=True, frame_window=WINDOW)
    state = _state([True, True], [1, 2])
    state.update({key: torch.zeros(2, 1) for key in
                  (keys.SPEED, keys.LATERAL_OFFSET, keys.HEADING_ERROR, keys.CRASHED, keys.LATERAL_OFFSET_STD)})
    state.set(keys.ON_ROAD, torch.ones(2, 1))
    out = reward.compute(state)
    semantic = dual.compute(state)[keys.REWARD]
    torch.testing.assert_close(out["semantic"], semantic)
    torch.testing.assert_close(out["semantic_norm"], (semantic.clamp(-0.5, 0.5) + 0.5))
    torch.testing.assert_close(out["semantic_dynamic"], dual.compute(state)["dynamic"])


@pytest.mark.parametrize(("kwargs", "message"), [({"window": 0}, "window"), ({"describer": ""}, "describer")])
def test_bad_arguments_are_named(clip_dir, describer, kwargs, message):
    with pytest.raises(ZooError, match=message):
        DualPathwayReward(clip_dir, gate=KeyGate(), device="cpu", **{"describer": "scripted", **kwargs})


def test_a_describer_object_is_used_as_given(clip_dir):
    """An object with describe(windows) (the oracle describer of `zoo reward evaluate`) takes the describer's place
    without loading anything."""
    scripted = ScriptedDescriber()
    reward = DualPathwayReward(clip_dir, gate=KeyGate(), describer=scripted, window=WINDOW, device="cpu")
    out = reward.compute(_state([True, False], [1, 1]))
    assert len(scripted.windows) == 1 and out["dynamic"][0, 0] != 0 and out["dynamic"][1, 0] == 0
    assert reward.stats()["describer_calls"] == 1.0


def test_an_agent_with_the_dual_pathway_renders_frame_windows(clip_dir, describer, make_agent):
    reward = _reward(clip_dir)
    agent = make_agent("sac", reward=reward, env={"scenario": "highway-fast", "bev_size": 32})
    assert agent.env_config.frame_window == WINDOW and agent.env_config.obs == "both"
    env = build_env(replace(agent.env_config, num_envs=1), seed=0)
    try:
        td = env.rollout(2, policy=lambda td: td.set(keys.ACTION, torch.zeros(2)))  # keep the lane
    finally:
        env.close()
    window = td["next", keys.PIXELS_WINDOW]
    assert window.shape == (2, WINDOW, 3, 32, 32)
    assert torch.equal(window[:, -1], td["next", keys.PIXELS])  # the current frame is last
    assert torch.equal(window[1, -2], td["next", keys.PIXELS][0])  # the one before it, before it
    assert keys.PIXELS_WINDOW in agent.stored_exclusions  # windows are read by the reward, never stored


def test_the_env_window_repeats_the_first_frame_at_an_episode_start():
    env = zoo.make_env("highway-fast", obs="bev", frame_window=3, bev_size=32, seed=0)
    try:
        td = env.reset()
    finally:
        env.close()
    window = td[keys.PIXELS_WINDOW]
    assert torch.equal(window[0], window[2]) and torch.equal(window[1], window[2])


def test_a_window_needs_frames():
    with pytest.raises(ZooError, match="frame_window"):
        zoo.make_env("highway-fast", obs="kinematics", frame_window=3)


# -- with the zoo's shipped detector and describer ----------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped_dual() -> DualPathwayReward:
    return DualPathwayReward("drive-clip-bev-tiny", describer="risk-describer-tiny", window=4, device="cpu")


def test_the_shipped_pathway_scores_a_real_rollout_and_logs_its_gate(shipped_dual):
    reward = HierarchicalReward(shipped_dual, theta_min=0.0, theta_max=0.3)
    env = zoo.make_env("highway-fast", action="discrete", obs="bev", frame_window=4, seed=5, reward=reward)
    try:
        td = env.rollout(12, policy=lambda td: td.set(keys.ACTION, torch.tensor(3)), break_when_any_done=False)
    finally:
        env.close()
    terms = td["next", keys.REWARD_TERMS]
    gate = terms["semantic_gate"].bool()
    assert torch.all(terms["semantic_dynamic"][~gate] == 0)
    described = gate & (terms["semantic_dynamic_fallback"] == 0)
    if described.any():  # a description became the negative goal: R_dynamic = cos_pos_dyn − cos_dyn
        torch.testing.assert_close(terms["semantic_dynamic"][described],
                                   (terms["semantic_cos_positive_dynamic"] - terms["semantic_cos_dynamic"])[described])
    torch.testing.assert_close(terms["semantic"], terms["semantic_static"] + terms["semantic_dynamic"])
    stats = reward.stats()
    assert stats["gate_rate"] == pytest.approx(gate.float().mean().item())
    assert any(k.startswith("describer_") for k in stats)


def test_the_dual_pathway_config_round_trips_through_a_recipe_entry(shipped_dual):
    from jsonargparse import ArgumentParser

    config = shipped_dual.config()
    assert config["class_path"] == "zoo.rewards.DualPathwayReward"
    assert config["init_args"]["gate"]["class_path"] == "zoo.perception.AttentionGate"
    parser = ArgumentParser()
    parser.add_argument("--reward", type=DualPathwayReward)
    rebuilt = parser.instantiate(parser.parse_object({"reward": config})).reward
    assert rebuilt.config() == config
