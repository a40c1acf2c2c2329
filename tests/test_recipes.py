"""Every shipped recipe parses, resolves its interpolations and trains end to end on a tiny budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.cli import main

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
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


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.stem)
def test_recipe_resolves(recipe: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(recipe), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "${" not in printed  # every interpolation resolved
    assert "class_path: zoo.agents." in printed


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.stem)
def test_recipe_trains_on_tiny_budget(recipe: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["fit", "--config", str(recipe), *_tiny_overrides(recipe)]) == 0
    checkpoints = list((tmp_path / "runs").rglob("last.ckpt"))
    assert len(checkpoints) == 1
