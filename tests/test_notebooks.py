"""The notebooks (``notebooks/*.ipynb``) run end to end: executed with nbclient on tiny sizes, outputs checked.

Each notebook has one code cell tagged ``parameters`` (papermill's convention) holding its sizes; the test
replaces it with tiny values, runs the notebook in a temp working folder on a ``python3`` kernel that imports
this checkout of the zoo, and appends a probe cell that prints what the notebook computed as JSON.

The notebooks load the shipped reward models by name. When this checkout has none (``checkpoints/`` and
``$ZOO_CHECKPOINTS`` lack ``drive-clip-bev-tiny.sim``), a stand-in with that name is trained on a tiny budget
first: same format, meaningless quality.
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

import zoo

REPO = Path(zoo.__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CELL_TIMEOUT_S = 600
BASE_MODEL = "drive-clip-bev-tiny.sim"

#: the tiny sizes that replace each notebook's ``parameters`` cell (same names as the notebook's)
TINY: dict[str, dict[str, Any]] = {
    "quickstart.ipynb": {"SCENARIO": "highway-fast", "MAX_STEPS": 12, "BEV_SIZE": 64, "SEED": 0, "P_FASTER": 0.9,
                         "FRAMES_SHOWN": 4},
    "finetune_reward_model.ipynb": {"TRAIN_FRAMES": 40, "TEST_FRAMES": 40, "EPOCHS": 1, "BATCH_SIZE": 8,
                                    "BEV_SIZE": 96, "FRAME_RATE_HZ": 1, "SEED": 0, "FRAMES_SCORED": 4},
}
#: printed by a cell appended to each notebook: what the test checks, as one JSON line
PROBES = {
    "quickstart.ipynb": """
import json
print("PROBE " + json.dumps({"steps": len(episode), "rewards": rewards.tolist(), "clg": clg.tolist(),
                             "terms": sorted(terms.keys()), "collision_step": collision_step,
                             "crashed": crashed.tolist(), "frame_shape": list(frames.shape)}))
""",
    "finetune_reward_model.ipynb": """
import json
print("PROBE " + json.dumps({"quality": quality, "card": card, "version": str(version.version),
                             "aliases": list(version.aliases), "registered_rewards": registered_rewards.tolist(),
                             "difference": difference, "test_frames": len(test), "verdict": fine_tune_verdict,
                             "best_epoch": module.best["epoch"]}))
""",
}


def _notebook(name: str):
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    return nb


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one code cell tagged 'parameters'"
    assert cells[0].cell_type == "code"
    return cells[0]


def _assigned_names(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> str:
    """``$ZOO_CHECKPOINTS`` for the kernels: as set when the shipped models are there, else a tiny stand-in's folder."""
    from zoo.hub.resolve import shipped_models

    if BASE_MODEL in shipped_models():
        return os.environ.get("ZOO_CHECKPOINTS", "")
    root = tmp_path_factory.mktemp("stand-in")
    cwd = os.getcwd()
    os.chdir(root)  # nothing lands in the repo
    try:
        _train_stand_in(root)
    finally:
        os.chdir(cwd)
    return str(root / "checkpoints")


def _train_stand_in(root: Path) -> None:
    import lightning as L

    from zoo.data.bev_captions import make_bev_captions
    from zoo.data.datamodule import BEVCaptionsData, CaptionDataset
    from zoo.train.contrastive import ContrastiveRewardTraining, Export

    make_bev_captions(["highway-fast"], 60, root / "train", seed=0, progress=False)
    make_bev_captions(["highway-fast"], 30, root / "test", seed=1_000_000, progress=False)
    data = BEVCaptionsData(CaptionDataset(str(root / "train")), test=CaptionDataset(str(root / "test")), batch_size=16)
    L.seed_everything(0)
    module = ContrastiveRewardTraining(BASE_MODEL.partition(".")[0], pretrained=False, export=Export(
        folder=str(root / "checkpoints" / BASE_MODEL), name=BASE_MODEL, summary="test stand-in"))
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, datamodule=data)


