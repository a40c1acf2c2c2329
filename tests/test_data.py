"""``zoo data bev-captions``: rows, ground truth, captions, splits by seed, refusal to overwrite."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

import zoo
from zoo.cli import main
from zoo.data.bev_boxes import make_bev_boxes
from zoo.data.bev_captions import (
    CAPTIONS,
    DYNAMIC_CAPTIONS,
    GAP_NONE,
    TTC_NONE,
    _window_dynamics,
    dynamic_risk_category,
    make_bev_captions,
    parse_dynamic_risk,
    record_episode,
    risk_category,
)
from zoo.envs.driving import OBJECT_CLASSES
from zoo.envs.presets import SCENARIOS
from zoo.errors import ZooError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bev") / "ds"
    assert main(["data", "bev-captions", "--scenarios", "highway-fast", "merge", "--frames", "60",
                 "--out", str(out), "--bev-size", "48", "--window", "3"]) == 0
    return out, datasets.load_from_disk(str(out))


def test_rows_have_frames_windows_ground_truth_and_captions(dataset):
    _, data = dataset
    assert set(data) == {"train", "validation"}
    row = data["train"][0]
    assert row["image"].size == (48, 48)
    assert len(row["window"]) == 3 and row["window"][-1].tobytes() == row["image"].tobytes()
    assert row["caption"] in CAPTIONS[data["train"].features["risk"].int2str(row["risk"])]
    assert 0 <= row["time_to_collision"] <= TTC_NONE and 0 <= row["gap_to_leader"] <= GAP_NONE
    assert sum(len(split) for split in data.values()) >= 60


def test_rows_have_the_dynamic_risk_of_their_window(dataset):
    _, data = dataset
    split = data["train"]
    names = split.features["dynamic_risk"].names
    assert names == list(DYNAMIC_CAPTIONS)
    for row in split.select(range(min(20, len(split)))):
        risk = names[row["dynamic_risk"]]
        assert row["dynamic_caption"] in DYNAMIC_CAPTIONS[risk]
        assert row["leader_accel"] <= 0 and isinstance(row["cut_in"], bool)
        assert (risk == "collision") == row["crashed"]


def test_every_dynamic_caption_parses_back_to_its_risk_type():
    for risk, captions in DYNAMIC_CAPTIONS.items():
        assert all(parse_dynamic_risk(c) == risk for c in captions), risk
    assert parse_dynamic_risk("purple elephants") is None and parse_dynamic_risk(None) is None


def test_dynamic_risk_goes_most_severe_first():
    calm = {"crashed": False, "gap": 50.0, "leader_speed": 25.0, "leader_accel": 0.0, "cut_in": False, "ttc": 100.0}
    assert dynamic_risk_category(**calm) == "clear"
    assert dynamic_risk_category(**{**calm, "ttc": 3.0}) == "closing_fast"
    assert dynamic_risk_category(**{**calm, "ttc": 3.0, "leader_accel": -4.0}) == "hard_braking"
    assert dynamic_risk_category(**{**calm, "leader_accel": -4.0, "cut_in": True}) == "cut_in"
    assert dynamic_risk_category(**{**calm, "leader_speed": 0.5, "cut_in": True}) == "stopped_obstacle"
    assert dynamic_risk_category(**{**calm, "leader_speed": 0.5, "crashed": True}) == "collision"
    assert dynamic_risk_category(**{**calm, "leader_speed": 0.5, "gap": GAP_NONE}) == "clear"  # no leader


def _scene(ego_lane, leader, gap, vehicles):
    return {"ego_lane": ego_lane, "leader": leader, "gap": gap, "vehicles": vehicles}


def test_cut_in_and_leader_braking_are_read_over_the_window():
    lane0, lane1 = ("0", "1", 0), ("0", "1", 1)
    # vehicle 7 moves from the next lane into the ego lane 20 m ahead while braking 2 m/s per step
    scenes = [_scene(lane0, None, GAP_NONE, {7: (lane1, 30.0)}), _scene(lane0, None, GAP_NONE, {7: (lane1, 28.0)}),
              _scene(lane0, 7, 20.0, {7: (lane0, 26.0)})]
    speed, accel, cut_in = _window_dynamics(scenes, dt=1.0)
    assert speed == 26.0 and accel == -2.0 and cut_in
    assert not _window_dynamics(scenes[-1:], dt=1.0)[2]  # one frame: no lane change seen
    ego_moved = [_scene(lane1, None, GAP_NONE, {7: (lane0, 30.0)}), _scene(lane0, 7, 20.0, {7: (lane0, 30.0)})]
    assert not _window_dynamics(ego_moved, dt=1.0)[2]  # the ego car changed lanes: not a cut-in
    far = [scenes[0], _scene(lane0, 7, 45.0, {7: (lane0, 30.0)})]
    assert not _window_dynamics(far, dt=1.0)[2]


def test_splits_are_disjoint_by_episode_seed(dataset):
    _, data = dataset
    train, validation = set(data["train"]["episode_seed"]), set(data["validation"]["episode_seed"])
    assert train and validation and not train & validation
    assert all(seed % 5 == 0 for seed in validation)


def test_collision_labels_follow_the_crash():
    rows = record_episode("highway-fast", seed=3, policy="reckless", bev_size=48)
    crashed = [r["step"] for r in rows if r["crashed"]]
    assert crashed, "a reckless episode on highway-fast should end in a collision"
    # highway-fast acts at 1 Hz: with a 1 s horizon the crash step and the one before are positive
    positive = [r["step"] for r in rows if r["collision_within_horizon"]]
    assert positive == [s for s in (crashed[0] - 1, crashed[0]) if s >= 0]
    assert risk_category(True, True, 0.5, False) == "collision"


def test_a_faster_recording_samples_the_same_driving_densely():
    """At 5 Hz the policy still decides once a second: the crash comes at about the same time, and the
    1 s horizon spans the crash frame and the five before it."""
    slow = record_episode("highway-fast", seed=3, policy="reckless", bev_size=48)
    fast = record_episode("highway-fast", seed=3, policy="reckless", bev_size=48, frame_rate_hz=5)
    crash_s = {hz: next(r["step"] for r in rows if r["crashed"]) / hz for hz, rows in ((1, slow), (5, fast))}
    assert abs(crash_s[5] - crash_s[1]) <= 1.0
    positive = [r["step"] for r in fast if r["collision_within_horizon"]]
    assert positive == list(range(max(0, round(5 * crash_s[5]) - 5), round(5 * crash_s[5]) + 1))


def test_decision_windows_are_one_policy_decision_apart_and_rows_keep_the_boxes():
    """At 5 Hz on highway-fast (1 decision per second) a window's frames are 5 recorded frames apart, the first frame
    repeated before the episode's start; the boxes of the other road users come with each row."""
    rows = record_episode("highway-fast", seed=3, policy="cautious", bev_size=48, window=3, frame_rate_hz=5,
                          decision_windows=True, objects=True, max_steps=12)
    assert len(rows) == 12
    for step, earlier in ((11, (1, 6, 11)), (2, (0, 0, 2))):
        for frame, source in zip(rows[step]["window"], earlier, strict=True):
            np.testing.assert_array_equal(frame, rows[source]["image"])
    assert rows[5]["objects"].shape == (16, 6) and rows[5]["objects"][:, 5].any()  # some car in view
    consecutive = record_episode("highway-fast", seed=3, policy="cautious", bev_size=48, window=3, frame_rate_hz=5,
                                 max_steps=12)
    np.testing.assert_array_equal(consecutive[11]["window"][0], consecutive[9]["image"])


