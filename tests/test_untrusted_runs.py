"""Untrusted run data: outage journals, resumed runs and the other files a run leaves behind.

A journal (``runs/<experiment>/<run id>/mlflow-pending``), a checkpoint or an MLflow store is data: it never
decides which code runs or where anything is written. Each hostile case must end in one ``error:`` line
(exit 2) or a :class:`ZooError`, and change nothing: no file outside the working folder, no journal file,
no MLflow run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import pytest

from zoo.cli import main
from zoo.errors import ZooError
from zoo.tracking.pending import _SIGNATURES, CALLS, FILES, JOURNALED, PENDING_DIR, sync

#: written by a replay that reached outside its journal
MARKER = "OUTSIDE"


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the SHA-256 of its bytes (symbolic links as their target)."""
    return {str(p.relative_to(root)): (f"-> {p.readlink()}" if p.is_symlink() else
                                       hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


# -- outage journals ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the journal tests (creating its tables is most of their time); each gets its own run."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    mlflow.MlflowClient(uri).create_experiment("outage")
    return uri


@pytest.fixture
def journal(tmp_path, store) -> Path:
    """The journal of a real run of ``store``: a metric and a logged file, as :class:`PendingClient` writes them."""
    client = mlflow.MlflowClient(store)
    run = client.create_run(client.get_experiment_by_name("outage").experiment_id).info.run_id
    folder = tmp_path / "runs" / "outage" / run / PENDING_DIR
    (folder / FILES / "1").mkdir(parents=True)
    (folder / FILES / "1" / "notes.txt").write_text("kept during the outage")
    calls = [{"method": "log_batch", "args": {"run_id": run, "metrics": [
                 {"__entity__": "Metric", "key": "loss", "value": 0.5, "timestamp": 1, "step": 16}]}},
             {"method": "log_artifact", "args": {"run_id": run, "local_path": f"{FILES}/1/notes.txt"}}]
    _write(folder, [{"uri": store, **call} for call in calls])
    return folder


def _write(folder: Path, calls: list[dict]) -> None:
    (folder / CALLS).write_text("".join(json.dumps(call) + "\n" for call in calls))


def _add(folder: Path, method: str, **args) -> None:
    """Append one call for the journal's run (``run_id`` filled in unless given)."""
    call = {"uri": json.loads((folder / CALLS).read_text().splitlines()[0])["uri"], "method": method,
            "args": {"run_id": folder.parent.name, **args}}
    with open(folder / CALLS, "a") as file:
        file.write(json.dumps(call) + "\n")


def test_every_journaled_method_has_its_argument_checks():
    assert set(_SIGNATURES) == set(JOURNALED)


def test_a_journal_replays_into_the_store_named_and_removes_only_its_own_files(journal, store, tmp_path):
    (journal / "mine.txt").write_text("not the journal's")  # something the zoo did not write there
    assert main(["tracking", "sync", str(journal), "--tracking-uri", store]) == 0
    client = mlflow.MlflowClient(store)
    run = journal.parent.name
    assert [m.step for m in client.get_metric_history(run, "loss")] == [16]
    assert [a.path for a in client.list_artifacts(run)] == ["notes.txt"]
    assert sorted(p.name for p in journal.iterdir()) == ["mine.txt"]  # only the replayed journal files went


def _outside(tmp_path: Path) -> Path:
    """A file outside the journal that a hostile call tries to send (or to reach through a link)."""
    secret = tmp_path / "secret"
    secret.mkdir(exist_ok=True)
    (secret / "id_rsa").write_text("private")
    return secret / "id_rsa"


def _unknown_method(journal, tmp_path):
    _add(journal, "delete_run")


def _dunder_method(journal, tmp_path):
    _add(journal, "__class__")


def _unknown_argument(journal, tmp_path):
    _add(journal, "log_param", key="a", value="b", synchronous=True, extra="x")


def _wrong_type(journal, tmp_path):
    _add(journal, "log_metric", key="a", value="not a number")


def _entity_with_code(journal, tmp_path):
    _add(journal, "log_batch", params=[{"__entity__": "Metric", "key": "a", "value": 1, "timestamp": 0, "step": 0,
                                        "class_path": "os.system"}])


def _absolute_path(journal, tmp_path):
    _add(journal, "log_artifact", local_path=str(_outside(tmp_path)))


def _parent_path(journal, tmp_path):
    _outside(tmp_path)
    _add(journal, "log_artifact", local_path=f"{FILES}/../../../../../secret/id_rsa")


def _outside_files(journal, tmp_path):
    _add(journal, "log_artifact", local_path=CALLS)  # inside the journal, but not one of its copies


def _symlinked_file(journal, tmp_path):
    (journal / FILES / "2").mkdir()
    (journal / FILES / "2" / "id_rsa").symlink_to(_outside(tmp_path))
    _add(journal, "log_artifact", local_path=f"{FILES}/2/id_rsa")


def _symlinked_folder(journal, tmp_path):
    (journal / FILES / "2").symlink_to(_outside(tmp_path).parent, target_is_directory=True)
    _add(journal, "log_artifacts", local_dir=f"{FILES}/2")


def _symlink_inside_a_folder(journal, tmp_path):
    (journal / FILES / "2").mkdir()
    (journal / FILES / "2" / "id_rsa").symlink_to(_outside(tmp_path))
    _add(journal, "log_artifacts", local_dir=f"{FILES}/2")


def _artifact_path_escapes(journal, tmp_path):
    _add(journal, "log_text", text="x", artifact_file="../../../../escaped.txt")


def _another_run(journal, tmp_path):
    _add(journal, "set_terminated", run_id="0" * 32, status="FINISHED")


def _another_store(journal, tmp_path):
    calls = [json.loads(line) for line in (journal / CALLS).read_text().splitlines()]
    _write(journal, [{**call, "uri": f"sqlite:///{tmp_path / 'elsewhere.db'}"} for call in calls])


HOSTILE_JOURNALS = {
    "unknown method": (_unknown_method, "method 'delete_run' is not one the zoo journals"),
    "dunder method": (_dunder_method, "method '__class__' is not one the zoo journals"),
    "unknown argument": (_unknown_argument, "unknown arguments extra, synchronous"),
    "wrong type": (_wrong_type, "log_metric with bad values of value"),
    "entity with extra fields": (_entity_with_code, "log_batch with bad values of params"),
    "absolute path": (_absolute_path, "log_artifact with bad values of local_path"),
    "../ path": (_parent_path, "log_artifact with bad values of local_path"),
    "file outside files/": (_outside_files, "is not inside the journal's files/ folder"),
    "symlinked file": (_symlinked_file, "passes through a symbolic link"),
    "symlinked folder": (_symlinked_folder, "passes through a symbolic link"),
    "symlink inside a folder": (_symlink_inside_a_folder, "holds a symbolic link"),
    "artifact path escapes": (_artifact_path_escapes, "log_text with bad values of artifact_file"),
    "another run": (_another_run, "not the journal's own run"),
    "another store": (_another_store, "was journaled for the store sqlite:///"),
}


@pytest.mark.parametrize("case", list(HOSTILE_JOURNALS))
def test_sync_refuses_a_hostile_journal_and_changes_nothing(case, journal, store, tmp_path, monkeypatch, capsys):
    make, message = HOSTILE_JOURNALS[case]
    make(journal, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # the configured store: the run's own
    before, runs_before = _tree(tmp_path), _metrics(store, journal.parent.name)
    assert main(["tracking", "sync", str(journal)]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and message in lines[0], lines
    assert _tree(tmp_path) == before  # the journal kept whole, nothing written anywhere
    assert _metrics(store, journal.parent.name) == runs_before  # not even the valid calls before it were sent
    assert not list(tmp_path.rglob("escaped.txt"))


def _metrics(store: str, run: str) -> dict:
    client = mlflow.MlflowClient(store)
    return {"metrics": client.get_run(run).data.metrics, "artifacts": [a.path for a in client.list_artifacts(run)]}


def test_a_journal_for_another_store_goes_only_where_the_user_says(journal, store, tmp_path):
    calls = [json.loads(line) for line in (journal / CALLS).read_text().splitlines()]
    _write(journal, [{**call, "uri": "http://attacker.example:5000"} for call in calls])
    with pytest.raises(ZooError, match="journaled for the store http://attacker.example:5000"):
        sync(journal)  # the configured store (./mlflow.db) is not the one recorded: refused, not followed
    assert sync(journal, store) == 0  # the user names the destination
    assert mlflow.MlflowClient(store).get_metric_history(journal.parent.name, "loss")


@pytest.mark.parametrize("make", ["no journal", "journal file elsewhere"])
def test_sync_of_a_folder_that_is_not_a_journal_removes_nothing(make, tmp_path, capsys):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    if make == "journal file elsewhere":  # the journal's file name, but not in a journal folder
        (folder / CALLS).write_text("")
    before = _tree(tmp_path)
    assert main(["tracking", "sync", str(folder)]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "is not an MLflow journal folder" in lines[0]
    assert _tree(tmp_path) == before


def test_sync_checks_every_journal_before_it_sends_any(journal, store, tmp_path, capsys):
    not_a_journal = tmp_path / "nowhere" / PENDING_DIR
    assert main(["tracking", "sync", str(journal), str(not_a_journal), "--tracking-uri", store]) == 2
    assert "is not an MLflow journal folder" in capsys.readouterr().err
    assert (journal / CALLS).is_file() and not mlflow.MlflowClient(store).get_run(journal.parent.name).data.metrics


# -- resuming a run ----------------------------------------------------------------------------------
def _fit(*args: str) -> int:
    return main(["fit", "--config", "tiny.yaml", *args])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny ``zoo fit`` (64 env steps) in its own working folder; the tests that use it change nothing."""
    from conftest import tiny_workspace

    root = tmp_path_factory.mktemp("finished")
    with tiny_workspace(root):
        assert _fit() == 0
    return root


def _run_folder(root: Path) -> Path:
    (last,) = root.glob("runs/tiny/*/checkpoints/last.ckpt")
    return last.parents[1]


def _refused_resume(root: Path, monkeypatch, capsys, *args: str) -> str:
    """Resume the finished run with ``args``; assert it was refused in one line and changed nothing."""
    monkeypatch.chdir(root)
    run = _run_folder(root)
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    before, run_before = _tree(root / "runs"), client.get_run(run.name).data
    assert _fit("--ckpt_path", "last", *args) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert _tree(root / "runs") == before
    after = client.get_run(run.name).data
    assert (after.params, after.tags, after.metrics) == (run_before.params, run_before.tags, run_before.metrics)
    return lines[0]


def test_a_second_training_process_on_a_run_is_refused_naming_the_holder(finished_run, monkeypatch, capsys):
    import subprocess
    import sys

    run = _run_folder(finished_run)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom zoo.agents.checkpoint_io import run_lock\n"
                               "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = _refused_resume(finished_run, monkeypatch, capsys)
        assert f"run folder runs/tiny/{run.name} is in use by another training process (pid {holder.pid})" in line
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(("change", "named"), [
    (["--model.init_args.hidden_sizes", "[64]"], "hidden_sizes is [32] in the checkpoint but [64] in the recipe"),
    (["--model", "zoo.agents.SAC"], "holds a zoo.agents.DQN agent but the recipe asks for zoo.agents.SAC"),
])
def test_resume_refuses_a_structural_change_naming_it(change, named, finished_run, monkeypatch, capsys):
    assert named in _refused_resume(finished_run, monkeypatch, capsys, *change)


def test_resume_honours_a_changed_budget_and_learning_rate(tmp_path, capsys):
    import torch
    from conftest import TINY_RECIPE

    from zoo.tracking.logger import RESUMED_TAG

    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE)
    assert _fit() == 0
    last = _run_folder(tmp_path) / "checkpoints" / "last.ckpt"
    assert _fit("--ckpt_path", "last", "--model.init_args.total_frames", "96", "--model.init_args.lr", "0.001") == 0
    assert "resume: total_frames = 96 (the checkpoint's run had 64)" in capsys.readouterr().err
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["zoo_resume_state"]["parts"]["tracker"]["frames"] == 96  # went on to the new budget
    assert checkpoint["hyper_parameters"]["total_frames"] == 96
    assert {group["lr"] for group in checkpoint["optimizer_states"][0]["param_groups"]} == {0.001}
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(last.parents[1].name)
    assert run.data.params["total_frames"] == "64"  # MLflow keeps a run's first value ...
    assert run.data.tags[f"{RESUMED_TAG}total_frames"] == "96"  # ... and the resume's is recorded beside it
    assert run.info.status == "FINISHED"


# -- the low items: budgets, leftovers, registry, imports, frames ------------------------------------
@pytest.mark.parametrize(("key", "value", "expected"), [
    ("total_frames", -5, "total_frames must be >= 1 env step, got -5"),
    ("batch_size", 0, "batch_size must be >= 1 transition, got 0"),
    ("gamma", 5.0, "gamma must be in [0, 1], got 5.0"),
    ("lr", 0.0, "lr must be > 0, got 0.0"),
    ("updates_per_batch", 0, "updates_per_batch must be >= 1, got 0"),
])
def test_degenerate_budgets_are_refused_up_front(key, value, expected, tmp_path, capsys):
    from conftest import TINY_RECIPE

    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE)
    assert _fit(f"--model.init_args.{key}", str(value)) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_partial_checkpoints_of_killed_writers_are_removed_on_the_next_save(tmp_path):
    import subprocess
    import sys

    import torch

    from zoo.agents.checkpoint_io import AtomicCheckpointIO

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    killed = path.with_name(f".last.ckpt.{gone.stdout.strip()}.partial")  # a writer that no longer runs
    killed.write_bytes(b"half a checkpoint")
    other = path.with_name(".other.ckpt.1.partial")  # another file's: not ours to judge
    other.write_bytes(b"x")
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == [".other.ckpt.1.partial", "last.ckpt"]


def test_a_refused_alias_registers_no_version(make_agent, tmp_path, capsys):
    from zoo.hub.policies import save_policy_folder

    folder = save_policy_folder(make_agent("dqn"), tmp_path / "policy", "dqn-tiny.v1", "tiny DQN")
    assert main(["register", str(folder), "--as", "dqn-tiny", "--alias", "latest"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "alias 'latest'" in lines[0]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.search_registered_models() == [] and not client.search_model_versions("name='dqn-tiny'")


def test_importing_the_same_store_spelled_differently_copies_nothing_twice(tmp_path, monkeypatch):
    from zoo.tracking.transfer import import_runs

    (tmp_path / "other").mkdir()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("grid")).info.run_id
    client.set_terminated(run, "FINISHED")
    target = f"sqlite:///{tmp_path / 'here.db'}"
    assert len(import_runs(f"sqlite:///{tmp_path}/other/mlflow.db", "grid", target)) == 1
    assert import_runs("sqlite:///other/./mlflow.db", "grid", target) == []  # relative, with a ./
    with pytest.raises(ZooError, match="same tracking store"):
        import_runs("sqlite:///here.db", "grid", target)


def test_frames_larger_than_the_cap_are_refused_in_one_line():
    import torch

    from zoo.vlm.encoder import MAX_FRAME_SIDE, check_frames

    check_frames(torch.zeros(1, 3, MAX_FRAME_SIDE, 8, dtype=torch.uint8))
    with pytest.raises(ZooError, match=f"at most {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE} pixels, got 6000x6000"):
        check_frames(torch.zeros(1, 3, 1, 1, dtype=torch.uint8).expand(1, 3, 6000, 6000))  # no 108 MB


def test_a_pickled_checkpoint_names_only_the_commands_that_accept_allow_pickle(tmp_path, capsys):
    import argparse

    import torch

    path = tmp_path / "pickled.ckpt"
    torch.save({"hyper_parameters": argparse.Namespace(lr=1.0)}, path)
    (tmp_path / "tiny.yaml").write_text(__import__("conftest").TINY_RECIPE)
    assert _fit("--ckpt_path", str(path)) == 2  # zoo fit has no --allow-pickle: it is not told to pass one
    (line,) = _error_lines(capsys.readouterr().err)
    assert "holds pickled objects" in line and "zoo evaluate and zoo register: --allow-pickle" in line
