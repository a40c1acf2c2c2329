"""Every shipped recipe parses, resolves its interpolations and trains end to end on a tiny budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.cli import main

ALL_RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
#: recipes that train a policy (the others train reward models or the risk describer on captioned BEV frames)
RECIPES = [r for r in ALL_RECIPES if "class_path: zoo.agents." in r.read_text()]
REWARD_RECIPES = [r for r in ALL_RECIPES if "class_path: zoo.train.ContrastiveRewardTraining" in r.read_text()
                  or "class_path: zoo.train.RiskDescriberTraining" in r.read_text()]
#: recipes that train the BEV detector on simulator boxes
DETECTOR_RECIPES = [r for r in ALL_RECIPES if "class_path: zoo.train.DetectorTraining" in r.read_text()]
TINY = {
    "total_frames": "64",
    "frames_per_batch": "16",
    "hidden_sizes": "[32]",
}


def _tiny_overrides(recipe: Path) -> list[str]:
    text = recipe.read_text()
    overrides = {**TINY}
    if "learning_starts" in text:
        overrides.update(learning_starts="16", batch_size="8", updates_per_batch="2")
    if "epochs" in text:
        overrides.update(epochs="1", minibatch_size="16")
    args = [f"--model.init_args.{k}={v}" for k, v in overrides.items()]
    if "EvaluateAfterFit" in text:
        args += ["--trainer.callbacks.episodes=1", "--trainer.callbacks.before=false"]
    return args


def test_recipes_exist():
    names = {r.stem for r in RECIPES}
    assert {"quickstart", "dqn_highway", "sac_highway", "td3_highway", "ppo_highway", "ppo_merge"} <= names
    assert {r.stem for r in REWARD_RECIPES} == {"pretrain_drive_clip", "finetune_drive_clip_roundabout",
                                                "train_risk_describer"}
    assert {r.stem for r in DETECTOR_RECIPES} == {"train_bev_detector"}
    assert set(RECIPES) | set(REWARD_RECIPES) | set(DETECTOR_RECIPES) == set(ALL_RECIPES)


@pytest.mark.parametrize("recipe", ALL_RECIPES, ids=lambda r: r.stem)
def test_recipe_resolves(recipe: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(recipe), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "${" not in printed  # every interpolation resolved
    model = "class_path: zoo.agents." if recipe in RECIPES else "class_path: zoo.train."
    assert model in printed


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.stem)
def test_recipe_trains_on_tiny_budget(recipe: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["fit", "--config", str(recipe), *_tiny_overrides(recipe)]) == 0
    checkpoints = list((tmp_path / "runs").rglob("last.ckpt"))
    assert len(checkpoints) == 1


@pytest.fixture(scope="module")
def tiny_captions(tmp_path_factory):
    from zoo.data.bev_captions import make_bev_captions

    root = tmp_path_factory.mktemp("captions")
    make_bev_captions(["highway-fast"], 80, root / "train", seed=0, progress=False)
    make_bev_captions(["highway-fast"], 40, root / "test", seed=1_000_000, progress=False)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("recipe", REWARD_RECIPES, ids=lambda r: r.stem)
def test_reward_recipe_trains_and_exports_on_tiny_data(recipe: Path, tiny_captions, tmp_path, monkeypatch):
    from zoo.hub.cards import read_card

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "exported"
    assert main(["fit", "--config", str(recipe), "--trainer.max_epochs=1", "--data.init_args.batch_size=16",
                 f"--data.init_args.train.path={tiny_captions / 'train'}",
                 f"--data.init_args.test.path={tiny_captions / 'test'}",
                 f"--model.init_args.export.folder={out}"]) == 0
    card = read_card(out)
    if card["kind"] == "describer":
        assert card["metrics"]["test"]["windows"] > 0 and 0 <= card["metrics"]["test"]["accuracy"] <= 1
        return
    assert card["metrics"]["trained"]["test"]["frames"] > 0
    assert ("adapter_of" in card) == ("lora" in recipe.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("recipe", DETECTOR_RECIPES, ids=lambda r: r.stem)
def test_detector_recipe_trains_and_exports_on_tiny_data(recipe: Path, tmp_path, monkeypatch):
    from zoo.data.bev_boxes import make_bev_boxes
    from zoo.hub.cards import read_card
    from zoo.perception import BEVCenterNet, load_detector

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    make_bev_boxes(["highway-fast"], 30, tmp_path / "train", seed=0, progress=False)
    make_bev_boxes(["highway-fast"], 10, tmp_path / "test", seed=1_000_000, progress=False)
    out = tmp_path / "exported"
    assert main(["fit", "--config", str(recipe), "--trainer.max_epochs=1", "--data.init_args.batch_size=8",
                 f"--data.init_args.train.path={tmp_path / 'train'}", f"--data.init_args.test.path={tmp_path / 'test'}",
                 f"--model.init_args.export.folder={out}"]) == 0
    card = read_card(out)
    assert card["kind"] == "detector" and card["metrics"]["test"]["frames"] >= 10
    assert isinstance(load_detector(str(out)), BEVCenterNet)
