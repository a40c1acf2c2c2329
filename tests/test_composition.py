"""Composed recipes (``compose:``) expand to one ``--config`` per part, in order, then the recipe's own keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zoo.composition import config_sources, expand_composed
from zoo.errors import ZooError


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_composed_recipe_stands_for_its_parts_then_its_own_keys(tmp_path):
    base = _write(tmp_path / "base" / "a.yaml", {"seed_everything": 1})
    reward = _write(tmp_path / "rewards" / "r.yaml", {"model": {"init_args": {"reward_batching": "step"}}})
    recipe = _write(tmp_path / "x.yaml", {"compose": ["base/a.yaml", "rewards/r.yaml"], "seed_everything": 2})
    sources = config_sources(str(recipe))
    assert sources[:2] == [str(base), str(reward)]
    assert yaml.safe_load(sources[2]) == {"seed_everything": 2}
    assert expand_composed(["fit", "-c", str(recipe), "--trainer.max_steps=1"]) == [
        "fit", "--config", str(base), "--config", str(reward), "--config", sources[2], "--trainer.max_steps=1"]
    assert expand_composed(["fit", f"--config={recipe}"]) == ["fit", *(a for s in sources for a in ("--config", s))]


def test_parts_may_be_composed_and_a_recipe_of_parts_alone_adds_no_source(tmp_path):
    leaf = _write(tmp_path / "leaf.yaml", {"seed_everything": 1})
    _write(tmp_path / "mid.yaml", {"compose": ["leaf.yaml"]})
    top = _write(tmp_path / "top.yaml", {"compose": ["mid.yaml", "leaf.yaml"]})
    assert config_sources(str(top)) == [str(leaf), str(leaf)]


def test_anything_but_a_composed_recipe_is_left_as_it_is(tmp_path):
    plain = _write(tmp_path / "plain.yaml", {"seed_everything": 1})
    inline = "{trainer: {max_steps: 1}}"
    argv = ["fit", "--config", str(plain), "--config", inline, "--config", "no/such.yaml", "--print_config"]
    assert expand_composed(argv) == argv
    assert config_sources("x" * 5000) == ["x" * 5000]  # too long to be a path: inline YAML for LightningCLI
    broken = tmp_path / "broken.yaml"
    broken.write_text("compose: [a.yaml\n")
    assert config_sources(str(broken)) == [str(broken)]  # LightningCLI reports the syntax error


@pytest.mark.parametrize(("compose", "message"), [
    ("base.yaml", "must list recipe files"),
    ([], "must list recipe files"),
    (["missing.yaml"], "names 'missing.yaml', which is no file"),
    (["loop.yaml"], "composed of itself"),
])
def test_a_bad_compose_list_is_named(tmp_path, compose, message):
    recipe = _write(tmp_path / "loop.yaml", {"compose": compose})
    with pytest.raises(ZooError, match=message):
        config_sources(str(recipe))
