"""``zoo data bev-captions``: rows, ground truth, captions, splits by seed, refusal to overwrite."""

from __future__ import annotations

import datasets
import pytest

from zoo.cli import main
from zoo.data.bev_captions import CAPTIONS, GAP_NONE, TTC_NONE, record_episode, risk_category
from zoo.registry import ZooError


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


def test_existing_output_is_never_overwritten(dataset, capsys):
    out, _ = dataset
    before = sorted(p.name for p in out.iterdir())
    assert main(["data", "bev-captions", "--frames", "5", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_scenarios_without_meta_actions_are_refused(tmp_path):
    from zoo.data.bev_captions import make_bev_captions

    with pytest.raises(ZooError, match="racetrack"):
        make_bev_captions(["racetrack"], 5, tmp_path / "x", progress=False)