def test_a_crash_ahead_puts_a_crashed_car_on_the_road():
    """Crashed cars are otherwise in a frame only when the episode ends; the recorder's crash marks the car ahead
    crashed (highway-env stops it and draws it red), a `crashed_car` box from then on. An episode drawn not to crash
    drives as it would without the option."""
    crashed_car = OBJECT_CLASSES.index("crashed_car")
    rows = record_episode("highway-fast", seed=3, policy="cautious", bev_size=48, objects=True,
                          crash_probability=1.0)
    crash = [r["step"] for r in rows if r["crash_ahead"]]
    assert crash and crash == list(range(crash[0], len(rows)))
    assert not any(((r["objects"][:, 4] == crashed_car) & (r["objects"][:, 5] > 0)).any() for r in rows[:crash[0]])
    first = rows[crash[0]]["objects"]
    assert ((first[:, 4] == crashed_car) & (first[:, 5] > 0)).sum() == 1
    plain = record_episode("highway-fast", seed=3, policy="cautious", bev_size=48)
    never = record_episode("highway-fast", seed=3, policy="cautious", bev_size=48, crash_probability=0.0)
    assert [r["speed"] for r in never] == [r["speed"] for r in plain] and not any(r["crash_ahead"] for r in never)
    with pytest.raises(ZooError, match=r"crash_probability must be within \[0, 1\], got -0.1"):
        make_bev_boxes(["highway-fast"], 5, "unused", crash_probability=-0.1, progress=False)


def test_a_stalled_episode_stops_the_car_ahead_and_the_windows_say_so():
    """highway-env's traffic stops only behind a crash; the recorder's stall brakes the car ahead to a standstill,
    so `stopped_obstacle` windows occur. An episode drawn not to stall drives as it would without the option."""
    rows = record_episode("highway-fast", seed=0, policy="cautious", bev_size=48, stall_probability=1.0)
    stalled = [r["step"] for r in rows if r["stalled"]]
    assert stalled and stalled == list(range(stalled[0], len(rows)))  # from the stall on, to the episode's end
    assert any(r["dynamic_risk"] == "stopped_obstacle" for r in rows if r["stalled"])
    assert not any(r["dynamic_risk"] == "stopped_obstacle" for r in rows if not r["stalled"])
    plain = record_episode("highway-fast", seed=0, policy="cautious", bev_size=48)
    never = record_episode("highway-fast", seed=0, policy="cautious", bev_size=48, stall_probability=0.0)
    assert [r["speed"] for r in never] == [r["speed"] for r in plain] and not any(r["stalled"] for r in never)
    with pytest.raises(ZooError, match=r"stall_probability must be within \[0, 1\], got 1.5"):
        make_bev_captions(["highway-fast"], 5, "unused", stall_probability=1.5, progress=False)


