"""Driving metrics on hand-made rollouts; evaluation rollouts on held-out seeds; the episode video."""

from __future__ import annotations

from dataclasses import replace

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import TransformedEnv

import zoo
from zoo import keys
from zoo.envs import build_env
from zoo.evaluation import EVAL_SEED_OFFSET, SUMMARY_METRICS, episode_metrics, summarize

KMH = 3.6


def _rollout(speed_before, speed_after, distance, progress, crashed, reward, on_road=None) -> TensorDict:
    """A time-major episode as ``env.rollout`` returns it: the state at each step's start, and "next"."""
    steps = len(speed_after)
    on_road = [1] * steps if on_road is None else on_road

    def col(values):
        return torch.tensor(values, dtype=torch.float32).unsqueeze(-1)

    nxt = TensorDict({
        keys.VEHICLE_STATE: TensorDict({"speed": col(speed_after), "distance": col(distance),
                                        "route_progress": col(progress), "crashed": col(crashed),
                                        "on_road": col(on_road)}, [steps]),
        keys.REWARD: col(reward),
    }, [steps])
    state = TensorDict({"speed": col(speed_before)}, [steps])
    return TensorDict({keys.VEHICLE_STATE: state, "next": nxt}, [steps])


# a clean run that covers its route: 4 steps, speeds 10, 20, 30, 20 m/s
SUCCESS = _rollout(speed_before=[10, 10, 20, 30], speed_after=[10, 20, 30, 20], distance=[10, 30, 60, 80],
                   progress=[0.125, 0.375, 0.75, 1.0], crashed=[0, 0, 0, 0], reward=[1.0, 0.5, 0.5, 0.25])
# a crash at the end: 30 m/s at the start of the colliding step, braked to 6 m/s within it
CRASH = _rollout(speed_before=[20, 25, 30], speed_after=[25, 30, 6], distance=[20, 45, 70],
                 progress=[0.25, 0.5, 0.75], crashed=[0, 0, 1], reward=[0.5, 0.5, -1.0])
# far past the route but crashed: not a success
LONG_CRASH = _rollout(speed_before=[40, 40], speed_after=[40, 40], distance=[100, 200], progress=[1.5, 3.0],
                      crashed=[0, 1], reward=[1.0, 1.0])
# no collision, route not covered: not a success either
SHORT = _rollout(speed_before=[5], speed_after=[5], distance=[5], progress=[0.999], crashed=[0], reward=[0.0])
# route covered without collision, but off the road at the end: not a success
OFF_ROAD = _rollout(speed_before=[30, 30], speed_after=[30, 30], distance=[300, 700], progress=[0.5, 1.2],
                    crashed=[0, 0], reward=[1.0, 1.0], on_road=[1, 0])


def test_metrics_of_a_successful_episode():
    m = episode_metrics(SUCCESS)
    assert m == pytest.approx({"AS": 20 * KMH, "RC": 1.0, "TD": 80.0, "CS": 0.0, "SR": 1.0, "collisions": 0.0,
                               "return": 2.25, "length": 4.0})


def test_metrics_of_an_episode_ending_in_a_collision():
    m = episode_metrics(CRASH)
    assert m == pytest.approx({"AS": (25 + 30 + 6) / 3 * KMH, "RC": 0.75, "TD": 70.0, "CS": 30 * KMH,
                               "SR": 0.0, "collisions": 1.0, "return": 0.0, "length": 3.0})


def test_success_needs_the_car_on_the_road_at_the_end():
    assert episode_metrics(OFF_ROAD)["SR"] == 0.0


def test_success_needs_both_no_collision_and_the_full_route():
    assert episode_metrics(LONG_CRASH)["SR"] == 0.0
    assert episode_metrics(LONG_CRASH)["RC"] == pytest.approx(3.0)  # route completion may exceed 1
    assert episode_metrics(SHORT)["SR"] == 0.0
    assert episode_metrics(SHORT)["CS"] == 0.0


def test_summary_is_mean_and_population_std():
    summary = summarize([episode_metrics(SUCCESS), episode_metrics(CRASH)])
    assert set(summary) == set(SUMMARY_METRICS)
    expected = {
        "AS": ((20 + 61 / 3) / 2 * KMH, abs(20 - 61 / 3) / 2 * KMH),
        "RC": (0.875, 0.125), "TD": (75.0, 5.0), "CS": (15 * KMH, 15 * KMH), "SR": (0.5, 0.5),
        "AC": (0.5, 0.5), "CR": (0.5, 0.5), "return": (1.125, 1.125), "length": (3.5, 0.5),
    }
    for name, (mean, std) in expected.items():
        assert summary[name] == pytest.approx((mean, std), rel=1e-5, abs=1e-5), name  # float32 inputs


