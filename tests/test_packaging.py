"""A package that installs: the wheel carries the shipped models (``checkpoints/``) and recipes (``recipes/``), and
an installed zoo, away from any checkout, lists those models and trains from a recipe named on the command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

import zoo

REPO = Path(__file__).resolve().parents[1]
#: what the build reads (pyproject.toml names the rest: readme, package folders)
BUILD_INPUTS = ("pyproject.toml", "README.md", "zoo", "checkpoints", "recipes")
#: what a working checkout also holds, none of which belongs in the wheel
STRAYS = ("runs/quickstart/x/checkpoints/last.ckpt", "mlflow.db", ".venv/lib/site.py", "data/frames.npz",
          "evaluation/metrics.json", "exports/policy.onnx", "notebooks/n.ipynb")
#: the quickstart on a budget that finishes in seconds (as tests/test_cli.py shrinks it)
TINY_QUICKSTART = ["--model.init_args.total_frames", "64", "--model.init_args.learning_starts", "32",
                   "--trainer.callbacks.episodes", "1"]


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_pyproject_lists_every_package_and_maps_the_shipped_folders():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    subpackages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "zoo").rglob("__init__.py")}
    assert set(setuptools["packages"]) == subpackages | {"zoo.checkpoints", "zoo.recipes"}
    assert setuptools["package-dir"] == {"zoo": "zoo", "zoo.checkpoints": "checkpoints", "zoo.recipes": "recipes"}


def test_shipped_folders_are_the_checkouts_own():
    from zoo.hub.resolve import checkpoint_roots
    from zoo.shipped import checkpoints_dir, recipes_dir

    root = Path(zoo.__file__).resolve().parents[1]
    assert (checkpoints_dir(), recipes_dir()) == (root / "checkpoints", root / "recipes")
    assert checkpoint_roots()[-1] == checkpoints_dir()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the checkout's build inputs, plus the strays a working
    checkout holds (a copy: setuptools builds in place, and its build/ and *.egg-info stay out of the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    for stray in STRAYS:
        (source / stray).parent.mkdir(parents=True, exist_ok=True)
        (source / stray).write_text("not part of the package")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "--no-index", "--disable-pip-version-check", "-q", "-w", str(dist)],
                   check=True, capture_output=True, timeout=600)
    (found,) = dist.glob("drive_zoo-*.whl")
    return found


@pytest.mark.slow
def test_wheel_holds_the_package_the_shipped_models_and_the_recipes_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = ({f"zoo/{f}" for f in _files(REPO / "zoo")}
                | {f"zoo/checkpoints/{f}" for f in _files(REPO / "checkpoints")}
                | {f"zoo/recipes/{f}" for f in _files(REPO / "recipes")})
    assert {n for n in names if ".dist-info/" not in n} == expected
    assert wheel.stat().st_size < 20e6  # the shipped models are tiny (about 9 MB of weights in all)


@pytest.mark.slow
def test_installed_wheel_lists_the_shipped_models_and_fits_a_recipe_by_name(wheel, tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                    "-q", "--target", str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZOO_CHECKPOINTS", "MLFLOW_TRACKING_URI")}
    env.update(PYTHONPATH=str(site), COLUMNS="300")  # a wide table: model names on one line

    def python(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)

    where = python("-c", "import zoo, zoo.shipped as s, zoo.benchmark.provenance as p; "
                         "print(zoo.__file__, s.checkpoints_dir(), s.recipes_dir(), p.git_commit(), sep='\\n')")
    assert where.returncode == 0, where.stderr
    package, checkpoints, recipes, commit = where.stdout.split()
    assert Path(package).is_relative_to(site), "the checkout, not the installed wheel, was imported"
    assert (Path(checkpoints), Path(recipes)) == (site / "zoo" / "checkpoints", site / "zoo" / "recipes")
    assert commit == "None"  # an installed zoo is no git checkout

    listed = python("-m", "zoo.cli", "models", "list")
    assert listed.returncode == 0, listed.stderr
    for model in sorted(p.name for p in (REPO / "checkpoints").iterdir() if p.is_dir()):
        assert model in listed.stdout, f"{model} missing from `zoo models list`:\n{listed.stdout}"

    fit = python("-m", "zoo.cli", "fit", "--config", "quickstart", *TINY_QUICKSTART)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "last checkpoint: runs/quickstart/" in fit.stdout
    assert list(work.glob("runs/quickstart/*/checkpoints/last.ckpt"))
