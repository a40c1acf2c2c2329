"""VLM reward heads (CLG, VLM-SR, VLM-RM, LORD, RoboCLIP) against hand computation, hierarchical synthesis on
hand-made vehicle states, the embedding cache, batched relabelling, config round trips, checkpoints of agents
with a VLM reward, and ``zoo reward calibrate``.

Formulas: docs/method.md (#clg-reward, #normalisation-window, #hierarchical-reward-synthesis, #baselines).
Backbones are random tiny models built once per session (zoo.hub.random_models): their rewards mean nothing, so heads
are checked on hand-made unit vectors.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensordict import TensorDict, TensorDictBase

import zoo
from zoo import keys
from zoo.errors import ZooError
from zoo.hub.random_models import build_random_dual_encoder
from zoo.rewards import (
    CLGReward,
    HierarchicalReward,
    LORDReward,
    RewardModule,
    RoboCLIPReward,
    VLMRMReward,
    VLMSRReward,
)

DIM = 64  # embedding width of the tiny models


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> str:
    return str(build_random_dual_encoder(tmp_path_factory.mktemp("vlm_reward_models") / "clip", "clip", size="tiny"))


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory) -> Path:
    """A ``$ZOO_CACHE`` shared by the CLI tests, so ``random:clip-tiny`` is built once."""
    return tmp_path_factory.mktemp("zoo_cache")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ZOO_ALLOW_DOWNLOADS", raising=False)


def _unit(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    v = rng.standard_normal((n, DIM) if n else DIM)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _set_text(module, text: str, vector: np.ndarray) -> None:
    """Replace a prompt's embedding by a known unit vector."""
    assert text in module._texts  # the module embedded it at construction
    module._texts[text] = torch.tensor(vector, dtype=torch.float32)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def _frames(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# -- heads against hand computation ----------------------------------------------------------------------------
def test_clg_is_alpha_cos_pos_minus_beta_cos_neg(clip_dir):
    reward = CLGReward(clip_dir, alpha=0.7, beta=1.3, device="cpu")
    rng = np.random.default_rng(0)
    pos, neg, x = _unit(rng), _unit(rng), _unit(rng, 5)
    x[0] = pos  # exactly the positive goal: cos_pos = 1
    _set_text(reward, reward.positive, pos)
    _set_text(reward, reward.negative, neg)
    out = reward.score(_t(x))
    expected = 0.7 * (x @ pos) - 1.3 * (x @ neg)
    np.testing.assert_allclose(out["reward"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(out["clg"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(out["cos_positive"].numpy(), x @ pos, atol=1e-6)
    np.testing.assert_allclose(out["cos_negative"].numpy(), x @ neg, atol=1e-6)
    assert out["cos_positive"][0].item() == pytest.approx(1.0, abs=1e-6)
    assert set(out) == {"reward", *reward.terms}


def test_clg_defaults_are_the_papers_goals_with_unit_weights(clip_dir):
    reward = CLGReward(clip_dir, device="cpu")
    assert reward.positive == "The road is clear with no car accidents"
    assert reward.negative == "Two cars have collided with each other on the road"
    assert (reward.alpha, reward.beta) == (1.0, 1.0)
    # with the real (random) text embeddings: the same formula on real image embeddings
    frames = _frames(3)
    emb = reward.image_embeddings(frames)
    with torch.no_grad():
        pos, neg = reward.encoder.embed_texts([reward.positive, reward.negative])
    assert torch.allclose(reward.score(emb)["reward"], emb @ pos - emb @ neg, atol=1e-6)


def _vector_with_cosine(goal: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine with the unit vector ``goal`` is exactly ``cosine``."""
    other = rng.standard_normal(DIM)
    other -= (other @ goal) * goal
    other /= np.linalg.norm(other)
    return cosine * goal + math.sqrt(1 - cosine ** 2) * other


def test_vlm_sr_is_plus_one_above_the_threshold_and_minus_one_below(clip_dir):
    reward = VLMSRReward(clip_dir, device="cpu")
    assert reward.goal == "A car is driving safely" and reward.threshold == 0.32
    rng = np.random.default_rng(1)
    goal = _unit(rng)
    _set_text(reward, reward.goal, goal)
    cosines = [0.9, 0.33, 0.31, 0.0, -0.5, 1.0]
    x = np.stack([_vector_with_cosine(goal, c, rng) for c in cosines])
    out = reward.score(_t(x))
    assert out["reward"].tolist() == [1.0, 1.0, -1.0, -1.0, -1.0, 1.0]
    np.testing.assert_allclose(out["cos_goal"].numpy(), cosines, atol=1e-6)

    reward.threshold = -0.6  # the threshold is read at scoring time
    assert reward.score(_t(x))["reward"].tolist() == [1.0] * 6


@pytest.mark.parametrize("alpha", [0.5, 0.0, 1.0, 0.25])
def test_vlm_rm_is_one_minus_half_squared_norm_of_the_projected_distance(clip_dir, alpha):
    reward = VLMRMReward(clip_dir, alpha=alpha, device="cpu")
    assert reward.goal == "A car is driving safely" and reward.baseline == "A car"
    rng = np.random.default_rng(2)
    g, b, x = _unit(rng), _unit(rng), _unit(rng, 6)
    x[0] = g  # at the goal: reward exactly 1
    _set_text(reward, reward.goal, g)
    _set_text(reward, reward.baseline, b)
    d = g - b
    P = alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(DIM)
    expected = np.array([1 - 0.5 * np.sum(((xi - g) @ P) ** 2) for xi in x])
    out = reward.score(_t(x))
    np.testing.assert_allclose(out["reward"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out["cos_goal"].numpy(), x @ g, atol=1e-6)
    assert out["reward"][0].item() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(reward.projection().numpy(), P, atol=1e-6)


def test_vlm_rm_with_alpha_one_only_sees_the_goal_baseline_direction(clip_dir):
    reward = VLMRMReward(clip_dir, alpha=1.0, device="cpu")
    rng = np.random.default_rng(3)
    g, b = _unit(rng), _unit(rng)
    _set_text(reward, reward.goal, g)
    _set_text(reward, reward.baseline, b)
    d = (g - b) / np.linalg.norm(g - b)
    x = _unit(rng)
    # moving x orthogonally to d does not change the reward (P = d dᵀ)
    ortho = rng.standard_normal(DIM)
    ortho -= (ortho @ d) * d
    a, c = reward.score(_t(np.stack([x, x + 0.3 * ortho])))["reward"].tolist()
    assert a == pytest.approx(c, abs=1e-5)


def test_lord_is_one_minus_cos_to_the_negative_goal(clip_dir):
    reward = LORDReward(clip_dir, device="cpu")
    assert reward.negative == "Two cars have collided with each other on the road"
    rng = np.random.default_rng(4)
    neg, x = _unit(rng), _unit(rng, 4)
    x[0], x[1] = neg, -neg
    _set_text(reward, reward.negative, neg)
    out = reward.score(_t(x))
    np.testing.assert_allclose(out["reward"].numpy(), 1 - x @ neg, atol=1e-6)
    np.testing.assert_allclose(out["cos_negative"].numpy(), x @ neg, atol=1e-6)
    assert out["reward"][:2].tolist() == pytest.approx([0.0, 2.0], abs=1e-6)


def test_roboclip_step_is_the_cosine_to_the_goal(clip_dir):
    reward = RoboCLIPReward(clip_dir, goal="A car is driving fast", device="cpu")
    assert reward.mode == "step"
    rng = np.random.default_rng(5)
    goal, x = _unit(rng), _unit(rng, 4)
    _set_text(reward, "A car is driving fast", goal)
    out = reward.score(_t(x))
    np.testing.assert_allclose(out["reward"].numpy(), x @ goal, atol=1e-6)
    np.testing.assert_allclose(out["cos_goal"].numpy(), x @ goal, atol=1e-6)


def test_roboclip_unknown_mode_is_refused(clip_dir):
    with pytest.raises(ZooError, match="episode"):
        RoboCLIPReward(clip_dir, mode="video", device="cpu")


def test_roboclip_episode_mode_refuses_stored_data(clip_dir):
    reward = RoboCLIPReward(clip_dir, mode="episode", device="cpu")
    td = TensorDict({keys.PIXELS: _frames(2), keys.DONE: torch.zeros(2, 1, dtype=torch.bool)}, batch_size=[2])
    with pytest.raises(ZooError, match="environment"):
        reward(td)


def test_roboclip_episode_mode_rewards_only_the_last_step_with_the_mean_frame_embedding(clip_dir):
    reward = RoboCLIPReward(clip_dir, mode="episode", device="cpu")
    env = zoo.make_env("highway-fast", obs="both", bev_size=64, num_envs=1, seed=0, reward=reward,
                       config={"duration": 4})
    try:
        torch.manual_seed(0)
        rollout = env.rollout(11, break_when_any_done=False)
    finally:
        env.close()
    done = rollout["next", keys.DONE].squeeze(-1)
    rewards = rollout["next", keys.REWARD].squeeze(-1)
    ends = torch.nonzero(done).flatten().tolist()
    assert len(ends) >= 2, done.tolist()  # episodes of at most 4 steps
    assert rewards[~done].eq(0).all()

    frames = rollout["next", keys.PIXELS]
    with torch.no_grad():
        embeddings = reward.encoder.embed_images(frames)  # independent of the module's cache
        goal = reward.encoder.embed_texts([reward.goal])[0]
    np.testing.assert_allclose(rollout["next", keys.REWARD_TERMS, "cos_goal"].squeeze(-1).numpy(),
                               (embeddings @ goal).numpy(), atol=1e-5)
    start = 0
    for end in ends:
        video = embeddings[start:end + 1].mean(0)
        expected = (video / video.norm()) @ goal
        assert rewards[end].item() == pytest.approx(expected.item(), abs=1e-5)
        assert rewards[end].item() != 0.0
        start = end + 1
    # the episode sums restart: the second episode's reward ignores the first episode's frames
    mixed = embeddings[:ends[1] + 1].mean(0)
    assert rewards[ends[1]].item() != pytest.approx(((mixed / mixed.norm()) @ goal).item(), abs=1e-7)


# -- hierarchical synthesis on hand-made vehicle states ---------------------------------------------------------
class RawSemantic(RewardModule):
    """A stub semantic reward: the raw score R is read from the ``raw`` key (no frames, no backbone)."""

    terms = ("raw",)

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        raw = next_state.get("raw")
        return {keys.REWARD: raw, "raw": raw}


#: (R, speed, lateral_offset, heading_error, lateral_offset_std, on_road, crashed)
STATES = [
    (-0.5, 5.0, 0.5, 0.1, 0.1, 1.0, 0.0),  # R below the window: R_norm = 0
    (0.5, 25.0, -1.0, -0.3, 0.2, 1.0, 0.0),  # R above the window: R_norm = 1
    (0.05, 15.0, 0.0, 0.0, 0.0, 1.0, 0.0),  # inside: R_norm = 0.75, perfect driving at v_des
    (0.0, 10.0, 3.0, 0.2, 0.1, 1.0, 0.0),  # off-centre beyond d_max: f_center = 0
    (-0.02, 12.0, 0.4, 2.0, 0.1, 1.0, 0.0),  # heading beyond heading_max: f_angle = 0
    (0.02, 12.0, 0.4, -0.2, 0.6, 1.0, 0.0),  # wobbling beyond sigma_max: f_stability = 0
    (0.08, 50.0, 0.1, 0.0, 0.0, 1.0, 0.0),  # far over speed: r_speed < 0
    (0.1, 20.0, 0.0, 0.0, 0.0, 1.0, 1.0),  # collision
    (0.1, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # off road
]
THETA_MIN, THETA_MAX, V_TARGET, D_MAX, HEADING_MAX, SIGMA_MAX = -0.1, 0.1, 20.0, 2.0, math.pi / 2, 0.4


def _state_td(states=STATES) -> TensorDict:
    cols = list(zip(*states))
    n = len(states)
    col = lambda i: torch.tensor(cols[i], dtype=torch.float32).unsqueeze(-1)  # noqa: E731
    vehicle = TensorDict({"speed": col(1), "lateral_offset": col(2), "heading_error": col(3),
                          "lateral_offset_std": col(4), "on_road": col(5), "crashed": col(6)}, batch_size=[n])
    return TensorDict({"raw": col(0), keys.VEHICLE_STATE: vehicle}, batch_size=[n])


def _expected(R, v, d, h, s, on_road, crashed, penalty=-10.0, off_road_penalty=True, over_speed=None):
    r_norm = (min(max(R, THETA_MIN), THETA_MAX) - THETA_MIN) / (THETA_MAX - THETA_MIN)
    v_des = r_norm * V_TARGET
    r_speed = 1 - abs(v - v_des) / V_TARGET
    f_center = max(1 - abs(d) / D_MAX, 0.0)
    f_angle = max(1 - abs(h) / HEADING_MAX, 0.0)
    f_stability = max(1 - s / SIGMA_MAX, 0.0)
    shaping = r_speed * f_center * f_angle * f_stability
    catastrophic = crashed > 0.5 or (off_road_penalty and on_road < 0.5) or (over_speed is not None and v > over_speed)
    return {"reward": penalty if catastrophic else shaping, "semantic": R, "semantic_norm": r_norm,
            "desired_speed": v_des, "r_speed": r_speed, "f_center": f_center, "f_angle": f_angle,
            "f_stability": f_stability, "shaping": shaping, "catastrophic": float(catastrophic), "semantic_raw": R}


def _synthesis(**kwargs: Any) -> HierarchicalReward:
    return HierarchicalReward(RawSemantic(), theta_min=THETA_MIN, theta_max=THETA_MAX, v_target=V_TARGET,
                              d_max=D_MAX, heading_max=HEADING_MAX, sigma_max=SIGMA_MAX, **kwargs)


def _check(td: TensorDict, **expected_kwargs: Any) -> None:
    for i, state in enumerate(STATES):
        expected = _expected(*state, **expected_kwargs)
        assert td[keys.REWARD][i].item() == pytest.approx(expected["reward"], abs=1e-6), (i, state)
        for name, value in expected.items():
            if name != "reward":
                assert td[keys.REWARD_TERMS, name][i].item() == pytest.approx(value, abs=1e-6), (i, name)


def test_synthesis_matches_the_papers_formulas_term_by_term():
    module = _synthesis()
    assert module.terms == ("semantic", "semantic_norm", "desired_speed", "r_speed", "f_center", "f_angle",
                            "f_stability", "shaping", "catastrophic", "semantic_raw")
    td = module(_state_td())
    _check(td)
    assert td[keys.REWARD].shape == (len(STATES), 1) and td[keys.REWARD].dtype == torch.float32
    # the hand-picked rows hit each clip / clamp they were meant to
    norm = td[keys.REWARD_TERMS, "semantic_norm"].squeeze(-1).tolist()
    assert norm[:3] == pytest.approx([0.0, 1.0, 0.75])
    assert td[keys.REWARD][2].item() == pytest.approx(1.0)  # at v_des, centred, straight, stable
    assert td[keys.REWARD_TERMS, "f_center"][3].item() == 0.0
    assert td[keys.REWARD_TERMS, "f_angle"][4].item() == 0.0
    assert td[keys.REWARD_TERMS, "f_stability"][5].item() == 0.0
    assert td[keys.REWARD_TERMS, "r_speed"][6].item() < 0
    assert td[keys.REWARD][-2:].squeeze(-1).tolist() == [-10.0, -10.0]


def test_semantic_signal_only_enters_through_the_desired_speed():
    td = _state_td([(r, 10.0, 0.3, 0.1, 0.05, 1.0, 0.0) for r in (-0.1, -0.05, 0.0, 0.05, 0.1)])
    out = _synthesis()(td)
    desired = out[keys.REWARD_TERMS, "desired_speed"].squeeze(-1).tolist()
    assert desired == pytest.approx([0.0, 5.0, 10.0, 15.0, 20.0])
    rewards = out[keys.REWARD].squeeze(-1).tolist()
    assert rewards.index(max(rewards)) == 2  # best where v = v_des
    for name in ("f_center", "f_angle", "f_stability"):
        assert out[keys.REWARD_TERMS, name].unique().numel() == 1


def test_no_reward_after_collision_setting_gives_zero_on_collision():
    td = _synthesis(collision_penalty=0.0)(_state_td())
    _check(td, penalty=0.0)
    assert td[keys.REWARD][-2:].squeeze(-1).tolist() == [0.0, 0.0]


def test_off_road_penalty_can_be_switched_off():
    td = _synthesis(off_road_penalty=False)(_state_td())
    _check(td, off_road_penalty=False)
    assert td[keys.REWARD][-1].item() == pytest.approx(1.0)  # shaping: v = v_des = 20, centred
    assert td[keys.REWARD][-2].item() == -10.0  # the collision is still penalised


def test_over_speed_is_penalised_like_a_collision():
    td = _synthesis(over_speed=30.0)(_state_td())
    _check(td, over_speed=30.0)
    assert td[keys.REWARD][6].item() == -10.0
    assert td[keys.REWARD_TERMS, "catastrophic"][6].item() == 1.0
    assert _synthesis()(_state_td())[keys.REWARD][6].item() != -10.0  # off by default


@pytest.mark.parametrize("window", [(0.0, 0.0), (0.1, -0.1), (0.05, 0.049)], ids=str)
def test_theta_window_must_be_increasing(window):
    with pytest.raises(ZooError, match="theta_max"):
        HierarchicalReward(RawSemantic(), theta_min=window[0], theta_max=window[1])


@pytest.mark.parametrize("name", ["v_target", "d_max", "heading_max", "sigma_max"])
def test_shaping_scales_must_be_positive(name):
    with pytest.raises(ZooError, match=name):
        HierarchicalReward(RawSemantic(), **{name: 0.0})


def test_create_reward_model_wraps_the_head_in_synthesis(clip_dir):
    reward = zoo.create_reward_model(clip_dir, head="lord", synthesis={"theta_min": 0.5, "theta_max": 1.5},
                                     device="cpu")
    assert isinstance(reward, HierarchicalReward) and isinstance(reward.semantic, LORDReward)
    assert (reward.theta_min, reward.theta_max) == (0.5, 1.5)
    assert reward.needs_pixels and "semantic_cos_negative" in reward.terms
    assert isinstance(zoo.create_reward_model(clip_dir, synthesis=True, device="cpu").semantic, CLGReward)
    assert isinstance(zoo.create_reward_model(clip_dir, device="cpu"), CLGReward)


# -- the embedding cache ---------------------------------------------------------------------------------------
@pytest.fixture
def clg(clip_dir) -> CLGReward:
    return CLGReward(clip_dir, device="cpu")


def test_cache_counts_misses_then_hits_and_returns_the_same_embeddings(clg):
    frames = _frames(5)
    first = clg.image_embeddings(frames)
    assert (clg.cache.hits, clg.cache.misses, len(clg.cache)) == (0, 5, 5)
    second = clg.image_embeddings(frames)
    assert (clg.cache.hits, clg.cache.misses, len(clg.cache)) == (5, 5, 5)
    assert torch.equal(first, second)
    assert clg.stats() == {"cache_hits": 5.0, "cache_misses": 5.0, "cache_hit_rate": 0.5}

    clg.image_embeddings(_frames(3, seed=1))  # different frames miss
    assert (clg.cache.hits, clg.cache.misses, len(clg.cache)) == (5, 8, 8)
    mixed = torch.cat([frames[:2], _frames(1, seed=2)])
    clg.image_embeddings(mixed)
    assert (clg.cache.hits, clg.cache.misses) == (7, 9)


def test_cache_embeddings_equal_uncached_embeddings(clg):
    frames = _frames(4)
    clg.image_embeddings(frames)
    with torch.no_grad():
        direct = clg.encoder.embed_images(frames)
    assert torch.allclose(clg.image_embeddings(frames), direct, atol=1e-6)


def test_cache_is_keyed_by_content_not_by_tensor_identity(clg):
    frames = _frames(2)
    clg.image_embeddings(frames)
    clg.image_embeddings(frames.clone())
    assert (clg.cache.hits, clg.cache.misses) == (2, 2)
    changed = frames.clone()
    changed[0, 0, 0, 0] ^= 1  # one pixel differs
    clg.image_embeddings(changed)
    assert (clg.cache.hits, clg.cache.misses) == (3, 3)


def test_cache_is_shared_by_copies_for_other_envs(clg):
    copy = clg.copy_for_env()
    assert copy is not clg
    assert copy.cache is clg.cache and copy.encoder is clg.encoder
    frames = _frames(3)
    clg.image_embeddings(frames)
    copy.image_embeddings(frames)
    assert (clg.cache.hits, clg.cache.misses) == (3, 3)
    assert copy.stats() == clg.stats()

    wrapped = HierarchicalReward(clg)
    wrapped_copy = wrapped.copy_for_env()
    assert wrapped_copy.semantic is not clg and wrapped_copy.semantic.cache is clg.cache
    assert wrapped_copy.semantic.encoder is clg.encoder
    assert wrapped_copy.stats() == clg.stats()


def test_cache_size_zero_disables_the_cache(clip_dir):
    reward = CLGReward(clip_dir, cache_size=0, device="cpu")
    frames = _frames(3)
    a = reward.image_embeddings(frames)
    b = reward.image_embeddings(frames)
    assert (reward.cache.hits, reward.cache.misses, len(reward.cache)) == (0, 6, 0)
    assert torch.allclose(a, b, atol=1e-6)


def test_cache_drops_the_least_recently_used_entries(clip_dir):
    reward = CLGReward(clip_dir, cache_size=2, device="cpu")
    frames = _frames(3)
    reward.image_embeddings(frames[:2])
    reward.image_embeddings(frames[:1])  # frame 0 is now the most recent
    reward.image_embeddings(frames[2:])  # evicts frame 1
    assert len(reward.cache) == 2
    hits = reward.cache.hits
    reward.image_embeddings(frames[:1])
    assert reward.cache.hits == hits + 1
    reward.image_embeddings(frames[1:2])
    assert reward.cache.hits == hits + 1  # frame 1 was evicted


def test_cached_rewards_equal_uncached_rewards(clip_dir):
    cached = HierarchicalReward(CLGReward(clip_dir, device="cpu"), theta_min=-0.2, theta_max=0.2)
    uncached = HierarchicalReward(CLGReward(clip_dir, cache_size=0, device="cpu"), theta_min=-0.2, theta_max=0.2)
    td = _state_td()
    td.set(keys.PIXELS, _frames(len(STATES)))
    first = cached(td.clone())
    second = cached(td.clone())  # all hits
    plain = uncached(td.clone())
    assert cached.stats()["cache_hits"] == len(STATES)
    for out in (second, plain):
        assert torch.allclose(out[keys.REWARD], first[keys.REWARD], atol=1e-6)
        assert torch.allclose(out[keys.REWARD_TERMS, "semantic_clg"], first[keys.REWARD_TERMS, "semantic_clg"],
                              atol=1e-6)


def test_the_crop_changes_the_frames_scored_and_the_cache_fingerprint(clip_dir):
    full = CLGReward(clip_dir, device="cpu")
    right = CLGReward(clip_dir, crop="right_half", device="cpu")
    frames = _frames(2)
    assert right.crop_frames(frames).shape == (2, 3, 64, 32)
    assert torch.equal(right.crop_frames(frames), frames[..., 32:])
    with torch.no_grad():
        expected = full.encoder.embed_images(frames[..., 32:])
    assert torch.allclose(right.image_embeddings(frames), expected, atol=1e-6)
    assert full.fingerprint != right.fingerprint


# -- batched relabelling of stored transitions ------------------------------------------------------------------
@pytest.fixture(scope="module")
def vlm_rollout(clip_dir) -> tuple[TensorDict, dict[str, Any]]:
    """A short rollout scored step by step by a VLM-RL reward on the env, flattened like a replay batch."""
    config = HierarchicalReward(CLGReward(clip_dir, crop="right_half", device="cpu"), theta_min=-0.2,
                                theta_max=0.2).config()
    reward = _instantiate(config)
    env = zoo.make_env("highway-fast", action="continuous", obs="both", bev_size=64, seed=3, reward=reward,
                       config={"duration": 6})
    try:
        torch.manual_seed(3)
        rollout = env.rollout(20, break_when_any_done=False).reshape(-1)
    finally:
        env.close()
    assert reward.stats()["cache_misses"] == 20
    return rollout, config


@pytest.mark.parametrize("batch_size", [2, 64])
def test_relabelling_a_stored_batch_reproduces_the_env_rewards(vlm_rollout, batch_size):
    rollout, config = vlm_rollout
    config = json.loads(json.dumps(config))
    config["init_args"]["semantic"]["init_args"].update(batch_size=batch_size, cache_size=0)
    relabel = _instantiate(config)
    batch = rollout.clone()
    batch["next", keys.REWARD].zero_()
    batch["next", keys.REWARD_TERMS].apply_(torch.zeros_like)
    out = relabel(batch)
    assert out is batch
    assert torch.allclose(batch["next", keys.REWARD], rollout["next", keys.REWARD], atol=1e-5)
    for name in relabel.terms:
        assert torch.allclose(batch["next", keys.REWARD_TERMS, name], rollout["next", keys.REWARD_TERMS, name],
                              atol=1e-5), name
    assert relabel.stats()["cache_misses"] == len(rollout)
    assert keys.REWARD not in batch.keys()  # the root state is not a reward slot


def test_relabelling_works_on_a_batch_with_leading_dims(vlm_rollout):
    rollout, config = vlm_rollout
    relabel = _instantiate(config)
    batch = rollout.clone().reshape(4, 5)
    batch["next", keys.REWARD].zero_()
    relabel(batch)
    assert batch["next", keys.REWARD].shape == (4, 5, 1)
    assert torch.allclose(batch["next", keys.REWARD].reshape(-1, 1), rollout["next", keys.REWARD], atol=1e-5)


def test_env_rewards_are_the_synthesis_of_the_clg_score(vlm_rollout):
    rollout, _ = vlm_rollout
    nxt = rollout["next"]
    terms = nxt[keys.REWARD_TERMS]
    clg = terms["semantic_clg"]
    assert torch.allclose(terms["semantic"], clg)
    assert torch.allclose(clg, terms["semantic_cos_positive"] - terms["semantic_cos_negative"], atol=1e-6)
    assert torch.allclose(terms["semantic_norm"], (clg.clamp(-0.2, 0.2) + 0.2) / 0.4, atol=1e-6)
    crashed = (nxt[keys.CRASHED] > 0.5) | (nxt[keys.ON_ROAD] < 0.5)
    assert torch.allclose(nxt[keys.REWARD], torch.where(crashed, -10.0, terms["shaping"]))


# -- config round trip and checkpoints --------------------------------------------------------------------------
def _instantiate(entry: Any) -> Any:
    """Build a recipe entry (``class_path`` + ``init_args``) by hand, recursively: no jsonargparse."""
    if isinstance(entry, dict) and "class_path" in entry:
        module, _, name = entry["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: _instantiate(v) for k, v in entry.get("init_args", {}).items()})
    return entry


def test_config_round_trips_a_hierarchical_clg_reward(clip_dir):
    original = HierarchicalReward(CLGReward(clip_dir, alpha=0.6, beta=1.4, crop="right_half", batch_size=8,
                                            device="cpu"),
                                  theta_min=-0.3, theta_max=0.1, v_target=25.0, collision_penalty=0.0,
                                  over_speed=35.0)
    config = original.config()
    assert json.loads(json.dumps(config)) == config  # plain data, as a recipe or a checkpoint stores it
    assert config["class_path"] == "zoo.rewards.HierarchicalReward"
    semantic = config["init_args"]["semantic"]
    assert semantic["class_path"] == "zoo.rewards.CLGReward"
    assert semantic["init_args"]["model"] == clip_dir
    assert {k: semantic["init_args"][k] for k in ("alpha", "beta", "crop", "batch_size")} == {
        "alpha": 0.6, "beta": 1.4, "crop": "right_half", "batch_size": 8}
    assert config["init_args"]["over_speed"] == 35.0 and config["init_args"]["collision_penalty"] == 0.0

    rebuilt = _instantiate(config)
    assert type(rebuilt) is HierarchicalReward and type(rebuilt.semantic) is CLGReward
    assert rebuilt.config() == config
    td = _state_td()
    td.set(keys.PIXELS, _frames(len(STATES)))
    a, b = original(td.clone()), rebuilt(td.clone())
    assert torch.allclose(a[keys.REWARD], b[keys.REWARD], atol=1e-6)
    assert torch.allclose(a[keys.REWARD_TERMS, "semantic"], b[keys.REWARD_TERMS, "semantic"], atol=1e-6)


@pytest.mark.parametrize("head", ["vlm-sr", "vlm-rm", "lord", "roboclip"])
def test_config_round_trips_every_head(clip_dir, head):
    original = zoo.create_reward_model(clip_dir, head=head, device="cpu", cache_size=16)
    config = original.config()
    rebuilt = _instantiate(config)
    assert type(rebuilt) is type(original) and rebuilt.config() == config
    frames = _frames(3)
    assert torch.allclose(rebuilt.score(rebuilt.image_embeddings(frames))["reward"],
                          original.score(original.image_embeddings(frames))["reward"], atol=1e-6)


def test_sac_with_a_vlm_reward_checkpoints_without_the_backbone_and_records_its_reward(clip_dir, tmp_path):
    import lightning as L

    from zoo.agents import AGENTS
    from zoo.envs import EnvConfig

    reward = HierarchicalReward(CLGReward(clip_dir, crop="right_half", device="cpu"), theta_min=-0.2, theta_max=0.2)
    agent = AGENTS.get("SAC")(env=EnvConfig(scenario="highway-fast", bev_size=64), reward=reward,
                              hidden_sizes=(32,), total_frames=32, frames_per_batch=16, learning_starts=16,
                              batch_size=8, buffer_size=64, updates_per_batch=1, seed=0)
    assert agent.env_config.obs == "both"  # the reward needs frames
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(agent)
    assert agent.tracker.frames == 32
    # the collector's env scored every frame with a copy of the reward sharing its cache
    assert reward.stats()["cache_misses"] + reward.stats()["cache_hits"] >= 32

    path = tmp_path / "agent.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state_keys = list(checkpoint["state_dict"])
    assert state_keys
    leaked = [k for k in state_keys if "encoder.model" in k or "text_model" in k or "vision_model" in k
              or k.startswith("reward.")]
    assert not leaked, leaked[:5]
    assert checkpoint["hyper_parameters"]["reward"] == reward.config()

    loaded = zoo.load_agent(path)
    assert loaded.reward is None  # acting needs no reward: the checkpoint's entry is data, never built on load
    assert loaded.hparams["reward"] == reward.config()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, agent.state_dict()[key]), key
    rebuilt = _instantiate(loaded.hparams["reward"])  # the recorded entry still describes the whole reward
    assert isinstance(rebuilt, HierarchicalReward) and isinstance(rebuilt.semantic, CLGReward)
    assert rebuilt.semantic.encoder is not reward.semantic.encoder  # rebuilt from the model folder
    td = _state_td()
    td.set(keys.PIXELS, _frames(len(STATES)))
    assert torch.allclose(rebuilt(td.clone())[keys.REWARD], reward(td.clone())[keys.REWARD], atol=1e-6)


# -- zoo reward calibrate ----------------------------------------------------------------------------------------
def _cli(argv: list[str]) -> int:
    from zoo.cli import main

    try:
        return main(argv)
    except SystemExit as exit_info:  # argparse errors
        return int(exit_info.code or 0)


def test_calibrate_writes_the_percentile_window_of_the_frame_scores(monkeypatch, zoo_cache, tmp_path, capsys):
    monkeypatch.setenv("ZOO_CACHE", str(zoo_cache))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = CLGReward.compute

    def spy(self, next_state):
        values = original(self, next_state)
        seen.append((next_state.get(keys.PIXELS).clone(), values[keys.REWARD].clone()))
        return values

    monkeypatch.setattr(CLGReward, "compute", spy)
    out = tmp_path / "calibration" / "window.json"
    code = _cli(["reward", "calibrate", "--model", "random:clip-tiny", "--frames", "20", "--bev-size", "64",
                 "--out", str(out)])
    assert code == 0
    assert (zoo_cache / "random" / "clip-tiny" / "config.json").is_file()  # built under $ZOO_CACHE
    printed = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == printed
    assert printed["model"] == "random:clip-tiny" and list(printed["heads"]) == ["clg"]
    result = printed["heads"]["clg"]
    assert result["frames"] == 20 and result["percentiles"] == [5.0, 95.0] and result["crop"] == "none"
    theta_min, theta_max = result["window"]
    assert theta_min < theta_max

    assert len(seen) == 1
    pixels, scores = seen[0]
    assert pixels.shape == (20, 3, 64, 64) and pixels.dtype == torch.uint8
    scores = scores.reshape(-1).double().numpy()
    low, high = np.percentile(scores, [5, 95])
    assert theta_min == pytest.approx(low, abs=1e-6)
    assert theta_max == pytest.approx(high, abs=1e-6)
    assert result["min"] == pytest.approx(scores.min(), abs=1e-6)
    assert result["max"] == pytest.approx(scores.max(), abs=1e-6)
    assert result["mean"] == pytest.approx(scores.mean(), abs=1e-6)

    # the scores are the CLG formula on those frames, recomputed independently of the reward module
    from zoo.vlm import load_dual_encoder

    encoder = load_dual_encoder(zoo_cache / "random" / "clip-tiny", device="cpu")
    with torch.no_grad():
        images = encoder.embed_images(pixels)
        pos, neg = encoder.embed_texts(["The road is clear with no car accidents",
                                        "Two cars have collided with each other on the road"])
    np.testing.assert_allclose(scores, (images @ pos - images @ neg).numpy(), atol=1e-5)


def test_calibrate_a_quantized_backbone_on_the_right_half(monkeypatch, zoo_cache, tmp_path):
    monkeypatch.setenv("ZOO_CACHE", str(zoo_cache))
    out = tmp_path / "window.json"
    code = _cli(["reward", "calibrate", "--model", "random:clip-tiny", "--frames", "6", "--bev-size", "32",
                 "--quantization-bits", "4", "--crop", "right_half", "--head", "lord", "--percentiles", "10", "90",
                 "--out", str(out)])
    assert code == 0
    printed = json.loads(out.read_text())
    assert printed["quantization"] == {"bits": 4} and list(printed["heads"]) == ["lord"]
    result = printed["heads"]["lord"]
    assert result["crop"] == "right_half" and result["percentiles"] == [10.0, 90.0] and result["frames"] == 6
    assert result["min"] <= result["window"][0] <= result["window"][1] <= result["max"]


@pytest.mark.parametrize("percentiles", [["95", "5"], ["50", "50"], ["-1", "50"], ["5", "101"]], ids=" ".join)
def test_calibrate_refuses_bad_percentiles(monkeypatch, zoo_cache, tmp_path, capsys, percentiles):
    monkeypatch.setenv("ZOO_CACHE", str(zoo_cache))
    out = tmp_path / "window.json"
    code = _cli(["reward", "calibrate", "--model", "random:clip-tiny", "--frames", "4", "--bev-size", "32",
                 "--percentiles", *percentiles, "--out", str(out)])
    assert code == 2
    assert "percentiles" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--frames", "1"], "--frames"),
    (["--crop", "top"], "right_half"),
    (["--head", "clip"], "clg"),
    (["--scenario", "mars"], "highway-fast"),
], ids=["frames", "crop", "head", "scenario"])
def test_calibrate_refuses_bad_options(monkeypatch, zoo_cache, capsys, argv, message):
    monkeypatch.setenv("ZOO_CACHE", str(zoo_cache))
    code = _cli(["reward", "calibrate", "--model", "random:clip-tiny", "--bev-size", "32", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_calibrate_refuses_an_unknown_random_model(monkeypatch, zoo_cache, capsys):
    monkeypatch.setenv("ZOO_CACHE", str(zoo_cache))
    assert _cli(["reward", "calibrate", "--model", "random:clip-huge"]) == 2
    assert "random:clip-tiny" in capsys.readouterr().err


def test_a_frame_repeated_within_one_batch_is_embedded_once(clg):
    frame = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    other = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    calls = []
    embed = clg.encoder.embed_images

    def counting(frames):
        calls.append(len(frames))
        return embed(frames)

    clg.encoder.embed_images = counting
    out = clg.image_embeddings(torch.cat([frame, other, frame, frame]))
    assert calls == [2]
    assert torch.equal(out[0], out[2]) and torch.equal(out[0], out[3])


def test_negative_cache_size_is_refused(clip_dir):
    with pytest.raises(ZooError, match="cache_size"):
        CLGReward(clip_dir, cache_size=-1, device="cpu")


def test_a_misspelt_head_argument_names_the_valid_ones(clip_dir):
    with pytest.raises(ZooError, match=r"alpah.*valid:.*alpha"):
        zoo.create_reward_model(clip_dir, head="clg", alpah=0.5, device="cpu")


def test_only_text_goals_count_as_prompts(clip_dir):
    with pytest.raises(ZooError, match="takes no prompt"):
        zoo.create_reward_model(clip_dir, head="clg", prompts={"alpha": "0.5"}, device="cpu")