def _execute(name: str, checkpoints: str, cwd: Path, monkeypatch) -> tuple[Any, dict[str, Any]]:
    """Run notebook ``name`` with its tiny sizes in ``cwd``; return the executed notebook and its probe."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    nb = _notebook(name)
    cell = _parameters_cell(nb)
    assert _assigned_names(cell.source) == set(TINY[name]), "the test's tiny sizes must name every parameter"
    cell.source = "\n".join(f"{key} = {value!r}" for key, value in TINY[name].items())
    nb.cells.append(new_code_cell(PROBES[name].strip()))
    # the kernel inherits this environment: this checkout of the zoo, the models, the test's ZOO_CACHE, offline
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("ZOO_CHECKPOINTS", checkpoints)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.delenv("ZOO_ALLOW_DOWNLOADS", raising=False)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    lines = [line for out in nb.cells[-1].outputs if out.get("name") == "stdout"
             for line in out["text"].splitlines() if line.startswith("PROBE ")]
    assert len(lines) == 1, nb.cells[-1].outputs
    return nb, json.loads(lines[0].removeprefix("PROBE "))


def _outputs(nb, kind: str) -> list[Any]:
    return [out for c in nb.cells if c.cell_type == "code" for out in c.outputs
            if kind in out.get("data", {})]


def _stdout(nb) -> str:
    return "".join(out["text"] for c in nb.cells if c.cell_type == "code" for out in c.outputs
                   if out.get("name") == "stdout")


def _streams(nb) -> str:
    """Everything the cells printed, stdout and stderr (where warnings go)."""
    return "".join(out["text"] for c in nb.cells if c.cell_type == "code" for out in c.outputs
                   if out.get("output_type") == "stream")


def test_notebooks_are_saved_without_outputs_and_with_a_parameters_cell():
    for name in TINY:
        nb = _notebook(name)
        _parameters_cell(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs"
        assert nb.metadata["kernelspec"]["name"] == "python3"


def test_the_python3_kernel_is_installed():
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").language == "python"


@pytest.mark.slow
def test_quickstart_scores_an_episode_and_plots_it(checkpoints, tmp_path, monkeypatch):
    nb, probe = _execute("quickstart.ipynb", checkpoints, tmp_path, monkeypatch)
    assert 1 <= probe["steps"] <= TINY["quickstart.ipynb"]["MAX_STEPS"]
    assert len(probe["rewards"]) == len(probe["clg"]) == probe["steps"]
    assert all(math.isfinite(r) for r in probe["rewards"] + probe["clg"])
    assert {"semantic_clg", "desired_speed", "shaping", "catastrophic"} <= set(probe["terms"])
    assert probe["frame_shape"][1:] == [64, 64, 3]
    if probe["collision_step"] is not None:  # the collision is penalised
        assert probe["rewards"][probe["collision_step"]] == -10.0
    assert len(_outputs(nb, "image/png")) >= 1  # the figure
    assert f"scored {probe['steps']} frames" in _stdout(nb)
    assert "drive-clip-bev-tiny" in json.dumps(_outputs(nb, "text/plain"))  # zoo.list_models()


@pytest.mark.slow
def test_finetune_notebook_trains_compares_registers_and_loads_back(checkpoints, tmp_path, monkeypatch):
    nb, probe = _execute("finetune_reward_model.ipynb", checkpoints, tmp_path, monkeypatch)
    for when in ("before", "after"):
        auroc = probe["quality"][when]["auroc_collision_1s"]
        assert math.isnan(auroc) or 0.0 <= auroc <= 1.0  # NaN only when the test episodes have no imminent frame
        assert probe["quality"][when]["frames"] == probe["test_frames"] > 0
    assert probe["card"]["adapter_of"] == "drive-clip-bev-tiny.sim" and probe["card"]["quantization"] == {"bits": 8}
    assert probe["card"]["metrics"]["trained"]["test"]["frames"] == probe["test_frames"]
    assert (tmp_path / "exports" / "drive-clip-bev-tiny.lora-roundabout" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "mlflow.db").is_file()  # the local store, in the working folder
    assert probe["version"] == "1" and probe["aliases"] == ["champion"]
    rewards = probe["registered_rewards"]
    assert len(rewards) == TINY["finetune_reward_model.ipynb"]["FRAMES_SCORED"]
    assert all(math.isfinite(r) for r in rewards)
    assert probe["difference"] < 1e-6  # the model loaded back by URI is the exported one
    assert len(_outputs(nb, "image/png")) >= 2  # the frames with captions, the before/after figure
    assert "models:/drive-clip-roundabout@champion scored" in _stdout(nb)
    # the fine-tune improves the held-out AUROC, or the notebook says plainly that it did not, and why
    before, after = (probe["quality"][when]["auroc_collision_1s"] for when in ("before", "after"))
    if probe["verdict"].startswith("The fine-tune improved"):
        assert after > before
    else:
        assert probe["verdict"] in _streams(nb) and "frames within 1 s of a collision" in probe["verdict"]
    if probe["best_epoch"] < 0:
        assert "no epoch was selected (best epoch -1)" in _streams(nb)
