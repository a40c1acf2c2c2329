"""Every shipped recipe parses, resolves its interpolations and trains end to end on a tiny budget; every reward
fragment composes with every base recipe, and a composed recipe is its parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from zoo.cli import main
from zoo.composition import config_sources

FOLDER = Path(__file__).parents[1] / "recipes"
#: the recipes users run: the top-level ones (composed or whole) and the base recipes, each a complete recipe
ALL_RECIPES = sorted(FOLDER.glob("*.yaml")) + sorted((FOLDER / "base").glob("*.yaml"))
BASES = sorted((FOLDER / "base").glob("*.yaml"))
FRAGMENTS = sorted((FOLDER / "rewards").glob("*.yaml"))


def _text(recipe: Path) -> str:
    """The text of the recipe and of every file it is composed of."""
    return "\n".join(Path(s).read_text() if s.endswith(".yaml") else s for s in config_sources(str(recipe)))


#: recipes that train a policy (the others train reward models or the risk describer on captioned BEV frames)
RECIPES = [r for r in ALL_RECIPES if "class_path: zoo.agents." in _text(r)]
REWARD_RECIPES = [r for r in ALL_RECIPES if "class_path: zoo.train.ContrastiveRewardTraining" in _text(r)
                  or "class_path: zoo.train.RiskDescriberTraining" in _text(r)]
#: recipes that train the BEV detector on simulator boxes
DETECTOR_RECIPES = [r for r in ALL_RECIPES if "class_path: zoo.train.DetectorTraining" in _text(r)]
TINY = {
    "total_frames": "64",
    "frames_per_batch": "16",
    "hidden_sizes": "[32]",
}


def _tiny_overrides(recipe: Path) -> list[str]:
    text = _text(recipe)
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
    assert {"sac", "dqn"} <= {b.stem for b in BASES} and len(FRAGMENTS) >= 8
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


def _printed(capsys, *configs: Path | str) -> dict:
    """The recipe LightningCLI resolves from ``configs`` in order (``--print_config``), as data (without the list of
    the config files it read)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *(a for c in configs for a in ("--config", str(c))), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    printed.pop("config", None)
    return printed


@pytest.mark.parametrize("base", BASES, ids=lambda r: r.stem)
@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda r: r.stem)
def test_every_reward_fragment_composes_with_every_base(base: Path, fragment: Path, capsys):
    """The fragment sets the reward and its batching; everything else stays the base's."""
    composed, alone = _printed(capsys, base, fragment), _printed(capsys, base)
    part = yaml.safe_load(fragment.read_text())["model"]["init_args"]
    model = composed["model"]["init_args"]
    assert model["reward"]["class_path"] == part["reward"]["class_path"]
    assert model["reward_batching"] == part["reward_batching"]
    assert composed["model"]["class_path"] == alone["model"]["class_path"]
    unchanged = {k: v for k, v in model.items() if k not in part}
    assert unchanged == {k: v for k, v in alone["model"]["init_args"].items() if k not in part}
    assert composed["trainer"] == alone["trainer"]


def test_a_composed_recipe_is_its_parts_then_its_own_keys(capsys):
    """``sac_vlmrl_highway.yaml`` resolves as ``--config base/sac.yaml --config rewards/vlm-rl.yaml`` with its own
    experiment name."""
    composed = _printed(capsys, FOLDER / "sac_vlmrl_highway.yaml")
    parts = _printed(capsys, FOLDER / "base" / "sac.yaml", FOLDER / "rewards" / "vlm-rl.yaml")
    assert composed["trainer"]["logger"]["init_args"].pop("experiment_name") == "sac_vlmrl_highway"
    assert parts["trainer"]["logger"]["init_args"].pop("experiment_name") == "sac"
    assert composed == parts


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
        generation = json.loads((out / "generation_config.json").read_text())  # what the scores were measured with
        assert generation["num_beams"] == card["decoding"]["num_beams"] == 4
        biased = {tuple(ids): bias for ids, bias in generation.get("sequence_bias") or []}
        assert set(biased.values()) == {b for b in card["decoding"]["type_biases"].values() if b}
        return
    assert card["metrics"]["trained"]["test"]["frames"] > 0
    gain = card["metrics"]["gain"]["test"]  # trained minus before, paired over the test episodes
    assert gain["episodes"] > 0 and set(gain) >= {"auroc_collision_1s", "spearman_ttc"}
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
