"""End to end through the ``zoo`` command: fit the quickstart recipe on a tiny budget, evaluate it, read
MLflow back; bad input answered with a short message and no traceback."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import imageio.v2 as imageio
import mlflow
import pytest
import yaml

import zoo
from zoo.cli import COMMANDS, main
from zoo.evaluation import EVAL_SEED_OFFSET, SUMMARY_METRICS

QUICKSTART = Path(__file__).parents[1] / "recipes" / "quickstart.yaml"
TINY_FIT = ["--model.init_args.total_frames", "64", "--model.init_args.learning_starts", "32",
            "--trainer.callbacks.episodes", "2"]
ZOO = str(Path(sys.executable).parent / "zoo")  # the console script of this environment


def _store(root: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def _artifacts(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return out


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``zoo.cli.main`` in-process: exit code, stdout, stderr. Any exception other than SystemExit propagates
    (in a shell it would be a traceback), so a test fails on it."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse / jsonargparse usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _meaningful_lines(text: str) -> list[str]:
    """stderr without library warnings and log chatter."""
    skip = ("Warning", "warnings.warn", "Seed set to", "INFO", "  return super()")
    return [line for line in text.splitlines() if line.strip() and not any(s in line for s in skip)]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """``zoo fit`` of the quickstart recipe on 64 env steps, in its own folder with its own MLflow store."""
    root = tmp_path_factory.mktemp("quickstart")
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["fit", "--config", str(QUICKSTART), *TINY_FIT]) == 0
    client = _store(root)
    experiment = client.get_experiment_by_name("quickstart")
    (run,) = client.search_runs([experiment.experiment_id])
    ckpt = root / "runs" / "quickstart" / run.info.run_id / "checkpoints" / "last.ckpt"
    return SimpleNamespace(root=root, client=client, run=run, run_id=run.info.run_id, ckpt=ckpt,
                           stdout=stdout.getvalue())


# -- zoo fit --------------------------------------------------------------------------------------
def test_fit_saves_checkpoints_beside_the_run(quickstart):
    assert quickstart.run.info.status == "FINISHED"
    assert quickstart.ckpt.is_file()
    evaluation = json.loads((quickstart.ckpt.parents[1] / "evaluation" / "metrics.json").read_text())
    assert len(evaluation["episodes"]) == 2  # the callback override reached EvaluateAfterFit


def test_fit_prints_where_the_checkpoint_went_and_the_mlflow_run(quickstart):
    assert f"last checkpoint: {quickstart.ckpt.relative_to(quickstart.root)}" in quickstart.stdout
    assert f"MLflow run: {quickstart.run_id}" in quickstart.stdout


def test_fit_logs_the_resolved_recipe(quickstart):
    path = quickstart.client.download_artifacts(quickstart.run_id, "recipe.yaml", str(quickstart.root))
    recipe = yaml.safe_load(Path(path).read_text())
    model = recipe["model"]["init_args"]
    assert recipe["model"]["class_path"] == "zoo.agents.DQN"
    assert (model["total_frames"], model["learning_starts"]) == (64, 32)  # command-line overrides
    assert model["batch_size"] == 32  # recipe values
    (callback,) = [c for c in recipe["trainer"]["callbacks"] if c["class_path"].endswith("EvaluateAfterFit")]
    assert callback["init_args"]["episodes"] == 2


def test_fit_logs_hyperparameters(quickstart):
    params = quickstart.run.data.params
    assert params["total_frames"] == "64"
    assert params["learning_starts"] == "32"
    assert params["env/scenario"] == "highway-fast"
    assert params["reward/class_path"] == "zoo.rewards.HierarchicalReward"
    assert params["reward/init_args/semantic/init_args/model"] == "drive-clip-bev-tiny"  # the shipped model


def test_fit_logs_training_metrics_with_steps(quickstart):
    history = quickstart.client.get_metric_history
    returns = history(quickstart.run_id, "train/episode_return")
    assert returns and all(0 < m.step <= 64 for m in returns)  # stepped by environment steps
    losses = history(quickstart.run_id, "train/loss_q")
    assert losses and all(math.isfinite(m.value) for m in losses)
    assert [m.step for m in losses] == sorted(m.step for m in losses)


def test_fit_logs_held_out_evaluation(quickstart):
    metrics = quickstart.run.data.metrics
    for name in SUMMARY_METRICS:
        assert f"eval/{name}" in metrics
    assert 0.0 <= metrics["eval/SR"] <= 1.0
    assert metrics["eval/length"] >= 1


def test_fit_logs_the_checkpoint_as_an_artifact(quickstart):
    artifacts = _artifacts(quickstart.client, quickstart.run_id)
    assert any(path.endswith("last.ckpt") for path in artifacts)
    assert "evaluation/metrics.json" in artifacts


# -- zoo evaluate ---------------------------------------------------------------------------------
def test_evaluate_a_checkpoint_file(quickstart, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(quickstart.root)  # the fit run's MLflow store
    out, video = tmp_path / "eval", tmp_path / "out.gif"
    code, stdout, _ = _run(["evaluate", "--ckpt", str(quickstart.ckpt), "--episodes", "2", "--seed", "0",
                            "--video", str(video), "--out", str(out)], capsys)
    assert code == 0
    assert "SR" in stdout and str(video) in "".join(stdout.split())  # rich wraps long paths

    result = json.loads((out / "metrics.json").read_text())
    assert result["seeds"] == [EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 1]
    assert len(result["episodes"]) == 2
    assert set(SUMMARY_METRICS) <= set(result["summary"])
    with (out / "episodes.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert len(imageio.mimread(video)) >= 3

    client = quickstart.client
    experiment = client.get_experiment_by_name("evaluation")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id],
                                filter_string=f"params.checkpoint = '{quickstart.ckpt}'")
    assert run.data.params["episodes"] == "2" and run.data.params["seed"] == "0"
    assert run.data.metrics["eval/SR"] == result["summary"]["SR"]["mean"]
    artifacts = _artifacts(client, run.info.run_id)
    assert {"evaluation/metrics.json", "evaluation/episodes.csv", "evaluation/out.gif"} <= set(artifacts)


def test_evaluate_an_mlflow_run(quickstart, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(quickstart.root)
    code, _, _ = _run(["evaluate", "--ckpt", f"runs:/{quickstart.run_id}", "--episodes", "1", "--seed", "0",
                       "--out", str(tmp_path)], capsys)
    assert code == 0
    episode = json.loads((tmp_path / "metrics.json").read_text())["episodes"][0]
    # the run's logged checkpoint is the trained agent: same metrics as evaluating the local file
    expected = zoo.evaluate(zoo.load_agent(quickstart.ckpt), episodes=1, seed=0, progress=False).episodes[0]
    assert episode == pytest.approx(expected)


def test_evaluate_an_mlflow_run_writes_results_in_the_working_folder(quickstart, monkeypatch, tmp_path,
                                                                     capsys):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))  # where MLflow downloads artifacts
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{quickstart.root / 'mlflow.db'}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, _ = _run(["evaluate", "--ckpt", f"runs:/{quickstart.run_id}", "--episodes", "1"], capsys)
    assert code == 0
    assert not (system_tmp / "evaluation").exists(), "results written into the temp download folder"
    assert list(work.rglob("metrics.json"))


# -- bad input ------------------------------------------------------------------------------------
BAD_INPUT = {
    "missing-recipe": (["fit", "--config", "missing.yaml"], ["missing.yaml"]),
    "unknown-key": (["fit", "--config", str(QUICKSTART), "--model.init_args.nonexistent", "1"],
                    ["nonexistent"]),
    "unknown-scenario": (["fit", "--config", str(QUICKSTART), "--model.init_args.env.scenario", "nowhere"],
                         ["'nowhere'", "highway-fast"]),
    "unknown-command": (["frobnicate"], ["'frobnicate'", "fit", "evaluate"]),
    "missing-checkpoint": (["evaluate", "--ckpt", "missing.ckpt"], ["'missing.ckpt'"]),
    "unknown-run": (["evaluate", "--ckpt", "runs:/0123456789abcdef0123456789abcdef"],
                    ["0123456789abcdef0123456789abcdef"]),
    "zero-episodes": (["evaluate", "--ckpt", "missing.ckpt", "--episodes", "0"], ["--episodes", "0"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_non_zero_naming_the_bad_value(case, capsys):
    argv, names = BAD_INPUT[case]
    code, _, stderr = _run(argv, capsys)
    assert code == 2
    assert "Traceback" not in stderr
    for name in names:
        assert name in stderr, f"{name!r} not in {stderr!r}"


@pytest.mark.parametrize("case", [
    "missing-recipe", "unknown-key",
    "unknown-scenario", "unknown-command", "missing-checkpoint", "unknown-run",
])
def test_bad_input_message_is_short(case, capsys):
    argv, _ = BAD_INPUT[case]
    _, _, stderr = _run(argv, capsys)
    lines = _meaningful_lines(stderr)
    assert 1 <= len(lines) <= 6, "\n".join(lines)


# -- shipped recipes by name ----------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--config", "quickstart"], ["--config", "quickstart.yaml"],
                                  ["--config", "recipes/quickstart.yaml"], ["-c", "quickstart"],
                                  ["--config=quickstart"], ["--config", "base/sac"],
                                  ["--config", "recipes/rewards/vlm-rl.yaml"]], ids=lambda a: " ".join(a))
def test_fit_config_names_a_shipped_recipe(argv):
    from zoo.fit.recipes import shipped_recipes_by_name
    from zoo.shipped import recipes_dir

    name = argv[-1].partition("=")[2] or argv[-1]
    shipped = str(recipes_dir() / f"{name.removeprefix('recipes/').removesuffix('.yaml')}.yaml")
    out = shipped_recipes_by_name(["fit", *argv, "--trainer.max_steps", "1"])
    assert out == ["fit", *argv[:-1], f"--config={shipped}" if len(argv) == 1 else shipped,
                   "--trainer.max_steps", "1"]
    assert Path(shipped).resolve().is_relative_to(QUICKSTART.parent.resolve())  # in a checkout, the repo's recipes/


def test_fit_config_prefers_a_file_in_the_working_folder(tmp_path):
    from zoo.fit.recipes import shipped_recipes_by_name

    (tmp_path / "quickstart.yaml").write_text("seed_everything: 1\n")
    argv = ["fit", "--config", "quickstart.yaml", "--config", "{trainer: {max_steps: 1}}", "--config", "a/b.yaml"]
    assert shipped_recipes_by_name(argv) == argv  # a file here, inline YAML, a path elsewhere: LightningCLI's


def test_fit_config_of_an_unknown_name_lists_the_shipped_recipes(capsys):
    code, _, stderr = _run(["fit", "--config", "quikstart"], capsys)
    assert code == 2
    assert "Traceback" not in stderr
    message = " ".join(stderr.split())
    assert "'quikstart'" in message and "did you mean quickstart?" in message
    assert "the shipped recipes: base/dqn, base/sac, dqn_cnn_highway, dqn_highway," in message
    assert "sac_highway" in message and "rewards/vlm-rl" in message


# -- the installed `zoo` command ------------------------------------------------------------------
def _zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ZOO, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("args", "code"), [((), 2), (("--help",), 0)], ids=["no-args", "help"])
def test_console_script_usage(args, code, tmp_path):
    result = _zoo(*args, cwd=tmp_path)
    assert result.returncode == code
    assert "usage: zoo" in result.stdout


@pytest.mark.parametrize("case", ["unknown-command", "missing-recipe", "missing-checkpoint"])
def test_console_script_bad_input_exit_code(case, tmp_path):
    argv, names = BAD_INPUT[case]
    result = _zoo(*argv, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert all(name in result.stderr for name in names)


def test_console_script_evaluates(quickstart, tmp_path):
    result = _zoo("evaluate", "--ckpt", str(quickstart.ckpt), "--episodes", "1", "--out", str(tmp_path),
                  cwd=quickstart.root)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize(("recipe", "override", "named"), [
    ("sac_highway.yaml", [], ["zoo.agents.DQN", "zoo.agents.SAC"]),
    ("quickstart.yaml", ["--model.init_args.hidden_sizes=[32]"], ["hidden_sizes", "[32]"]),
])
def test_fit_refuses_a_checkpoint_that_does_not_match_the_recipe(quickstart, recipe, override, named, capsys):
    argv = ["fit", "--config", str(QUICKSTART.parent / recipe), *override, "--ckpt_path", str(quickstart.ckpt)]
    code, _, stderr = _run(argv, capsys)
    assert code == 2
    assert "Traceback" not in stderr
    for name in named:
        assert name in stderr


def test_a_checkpoint_from_before_new_env_fields_still_matches_its_recipe(quickstart, tmp_path):
    import torch

    from zoo.errors import ZooError
    from zoo.fit.resume import check_checkpoint_matches_recipe

    checkpoint = torch.load(quickstart.ckpt, map_location="cpu", weights_only=True)
    env = checkpoint["hyper_parameters"]["env"]
    recipe = {"class_path": "zoo.agents.DQN", "init_args": {"env": dict(env)}}
    for field in ("frame_window", "objects", "condition"):  # fields the env gained after such a checkpoint was written
        env.pop(field)
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    check_checkpoint_matches_recipe(str(old), recipe)  # the defaults fill in: no refusal
    recipe["init_args"]["env"]["frame_window"] = 4
    with pytest.raises(ZooError, match="env is"):
        check_checkpoint_matches_recipe(str(old), recipe)


def test_zoo_validate_is_not_a_command_and_points_at_zoo_evaluate(capsys):
    """Agents have no validation dataloader: their held-out check is `zoo evaluate`, which --help lists instead."""
    assert main(["validate", "--config", "recipes/dqn_highway.yaml"]) == 2
    assert "`zoo evaluate --ckpt <checkpoint>`" in " ".join(capsys.readouterr().err.split())
    assert main(["--help"]) == 0
    assert "validate" not in capsys.readouterr().out


@pytest.mark.parametrize("command", [[name, *([sub] if sub else [])] for name, entry in COMMANDS.items()
                                     for sub in ([None] if isinstance(entry, str) else [None, *entry])
                                     if sub != "_help"], ids=" ".join)
def test_every_command_has_help(command, capsys):
    code, out, _ = _run([*command, "--help"], capsys)
    assert code == 0
    assert out.startswith("usage: zoo " + command[0])


def test_command_options_keep_their_argparse_spelling(capsys):
    """Dashes, a flag without a value, several values after one option, ``--as`` for the parameter ``as_``; a missing
    option named as it is typed."""
    code, out, _ = _run(["register", "--help"], capsys)
    assert "--as AS" in out and "--allow-pickle " in out
    code, _, err = _run(["register", "some-folder"], capsys)
    assert code == 2 and "the following arguments are required: --as" in err
    code, out, _ = _run(["reward", "calibrate", "--help"], capsys)
    assert "--head HEAD [HEAD ...]" in out and "--percentiles PERCENTILES PERCENTILES" in out
    code, _, err = _run(["export", "--policy", "p", "--format", "tflite", "--out", "o"], capsys)
    assert code == 2 and "invalid choice: 'tflite' (choose from 'torchscript', 'onnx')" in err
