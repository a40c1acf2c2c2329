"""Perception: simulator boxes in the env, detectors (oracle, learned, shipped), the attention gate, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from zoo import keys
from zoo.envs import EnvConfig
from zoo.envs.driving import MAX_OBJECTS, OBJECT_CLASSES, DrivingEnv
from zoo.errors import ZooError
from zoo.perception import (
    DEFAULT_DETECTOR,
    AttentionGate,
    BEVCenterNet,
    CenterNetConfig,
    Detections,
    Detector,
)
from zoo.perception.detector import OracleDetector, load_detector
from zoo.perception.gate import REGIONS, SCENARIO_REGIONS
from zoo.perception.metrics import box_iou, detection_quality, gate_agreement

SIZE = 96


def _vehicle_pixels(frame: np.ndarray) -> np.ndarray:
    """H x W bool: pixels that are neither road grey nor lane-marking white (vehicle bodies and outlines)."""
    grey = (frame == 100).all(0)
    white = (frame == 255).all(0)
    return ~(grey | white)


def _objects(*rows: tuple[float, float, float, float, int]) -> torch.Tensor:
    """A ``keys.OBJECTS`` array with the given (x1, y1, x2, y2, class index) rows."""
    out = torch.zeros(MAX_OBJECTS, 6)
    for i, row in enumerate(rows):
        out[i] = torch.tensor([*row, 1.0])
    return out


def _state(*frames: torch.Tensor) -> TensorDict:
    return TensorDict({keys.OBJECTS: torch.stack(frames)}, batch_size=[len(frames)])


class FixedDetector(Detector):
    """Returns the same detections for every frame (to test the gate alone)."""

    in_key = keys.PIXELS
    classes = OBJECT_CLASSES

    def __init__(self, detections: Detections) -> None:
        super().__init__()
        self.detections = detections

    def detect(self, next_state):
        return [self.detections] * next_state.numel()


# -- simulator objects --------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["highway-fast", "roundabout"])
def test_oracle_boxes_land_on_the_vehicles(scenario):
    env = DrivingEnv(EnvConfig(scenario, obs="bev", objects=True, bev_size=SIZE))
    obs, _ = env.reset(seed=3)
    for _ in range(2):
        obs, *_ = env.step(1)
    centre_x, centre_y = (int(f * SIZE) for f in env.unwrapped.config["centering_position"])  # the ego car
    env.close()
    frame, objects = obs[keys.PIXELS], obs[keys.OBJECTS]
    assert objects.shape == (MAX_OBJECTS, 6) and objects.dtype == np.float32
    valid = objects[objects[:, 5] > 0]
    assert len(valid) >= 1
    vehicle = _vehicle_pixels(frame)
    covered = np.zeros_like(vehicle)
    for x1, y1, x2, y2, label, _ in valid:
        assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE and OBJECT_CLASSES[int(label)] in OBJECT_CLASSES
        box = np.s_[round(y1):round(y2), round(x1):round(x2)]
        # a turned car's drawing is rounded to whole pixels after turning: its box may miss it by a pixel
        covered[max(0, int(y1) - 1):int(np.ceil(y2)) + 1, max(0, int(x1) - 1):int(np.ceil(x2)) + 1] = True
        if vehicle[box].size == 0:  # a car all but outside the frame: a sliver of its box rounds to no pixel
            continue
        # a 5 m x 2 m car turned 45° fills 10 / (7/√2)² ≈ 41 % of its upright box (roundabout traffic)
        assert vehicle[box].mean() > 0.35, f"box {x1, y1, x2, y2} lies on the road, not on a vehicle"
    # every vehicle pixel outside the boxes is the ego car's
    ego = np.zeros_like(vehicle)
    ego[centre_y - 7:centre_y + 7, centre_x - 7:centre_x + 7] = True
    assert not (vehicle & ~covered & ~ego).any()


def test_objects_are_written_only_when_asked_and_need_a_bev_frame():
    import zoo

    td = zoo.make_env("highway-fast", obs="bev", bev_size=SIZE).reset()
    assert keys.OBJECTS not in td
    td = zoo.make_env("highway-fast", obs="bev", bev_size=SIZE, objects=True).reset()
    assert td[keys.OBJECTS].shape == (MAX_OBJECTS, 6)
    with pytest.raises(ZooError, match="needs obs 'bev' or 'both'"):
        zoo.make_env("highway-fast", obs="kinematics", objects=True)


# -- the gate -----------------------------------------------------------------------------------------------
AHEAD = (40.0, 46.0, 48.0, 50.0, 0)  # a car in the ego lane, 10 px ahead of the ego car (x = 28.8 px)
BESIDE = (40.0, 36.0, 48.0, 40.0, 0)  # the same, one lane to the left
BEHIND = (5.0, 46.0, 13.0, 50.0, 0)


def test_gate_opens_on_a_critical_object_inside_the_roi_only():
    gate = AttentionGate("oracle")
    state = _state(_objects(AHEAD), _objects(BESIDE), _objects(BEHIND), _objects())
    assert gate(state).squeeze(-1).tolist() == [True, False, False, False]
    assert gate.stats() == {"gate_rate": 0.25, "gate_calls": 4.0}
    whole_frame = AttentionGate("oracle", roi=None)
    assert whole_frame(state).squeeze(-1).tolist() == [True, True, True, False]


def test_gate_watches_a_named_region():
    """Around the ego car (the roundabout's and the intersection's region) a car behind counts, one far ahead not."""
    far_ahead = (80.0, 46.0, 88.0, 50.0, 0)
    around = AttentionGate("oracle", roi="around-ego")
    assert around.roi == REGIONS["around-ego"]
    state = _state(_objects(AHEAD), _objects(BEHIND), _objects(far_ahead))
    assert around(state).squeeze(-1).tolist() == [True, True, False]
    assert AttentionGate("oracle", roi="whole-frame").roi is None
    assert set(SCENARIO_REGIONS.values()) <= set(REGIONS)
    with pytest.raises(ZooError, match="unknown region of interest 'around-eg'.*Did you mean 'around-ego'"):
        AttentionGate("oracle", roi="around-eg")


def test_gate_ignores_classes_that_are_not_critical():
    crashed = (40.0, 46.0, 48.0, 50.0, OBJECT_CLASSES.index("crashed_car"))
    gate = AttentionGate("oracle", critical_classes=["crashed_car"])
    assert gate(_state(_objects(AHEAD), _objects(crashed))).squeeze(-1).tolist() == [False, True]


def test_gate_respects_the_score_threshold_and_keeps_the_batch_shape():
    weak = Detections(torch.tensor([AHEAD[:4]]), ["car"], torch.tensor([0.4]), (SIZE, SIZE))
    state = TensorDict({keys.PIXELS: torch.zeros(2, 3, 3, SIZE, SIZE, dtype=torch.uint8)}, batch_size=[2, 3])
    opened = AttentionGate(FixedDetector(weak), min_score=0.3)(state)
    assert opened.shape == (2, 3, 1) and opened.dtype == torch.bool and opened.all()
    assert not AttentionGate(FixedDetector(weak), min_score=0.5)(state).any()


def test_gate_config_is_a_recipe_entry():
    gate = AttentionGate("oracle", critical_classes=("crashed_car",), roi=None, min_score=0.7)
    entry = gate.config()
    assert entry["class_path"] == "zoo.perception.AttentionGate"
    rebuilt = AttentionGate(**entry["init_args"])
    assert rebuilt.config() == entry
    with pytest.raises(ZooError, match="detector object"):
        AttentionGate(OracleDetector()).config()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"critical_classes": ("pedestrian",)}, "unknown critical class 'pedestrian'.*Valid choices: car, crashed_car"),
    ({"critical_classes": ()}, "critical_classes is empty"),
    ({"roi": (0.5, 0.5, 0.4, 0.6)}, "roi must be"),
    ({"roi": (0.0, 0.0, 1.5, 1.0)}, "roi must be"),
    ({"roi": (0.1, 0.2, 0.3)}, "roi must be"),
    ({"min_score": 1.5}, "min_score must be in"),
    ({"detector": "bev-detectr-tiny.sim"}, "unknown detector 'bev-detectr-tiny.sim'.*oracle"),
])
def test_gate_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ZooError, match=message):
        AttentionGate(**{"detector": "oracle", **kwargs})


def test_oracle_names_the_missing_key():
    state = TensorDict({keys.PIXELS: torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8)}, batch_size=[1])
    with pytest.raises(ZooError, match="objects=True"):
        AttentionGate("oracle")(state)


def test_a_reward_model_is_not_a_detector():
    with pytest.raises(ZooError, match="not a detector"):
        load_detector("drive-clip-bev-tiny.sim")


# -- the learned detector -----------------------------------------------------------------------------------
def test_detector_save_load_round_trip(tmp_path):
    from zoo.hub.packaging import write_model_folder

    torch.manual_seed(0)
    detector = BEVCenterNet(CenterNetConfig(widths=(8, 8, 16, 16), neck=8)).eval()
    card = {"name": "bev-detector-tiny.test", "kind": "detector", "summary": "test"}
    folder = write_model_folder(tmp_path / "bev-detector-tiny.test", detector.save, card, "# test\n")
    frames = torch.randint(0, 256, (2, 3, SIZE, SIZE), dtype=torch.uint8)
    loaded = load_detector(str(folder))
    assert isinstance(loaded, BEVCenterNet) and loaded.config == detector.config
    for key, value in detector(frames).items():
        torch.testing.assert_close(loaded(frames)[key], value)
    (folder / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ZooError, match="cannot read weights .*model.safetensors"):
        load_detector(str(folder))


def test_detector_learns_boxes_from_targets():
    """A few steps on one frame's targets: the loss falls and the decoded box lands on the true one."""
    torch.manual_seed(0)
    detector = BEVCenterNet(CenterNetConfig(widths=(8, 16, 16, 16), neck=16))
    frames = torch.full((1, 3, SIZE, SIZE), 100, dtype=torch.uint8)
    frames[:, :, 46:50, 40:48] = torch.tensor([100, 200, 255], dtype=torch.uint8)[:, None, None]
    objects = _objects(AHEAD)[None]
    targets = detector.targets(objects, (SIZE, SIZE))
    assert targets["mask"].sum() == 1 and targets["heatmap"].max() == 1
    optimizer = torch.optim.Adam(detector.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = detector.loss(detector(frames), targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5
    found = detector.detect_frames(frames)[0]
    assert found.labels[0] == "car"
    assert box_iou(found.boxes[:1], torch.tensor([AHEAD[:4]])).item() > 0.5


def _leader_frame() -> tuple[TensorDict, torch.Tensor]:
    """A real highway frame whose ego lane holds a car ahead (the oracle gate is on), and that car's box."""
    import zoo

    # the unseen condition's denser traffic (preset v2's default leaves the ego lane empty more often)
    env = zoo.make_env("highway-fast", obs="bev", objects=True, seed=1_000_003, condition="unseen")
    oracle = AttentionGate("oracle")
    state = env.reset()
    for _ in range(20):
        if oracle(state[None]).item():
            truth = OracleDetector().detect(state[None])[0]
            inside = [oracle.is_open(Detections(b[None], [label], s[None], truth.image_size))
                      for b, label, s in zip(truth.boxes, truth.labels, truth.scores)]
            return state, truth.boxes[torch.tensor(inside)]
        state = env.step(state.set(keys.ACTION, torch.tensor(1)))["next"]
    pytest.fail("no ego-lane leader in 20 steps")


def test_the_shipped_detector_loads_by_name_and_finds_the_ego_lane_leader():
    from zoo.hub.resolve import list_models

    assert DEFAULT_DETECTOR in list_models("detector", pretrained=True)
    gate = AttentionGate()  # the shipped detector is the default
    assert isinstance(gate.detector, BEVCenterNet)
    state, leader = _leader_frame()
    assert gate(state[None]).item()
    found = gate.detector.detect(state[None])[0]
    cars = found.boxes[torch.tensor([label == "car" and score >= 0.5 for label, score in zip(found.labels, found.scores)],
                                    dtype=torch.bool)]
    assert box_iou(leader, cars).max() >= 0.5


# -- metrics ------------------------------------------------------------------------------------------------
def test_detection_quality_counts_matches_at_the_iou():
    truth = [Detections(torch.tensor([AHEAD[:4], BEHIND[:4]]), ["car", "car"], torch.ones(2), (SIZE, SIZE))]
    shifted = torch.tensor([[41.0, 46.0, 49.0, 50.0], [60.0, 10.0, 68.0, 14.0]])  # one hit (IoU 0.78), one miss
    predicted = [Detections(shifted, ["car", "car"], torch.tensor([0.9, 0.8]), (SIZE, SIZE))]
    quality = detection_quality(predicted, truth, OBJECT_CLASSES)
    assert quality["precision"] == 0.5 and quality["recall"] == 0.5 and quality["objects"] == 2
    assert np.isnan(quality["precision/crashed_car"])
    wrong_class = [Detections(shifted, ["crashed_car", "car"], torch.tensor([0.9, 0.8]), (SIZE, SIZE))]
    assert detection_quality(wrong_class, truth, OBJECT_CLASSES)["recall"] == 0.0
    agreement = gate_agreement(AttentionGate("oracle"), predicted, truth)
    assert agreement["gate_agreement"] == 1.0 and agreement["oracle_gate_rate"] == 1.0


def test_the_shipped_card_reports_held_out_numbers():
    from zoo.hub.cards import read_card
    from zoo.hub.resolve import shipped_models

    card = read_card(shipped_models()[DEFAULT_DETECTOR])
    assert card["kind"] == "detector" and card["training"]["test_data"]["seed"] >= 1_000_000
    test = card["metrics"]["test"]
    assert {"precision", "recall", "gate_agreement"} <= set(test)
    assert json.dumps(card["training"]["command"]).startswith('"zoo fit --config recipes/train_bev_detector.yaml')


# -- training -----------------------------------------------------------------------------------------------
def test_detector_fit_scores_the_card_on_the_frames_it_selected_on(tmp_path):
    """The card's validation numbers come from the frames the fit validated on, even when the dataset folder
    is recorded again (here: its files rewritten in place with the boxes removed) while the fit runs."""
    import shutil

    import datasets
    import lightning as L

    from zoo.data.bev_boxes import BEVBoxesData, BoxDataset, make_bev_boxes, objects_tensor
    from zoo.hub.cards import read_card
    from zoo.train import DetectorTraining

    recorded = make_bev_boxes(["highway-fast"], 60, tmp_path / "boxes", seed=0, progress=False)
    no_boxes = datasets.DatasetDict({name: split.map(lambda row: {"objects": np.zeros_like(row["objects"])})
                                     for name, split in recorded.items()})
    no_boxes.save_to_disk(str(tmp_path / "rerecorded"))
    objects = int(objects_tensor(recorded["validation"])[..., 5].sum())

    class RecordAgain(L.Callback):
        def on_train_start(self, trainer, pl_module):
            for name in ("train", "validation"):
                for file in (tmp_path / "rerecorded" / name).glob("*.arrow"):
                    shutil.copyfile(file, tmp_path / "boxes" / name / file.name)

    torch.manual_seed(0)
    module = DetectorTraining(config={"widths": (8, 8, 16, 16), "neck": 8},
                              export={"folder": str(tmp_path / "exported"), "name": "bev-detector-tiny.test",
                                      "summary": "test", "command": "test"})
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[RecordAgain()])
    trainer.fit(module, datamodule=BEVBoxesData(BoxDataset(str(tmp_path / "boxes"), ["highway-fast"], 60),
                                                batch_size=8))
    validation = read_card(tmp_path / "exported")["metrics"]["validation"]
    assert objects > 0 and validation["objects"] == objects
    assert validation["frames"] == len(recorded["validation"]) and validation["f1"] == module.best["f1"]
