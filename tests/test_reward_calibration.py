"""Every method is a real reward with the shipped backbone; calibrations live in the model's card; policies pin
the reward models and the scenario preset they were trained with."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import pytest
import torch
import yaml

import zoo
from zoo import keys
from zoo.envs import EnvConfig
from zoo.errors import ZooWarning
from zoo.hub.cards import read_card
from zoo.hub.resolve import model_weights_digest, resolve_model, weights_digest
from zoo.rewards.base import RewardModule
from zoo.rewards.calibrate import collision_ahead, record, separating_threshold
from zoo.rewards.vlm import CLIP_SR_THRESHOLD, VLMSRReward

BACKBONE = "drive-clip-bev-tiny"


@pytest.fixture(scope="module")
def real_rollout():
    """40 next states of highway-fast under random meta-actions (a crash included), with 4-frame windows."""
    torch.manual_seed(0)
    states, imminent = record(EnvConfig("highway-fast", action="discrete", obs="bev", frame_window=4), 40, seed=3,
                              progress=False)
    assert (states.get(keys.CRASHED) > 0.5).any(), "the recording must hold a collision for the sparse reward"
    return states, imminent


def _reward_from_entry(entry: dict) -> RewardModule:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--reward", type=RewardModule)
    return parser.instantiate(parser.parse_object({"reward": entry})).reward


# -- every method of the paper suite pays a reward that varies ------------------------------------------------
def test_every_paper_method_pays_a_varying_reward_on_a_real_rollout(real_rollout):
    from zoo.benchmark.grid import SUITES
    from zoo.benchmark.methods import method_reward

    states, _ = real_rollout
    for method in SUITES["paper"]:
        entry, _ = method_reward(method, backbone=BACKBONE)
        reward = _reward_from_entry(entry).compute(states.clone())[keys.REWARD].reshape(-1)
        assert reward.std() > 0, f"method {method!r} pays the constant {reward[0].item()} on every frame"


def test_vlm_sr_uses_the_cards_threshold_and_pays_both_values(real_rollout):
    states, _ = real_rollout
    card_threshold = read_card(resolve_model(BACKBONE).card_folder)["calibration"]["vlm-sr"]["threshold"]
    reward = VLMSRReward(BACKBONE, device="cpu")
    assert reward.threshold == card_threshold != CLIP_SR_THRESHOLD
    paid = reward.compute(states.clone())[keys.REWARD].reshape(-1)
    assert set(paid.tolist()) == {-1.0, 1.0}
    assert VLMSRReward(BACKBONE, threshold=0.5, device="cpu").threshold == 0.5  # an explicit value wins


def test_the_one_liner_is_not_saturated_on_a_real_rollout(real_rollout):
    states, _ = real_rollout
    reward = zoo.create_reward_model(BACKBONE, synthesis=True, device="cpu")
    window = read_card(resolve_model(BACKBONE).card_folder)["calibration"]["clg"]["window"]
    assert [reward.theta_min, reward.theta_max] == window
    r_norm = reward.compute(states.clone())["semantic_norm"].reshape(-1)
    at_bound = ((r_norm <= 0) | (r_norm >= 1)).float().mean().item()
    assert at_bound < 0.5, f"{at_bound:.0%} of the frames saturate R_norm"


def test_explicit_window_wins_and_a_backbone_without_a_card_keeps_vlm_rls(real_rollout):
    explicit = zoo.create_reward_model(BACKBONE, synthesis={"theta_min": -0.1, "theta_max": 0.1}, device="cpu")
    assert (explicit.theta_min, explicit.theta_max) == (-0.1, 0.1)
    cardless = zoo.create_reward_model("random:clip-tiny", synthesis=True, device="cpu")
    assert (cardless.theta_min, cardless.theta_max) == (-0.03, 0.0)


def test_a_calibration_measured_on_another_crop_is_not_used():
    reward = zoo.create_reward_model(BACKBONE, head="vlm-sr", crop="right_half", device="cpu")
    assert reward.calibration == {} and reward.threshold == CLIP_SR_THRESHOLD


def test_the_dual_pathway_and_the_adapter_have_their_own_windows():
    dual = zoo.create_reward_model(BACKBONE, head="dual-pathway", synthesis=True, device="cpu")
    card = read_card(resolve_model(BACKBONE).card_folder)["calibration"]
    assert [dual.theta_min, dual.theta_max] == card["dual-pathway"]["window"] != card["clg"]["window"]
    adapter = read_card(resolve_model(f"{BACKBONE}.lora-roundabout").card_folder)["calibration"]
    assert adapter["clg"]["scenario"] == "roundabout" and adapter["clg"]["window"] != card["clg"]["window"]


# -- calibration rules ---------------------------------------------------------------------------------------------
def test_the_threshold_is_the_best_separating_cosine():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    safe = torch.tensor([False, False, True, False, True, True])
    threshold, balanced = separating_threshold(scores, safe)
    assert threshold == pytest.approx(0.2) and balanced == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(zoo.errors.ZooError, match="2 safe and 0 unsafe"):
        separating_threshold(scores[:2], torch.tensor([True, True]))


def test_a_frame_is_imminent_within_the_horizon_before_a_crash():
    crashed = torch.tensor([False, False, False, False, True])
    assert collision_ahead(crashed, 2).tolist() == [False, False, True, True, True]


def test_calibrate_writes_every_head_to_the_card_of_a_copy(tmp_path):
    from zoo.cli import main

    folder = tmp_path / "drive-clip-bev-tiny.copy"
    shutil.copytree(resolve_model(BACKBONE).card_folder, folder)
    card = json.loads((folder / "zoo.json").read_text())
    card.pop("calibration")
    (folder / "zoo.json").write_text(json.dumps(card))
    argv = ["reward", "calibrate", "--model", str(folder), "--head", "clg", "vlm-sr", "--frames", "30", "--seed", "3",
            "--write-card"]
    torch.manual_seed(0)
    assert main(argv) == 0
    written = read_card(folder)["calibration"]
    assert set(written) == {"clg", "vlm-sr"}
    assert written["clg"]["window"][0] < written["clg"]["window"][1] and written["clg"]["frames"] == 30
    assert isinstance(written["vlm-sr"]["threshold"], float) and "window" not in written["vlm-sr"]
    assert written["clg"]["command"] == "zoo reward calibrate " + " ".join(argv[2:])
    assert zoo.create_reward_model(str(folder), head="vlm-sr", device="cpu").threshold == written["vlm-sr"]["threshold"]


def test_write_card_needs_a_zoo_model(capsys):
    from zoo.cli import main

    assert main(["reward", "calibrate", "--model", "random:clip-tiny", "--write-card"]) == 2
    assert "has none" in capsys.readouterr().err


# -- digests and pins ----------------------------------------------------------------------------------------------
def test_weights_digest_of_one_file_is_its_sha256sum():
    folder = resolve_model(BACKBONE).card_folder
    expected = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert weights_digest(folder) == model_weights_digest(BACKBONE) == expected


def test_weights_digest_refuses_a_folder_without_weights(tmp_path):
    with pytest.raises(zoo.errors.ZooError, match="no \\*.safetensors"):
        weights_digest(tmp_path)


def test_a_saved_policy_pins_its_reward_models_and_preset(make_agent, tmp_path):
    from zoo.envs.presets import SCENARIOS
    from zoo.hub.pins import reward_model_names
    from zoo.hub.policies import load_policy_folder, save_policy_folder

    folder = save_policy_folder(make_agent("dqn"), tmp_path / "policy", "dqn-highway.test", "A tiny DQN")
    card = json.loads((folder / "zoo.json").read_text())
    entry = yaml.safe_load((folder / "agent.yaml").read_text())
    assert card["pins"] == entry["pins"] == {"reward_models": {}, "scenario": {
        "name": "highway-fast", "version": SCENARIOS.get("highway-fast").version}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooWarning)
        load_policy_folder(folder)  # nothing drifted: no warning

    entry["pins"] = {"reward_models": {BACKBONE: "0" * 64}, "scenario": {"name": "highway-fast", "version": 0}}
    (folder / "agent.yaml").write_text(yaml.safe_dump(entry))
    with pytest.warns(ZooWarning) as caught:
        load_policy_folder(folder)
    messages = [str(w.message) for w in caught]
    assert any("0" * 64 in m and model_weights_digest(BACKBONE) in m for m in messages)
    assert any("preset version 0" in m and f"version {SCENARIOS.get('highway-fast').version} now" in m
               for m in messages)

    dual = {"class_path": "zoo.rewards.HierarchicalReward", "init_args": {"semantic": {
        "class_path": "zoo.rewards.DualPathwayReward", "init_args": {
            "model": BACKBONE, "describer": "risk-describer-tiny",
            "gate": {"class_path": "zoo.perception.AttentionGate", "init_args": {"detector": "oracle"}}}}}}
    assert reward_model_names(dual) == [BACKBONE, "risk-describer-tiny"]


@pytest.mark.parametrize("withdrawn", ["sac-merge.vlm-sr", "sac-highway-fast.drivevlm-rl"])
def test_policies_that_learnt_nothing_a_constant_could_not_are_withdrawn(withdrawn):
    """sac-merge.vlm-sr was trained on a constant reward; sac-highway-fast.drivevlm-rl on the version-1 preset, where
    pressing SLOWER forever reached the same SR 1.00 (docs/models.md)."""
    from zoo.shipped import checkpoints_dir

    assert withdrawn not in zoo.list_models("policy")
    assert not (checkpoints_dir() / withdrawn).exists()