def test_a_frame_rate_the_simulator_cannot_step_is_refused():
    with pytest.raises(ZooError, match=r"frame_rate_hz 4 .*simulation frequency \(15 Hz\)"):
        record_episode("merge", seed=0, policy="random", bev_size=48, frame_rate_hz=4)


def test_existing_output_is_never_overwritten(dataset, capsys):
    out, _ = dataset
    before = sorted(p.name for p in out.iterdir())
    assert main(["data", "bev-captions", "--frames", "5", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_scenarios_without_meta_actions_are_refused(tmp_path):
    with pytest.raises(ZooError, match="racetrack"):
        make_bev_captions(["racetrack"], 5, tmp_path / "x", progress=False)


def test_a_recording_too_short_for_both_splits_keeps_one_and_training_on_it_says_why(tmp_path):
    from zoo.data.datamodule import BEVCaptionsData, CaptionDataset

    out = tmp_path / "short"
    data = make_bev_captions(["highway-fast"], 5, out, seed=0, bev_size=48, progress=False)  # seed 0: validation
    assert set(data) == {"validation"}
    with pytest.raises(ZooError, match="needs train and validation splits, has validation: record more frames"):
        BEVCaptionsData(CaptionDataset(str(out), ["highway-fast"], frames=5)).setup()


@pytest.mark.parametrize("scenario", [s for s in zoo.list_scenarios() if "discrete" in SCENARIOS.get(s).action_modes])
def test_every_meta_action_scenario_records_with_every_policy(scenario):
    """The recording policies draw among the meta-actions the scenario has (the intersection offers no lane change:
    a lane change's index does not exist there)."""
    for policy in ("random", "reckless", "cautious"):
        rows = record_episode(scenario, seed=1, policy=policy, bev_size=32, max_steps=12)
        assert len(rows) >= 2 and [r["step"] for r in rows] == list(range(len(rows)))


def test_captions_data_reads_the_describer_captions_with_the_clg_goal_beside(tmp_path):
    """`captions: dynamic` trains the image tower against the risk describer's templates (the dual pathway's
    dynamic goals); every batch still carries the frame's CLG goal, from the static risk category."""
    import lightning as L

    from zoo.data.bev_captions import SEVERITY
    from zoo.data.datamodule import BEVCaptionsData, CaptionDataset
    from zoo.train.contrastive import ContrastiveRewardTraining, Export

    make_bev_captions(["highway-fast"], 60, tmp_path / "train", seed=0, bev_size=48, progress=False)
    make_bev_captions(["highway-fast"], 30, tmp_path / "test", seed=1_000_000, bev_size=48, progress=False)
    data = BEVCaptionsData(CaptionDataset(str(tmp_path / "train")), test=CaptionDataset(str(tmp_path / "test")),
                           batch_size=8, captions="dynamic")
    data.setup()
    templates = {t for texts in DYNAMIC_CAPTIONS.values() for t in texts}
    assert data.captions and set(data.captions) <= templates and data.risk_names == list(DYNAMIC_CAPTIONS)
    frames, caption, risk, dangerous = data.tensors("train").tensors
    rows = data.splits["train"]
    static = rows.features["risk"].names
    assert dangerous.tolist() == [SEVERITY[static[i]] >= 2 for i in rows["risk"]]
    assert [data.risk_names[i] for i in risk] == [data.risk_names[i] for i in rows["dynamic_risk"]]
    assert [DYNAMIC_CAPTIONS[data.risk_names[r]].count(data.captions[c]) for c, r in zip(caption, risk)] \
        == [1] * len(risk)
    L.seed_everything(0)
    module = ContrastiveRewardTraining("drive-clip-bev-tiny", pretrained=False, goal_loss_weight=1.0,
                                       caption_loss_weight=1.0,
                                       export=Export(folder=str(tmp_path / "out"), name="drive-clip-bev-tiny.t"))
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, datamodule=data)
    retrieval = zoo.hub.cards.read_card(tmp_path / "out")["metrics"]["risk_retrieval"]["test"]
    assert set(retrieval) == {"trained", "start"}
    assert 0 <= retrieval["trained"]["image_to_text_balanced_accuracy"] <= 1
    with pytest.raises(ZooError, match="unknown captions 'dynamics'.*Valid choices: static, dynamic"):
        BEVCaptionsData(CaptionDataset(str(tmp_path / "train")), captions="dynamics")