def test_summary_collision_metrics_over_several_episodes():
    summary = summarize([episode_metrics(e) for e in (SUCCESS, CRASH, LONG_CRASH, SHORT)])
    assert summary["AC"] == pytest.approx((0.5, 0.5))
    assert summary["CR"] == summary["AC"]  # one collision ends an episode
    assert summary["SR"] == pytest.approx((0.25, np.sqrt(3) / 4))


def test_summary_of_no_episodes_is_an_error():
    with pytest.raises(ValueError, match="no episodes"):
        summarize([])


# -- evaluation rollouts --------------------------------------------------------------------------
@pytest.fixture
def agent(make_agent):
    return make_agent("dqn")


def test_evaluate_uses_held_out_seeds(agent, monkeypatch):
    seeded = []
    original = TransformedEnv.reset

    def record(self, *args, **kwargs):
        if kwargs.get("seed") is not None:
            seeded.append(kwargs["seed"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TransformedEnv, "reset", record)
    result = zoo.evaluate(agent, episodes=3, seed=5, progress=False)
    assert result.seeds == [EVAL_SEED_OFFSET + 5, EVAL_SEED_OFFSET + 6, EVAL_SEED_OFFSET + 7]
    assert seeded == result.seeds
    assert len(result.episodes) == 3
    assert result.scenario == "highway-fast"


def test_evaluate_is_reproducible(agent):
    first = zoo.evaluate(agent, episodes=2, seed=0, progress=False)
    again = zoo.evaluate(agent, episodes=2, seed=0, progress=False)
    assert again.episodes == first.episodes
    assert again.summary == first.summary
    # episode i of seed s is episode 0 of seed s + i
    assert zoo.evaluate(agent, episodes=1, seed=1, progress=False).episodes[0] == first.episodes[1]


def test_evaluate_on_another_scenario(agent):
    result = zoo.evaluate(agent, scenario="highway", episodes=1, progress=False, max_steps=5)
    assert result.scenario == "highway"
    assert result.episodes[0]["length"] <= 5


def test_evaluation_result_flattens_for_mlflow(agent):
    metrics = zoo.evaluate(agent, episodes=1, progress=False).flat_metrics()
    assert {f"eval/{name}" for name in SUMMARY_METRICS} <= set(metrics)
    assert {f"eval/{name}_std" for name in SUMMARY_METRICS} <= set(metrics)


def test_video_is_a_gif_of_the_first_episode(agent, tmp_path):
    path = tmp_path / "video" / "episode.gif"
    result = zoo.evaluate(agent, episodes=2, seed=0, progress=False, video=path)
    frames = imageio.mimread(path)
    assert len(frames) >= 3
    assert len(frames) >= result.episodes[0]["length"]  # at least the reset frame and all but the last step
    for frame in frames:
        assert frame.ndim == 3 and frame.std() > 10, "blank video frame"
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])
    assert min(frames[0].shape[:2]) >= 384, "a frame too small to watch"


def test_video_frames_carry_speed_and_reward_as_text():
    from zoo.evaluation.video import CAPTION_PX, annotate, caption

    frame = np.full((96, 96, 3), 100, np.uint8)
    out = annotate(frame, caption(3, 25.0, 0.5))
    assert caption(3, 25.0, 0.5) == "step 3  speed 90 km/h  reward +0.50"
    assert out.shape == (4 * 96 + CAPTION_PX, 4 * 96, 3)  # nearest-neighbour, integer scale
    assert out[:CAPTION_PX].max() > 200 and (out[CAPTION_PX:] == 100).all()  # white text on the band only


def test_video_shows_every_step_up_to_the_end_of_the_episode(agent, tmp_path):
    path = tmp_path / "episode.gif"
    result = zoo.evaluate(agent, episodes=1, seed=0, progress=False, video=path)
    # the reset frame, then one per step
    assert len(imageio.mimread(path)) == result.episodes[0]["length"] + 1


def test_episode_i_starts_from_reset_with_its_seed(agent):
    """The evaluated episode is the one highway-env generates for reset(seed=EVAL_SEED_OFFSET + seed + i)."""
    import gymnasium as gym

    result = zoo.evaluate(agent, episodes=1, seed=3, progress=False)
    env = build_env(replace(agent.env_config, num_envs=1))
    first = env.reset(seed=result.seeds[0])
    from zoo.envs import SCENARIOS

    preset = SCENARIOS.get("highway-fast")
    plain = gym.make(preset.gym_id, config=preset.config)  # highway-env's own env with the preset's traffic
    obs, _ = plain.reset(seed=result.seeds[0])
    assert torch.allclose(first["observation"], torch.as_tensor(obs, dtype=torch.float32).reshape(-1))
    env.close()
