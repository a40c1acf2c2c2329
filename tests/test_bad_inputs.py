"""Bad-input sweep: malformed and hostile inputs through the public API and the ``zoo`` command.

Every case must end in a clear error naming the bad thing (a :class:`ZooError`; exit code 2 and one
``error:`` line for the CLI, no traceback) and leave an existing workspace untouched: its run folders,
checkpoints, MLflow runs and registered model versions (file hashes and mtimes compared before and after).
The number of cases is reported in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import mlflow
import numpy as np
import pytest
import torch
from conftest import TINY_RECIPE, free_port, tiny_workspace
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils

import zoo
from zoo import keys
from zoo.agents.checkpoint import load_agent
from zoo.cli import main
from zoo.errors import ZooError
from zoo.hub.policies import load_policy_folder, save_policy_folder
from zoo.rewards.base import RewardModule

REGISTERED = "dqn-tiny"
#: written by the hostile pickle if it were ever unpickled
MARKER = "PICKLE_RAN"


# -- the workspace that must stay untouched ---------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> SimpleNamespace:
    """A tiny ``zoo fit`` run (checkpoints, MLflow run) and a registered policy, in a local store."""
    root = tmp_path_factory.mktemp("workspace")
    with tiny_workspace(root) as mp:
        mp.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        assert main(["fit", "--config", "tiny.yaml"]) == 0
        (ckpt,) = root.glob("runs/tiny/*/checkpoints/last.ckpt")
        assert main(["register", str(ckpt), "--as", REGISTERED, "--alias", "champion"]) == 0
    return SimpleNamespace(root=root, ckpt=ckpt, store=f"sqlite:///{root / 'mlflow.db'}")


def _state(workspace: SimpleNamespace) -> dict[str, Any]:
    files = {str(p.relative_to(workspace.root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
             for p in sorted(workspace.root.rglob("*")) if p.is_file()}
    client = mlflow.MlflowClient(workspace.store)
    runs = sorted((r.info.run_id, r.info.status) for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()]))
    versions = sorted((v.name, v.version, tuple(sorted(v.aliases))) for v in client.search_model_versions())
    return {"files": files, "runs": runs, "versions": versions}


@pytest.fixture
def untouched(workspace, monkeypatch) -> Iterator[SimpleNamespace]:
    """Run the test in the workspace (its local store); afterwards nothing in it has changed."""
    monkeypatch.chdir(workspace.root)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", workspace.store)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    before = _state(workspace)
    yield workspace
    after = _state(workspace)
    assert after["runs"] == before["runs"] and after["versions"] == before["versions"]
    changed = {k for k in before["files"].keys() | after["files"].keys()
               if before["files"].get(k) != after["files"].get(k)}
    assert not changed, f"bad input changed the workspace: {sorted(changed)}"


# -- hostile files ----------------------------------------------------------------------------------
class _Payload:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _break_header(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[8:24] = b"\xff" * 16  # the JSON header right after its 8-byte length
    file.write_bytes(bytes(data))


def _recipe(**replace: str) -> str:
    text = TINY_RECIPE
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


RECIPES = {
    "yaml-wrong-type": _recipe(**{"total_frames: 64": "total_frames: many"}),
    "yaml-wrong-type-list": _recipe(**{"hidden_sizes: [32]": "hidden_sizes: {a: 1}"}),
    "yaml-unknown-key": _recipe(**{"buffer_size: 256": "buffer_size: 256\n    bogus_key: 1"}),
    "yaml-unknown-section": TINY_RECIPE + "trainr:\n  max_steps: 3\n",
    "yaml-interpolation-loop": _recipe(**{"total_frames: 64": "total_frames: ${model.init_args.buffer_size}",
                                          "buffer_size: 256": "buffer_size: ${model.init_args.total_frames}"}),
    "yaml-interpolation-self": _recipe(**{"total_frames: 64": "total_frames: ${model.init_args.total_frames}"}),
    "yaml-interpolation-missing": _recipe(**{"total_frames: 64": "total_frames: ${nowhere.to_be_found}"}),
    "yaml-syntax": _recipe(**{"hidden_sizes: [32]": "hidden_sizes: [32"}),
    "yaml-not-a-mapping": "- 1\n- 2\n",
    "yaml-unknown-agent": _recipe(**{"zoo.agents.DQN": "zoo.agents.DQNN"}),
    "yaml-hostile-class": _recipe(**{"zoo.agents.DQN": "os.system"}),
    "yaml-unknown-network": _recipe(**{"hidden_sizes: [32]": "hidden_sizes: [32]\n    network: transformer"}),
}


@pytest.fixture(scope="module")
def hostile(workspace, tmp_path_factory) -> SimpleNamespace:
    """Malformed and hostile inputs, outside the workspace."""
    root = tmp_path_factory.mktemp("hostile")
    for name, text in RECIPES.items():
        (root / f"{name}.yaml").write_text(text)
    checkpoint = torch.load(workspace.ckpt, weights_only=True)
    torch.save({**checkpoint, "payload": _Payload(root / MARKER)}, root / "payload.ckpt")
    torch.save({**checkpoint, "extra": argparse.Namespace(note="needs pickle")}, root / "needs-pickle.ckpt")
    shutil.copy(workspace.ckpt, root / "truncated.ckpt")
    _truncate(root / "truncated.ckpt")
    (root / "garbage.ckpt").write_bytes(b"not a checkpoint" * 64)

    policy = save_policy_folder(load_agent(workspace.ckpt), root / "policy", "dqn-highway.tiny", "A tiny DQN")
    shutil.copytree(policy, root / "policy-truncated")
    _truncate(root / "policy-truncated" / "model.safetensors")
    shutil.copytree(policy, root / "policy-corrupted")
    _break_header(root / "policy-corrupted" / "model.safetensors")

    from zoo.hub.random_models import build_random_dual_encoder

    reward = build_random_dual_encoder(root / "reward", "vision-text", "tiny")
    (reward / "zoo.json").write_text(json.dumps({"name": "test-clip.tiny", "kind": "reward",
                                                 "summary": "A random tiny reward model", "reward": {"head": "clg"}}))
    shutil.copytree(reward, root / "reward-truncated")
    _truncate(root / "reward-truncated" / "model.safetensors")
    shutil.copytree(reward, root / "reward-corrupted")
    _break_header(root / "reward-corrupted" / "model.safetensors")

    remote = shutil.copytree(reward, root / "remote-code")  # a Hugging Face folder whose model is its own code
    (remote / "zoo.json").unlink()
    config = json.loads((remote / "config.json").read_text())
    config.update(model_type="evil-model", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "evil.py").write_text(f"open({str(root / 'REMOTE_CODE_RAN')!r}, 'w').write('code ran')\n")
    return SimpleNamespace(root=root, policy=policy, reward=reward, marker=root / MARKER,
                           remote_marker=root / "REMOTE_CODE_RAN")


# -- the CLI ----------------------------------------------------------------------------------------
def _unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}"


#: case -> (argv, environment, names the error must contain); "{h}" is the hostile folder, "{u}" an unreachable URI
CLI_CASES: dict[str, tuple[list[str], dict[str, str], list[str]]] = {
    "yaml-wrong-type": (["fit", "--config", "{h}/yaml-wrong-type.yaml"], {}, ["total_frames", "many"]),
    "yaml-wrong-type-list": (["fit", "--config", "{h}/yaml-wrong-type-list.yaml"], {}, ["hidden_sizes"]),
    "yaml-unknown-key": (["fit", "--config", "{h}/yaml-unknown-key.yaml"], {}, ["bogus_key"]),
    "yaml-unknown-section": (["fit", "--config", "{h}/yaml-unknown-section.yaml"], {}, ["trainr"]),
    "yaml-interpolation-loop": (["fit", "--config", "{h}/yaml-interpolation-loop.yaml"], {},
                                ["Recursive interpolation", "model.init_args.total_frames"]),
    "yaml-interpolation-self": (["fit", "--config", "{h}/yaml-interpolation-self.yaml"], {},
                                ["Recursive interpolation", "model.init_args.total_frames"]),
    "yaml-interpolation-missing": (["fit", "--config", "{h}/yaml-interpolation-missing.yaml"], {},
                                   ["nowhere.to_be_found"]),
    "yaml-syntax": (["fit", "--config", "{h}/yaml-syntax.yaml"], {}, ["parsing"]),
    "yaml-not-a-mapping": (["fit", "--config", "{h}/yaml-not-a-mapping.yaml"], {}, ["Unexpected config"]),
    "yaml-unknown-agent": (["fit", "--config", "{h}/yaml-unknown-agent.yaml"], {}, ["zoo.agents.DQNN", "zoo.agents.DQN"]),
    "yaml-hostile-class": (["fit", "--config", "{h}/yaml-hostile-class.yaml"], {}, ["os.system"]),
    "yaml-unknown-network": (["fit", "--config", "{h}/yaml-unknown-network.yaml"], {}, ["'transformer'", "mlp"]),
    "fit-pickle-checkpoint": (["fit", "--config", "tiny.yaml", "--ckpt_path", "{h}/payload.ckpt"], {},
                              ["payload.ckpt", "pickled objects", "--allow-pickle"]),
    "fit-truncated-checkpoint": (["fit", "--config", "tiny.yaml", "--ckpt_path", "{h}/truncated.ckpt"], {},
                                 ["truncated.ckpt", "truncated or corrupted"]),
    "fit-unreachable-server": (["fit", "--config", "tiny.yaml"], {"MLFLOW_TRACKING_URI": "{u}"},
                               ["cannot reach the MLflow tracking server at {u}"]),
    "fit-unsupported-tracking-uri": (["fit", "--config", "tiny.yaml"], {"MLFLOW_TRACKING_URI": "nonsense://store"},
                                     ["unsupported MLflow tracking URI 'nonsense://store'"]),
    "evaluate-pickle-checkpoint": (["evaluate", "--ckpt", "{h}/payload.ckpt", "--episodes", "1"], {},
                                   ["payload.ckpt", "pickled objects", "--allow-pickle"]),
    "evaluate-truncated-checkpoint": (["evaluate", "--ckpt", "{h}/truncated.ckpt", "--episodes", "1"], {},
                                      ["truncated.ckpt", "truncated or corrupted"]),
    "evaluate-garbage-checkpoint": (["evaluate", "--ckpt", "{h}/garbage.ckpt", "--episodes", "1"], {},
                                    ["garbage.ckpt", "truncated or corrupted"]),
    "evaluate-unknown-run": (["evaluate", "--ckpt", "runs:/0123456789abcdef0123456789abcdef"], {},
                             ["no MLflow run '0123456789abcdef0123456789abcdef'"]),
    "evaluate-unreachable-server": (["evaluate", "--ckpt", "{h}/truncated.ckpt"], {"MLFLOW_TRACKING_URI": "{u}"},
                                    ["cannot reach the MLflow tracking server at {u}"]),
    "register-pickle-checkpoint": (["register", "{h}/payload.ckpt", "--as", "evil"], {},
                                   ["pickled objects", "--allow-pickle"]),
    "register-truncated-policy": (["register", "{h}/policy-truncated", "--as", REGISTERED], {},
                                  ["policy-truncated/model.safetensors", "truncated or corrupted"]),
    "register-corrupted-reward": (["register", "{h}/reward-corrupted", "--as", "clip"], {},
                                  ["reward-corrupted/model.safetensors", "truncated or corrupted"]),
    "register-unknown-model": (["register", "models:/dqn-tiyn@champion", "--as", "copy"], {},
                               ["no registered model 'dqn-tiyn'", f"Did you mean '{REGISTERED}'"]),
    "register-unknown-alias": (["register", f"models:/{REGISTERED}@best", "--as", "copy"], {},
                               ["has no alias 'best'", "@champion"]),
    "register-malformed-uri": (["register", f"models:/{REGISTERED}", "--as", "copy"], {},
                               ["is not models:/<name>@<alias>"]),
    "register-bad-name": (["register", "{h}/policy", "--as", "bad name!"], {}, ["'bad name!'"]),
    "register-unreachable-server": (["register", "{h}/policy", "--as", "policy"], {"MLFLOW_TRACKING_URI": "{u}"},
                                    ["cannot reach the MLflow tracking server at {u}"]),
    "models-unknown-name": (["models", "info", "no-such.model"], {}, ["unknown model 'no-such.model'"]),
    "models-unknown-kind": (["models", "list", "--kind", "weights"], {}, ["unknown model kind 'weights'", "policy"]),
    "reward-unknown-model": (["reward", "calibrate", "--model", "drive-clip-bev-tiy"], {},
                             ["unknown model 'drive-clip-bev-tiy'", "Did you mean 'drive-clip-bev-tiny'"]),
    "reward-corrupted-model": (["reward", "calibrate", "--model", "{h}/reward-truncated"], {},
                               ["reward-truncated/model.safetensors", "truncated or corrupted"]),
    "reward-remote-code": (["reward", "calibrate", "--model", "{h}/remote-code"], {}, ["trust_remote_code=True"]),
    "reward-unknown-head": (["reward", "calibrate", "--model", "{h}/reward", "--head", "clgg"], {}, ["'clgg'"]),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_refuses_bad_input(case, hostile, untouched, monkeypatch, capsys):
    argv, env, names = CLI_CASES[case]
    uri = _unreachable()

    def fill(text: str) -> str:
        return text.replace("{h}", str(hostile.root)).replace("{u}", uri)

    for key, value in env.items():
        monkeypatch.setenv(key, fill(value))
    try:
        code = main([fill(a) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    message = " ".join(err.split())
    for name in names:
        assert fill(name) in message, f"{fill(name)!r} not in {message!r}"
    assert not hostile.marker.exists() and not hostile.remote_marker.exists()  # no code from a file ran


# -- the public API ---------------------------------------------------------------------------------
def _frames(dtype=torch.uint8, shape=(2, 3, 32, 32), fill: float | None = None) -> torch.Tensor:
    return torch.full(shape, fill, dtype=dtype) if fill is not None else torch.zeros(shape, dtype=dtype)


#: case -> (call, the error must match)
UNREADABLE = r"cannot read weights .*{}/model.safetensors \(truncated or corrupted\?\)"
API_CASES: dict[str, tuple[Callable[[SimpleNamespace], Any], str]] = {
    "checkpoint-pickle": (lambda h: load_agent(h.root / "payload.ckpt"), "holds pickled objects.*allow_pickle=True"),
    "checkpoint-needs-pickle": (lambda h: load_agent(h.root / "needs-pickle.ckpt"),
                                r"argparse.Namespace.*allow_pickle=True"),
    "checkpoint-truncated": (lambda h: load_agent(h.root / "truncated.ckpt"), "truncated or corrupted"),
    "checkpoint-garbage": (lambda h: load_agent(h.root / "garbage.ckpt"), "truncated or corrupted"),
    "safetensors-truncated-policy": (lambda h: zoo.load_policy(str(h.root / "policy-truncated")),
                                     UNREADABLE.format("policy-truncated")),
    "safetensors-corrupted-policy": (lambda h: load_policy_folder(h.root / "policy-corrupted"),
                                     UNREADABLE.format("policy-corrupted")),
    "safetensors-truncated-reward": (lambda h: zoo.create_reward_model(str(h.root / "reward-truncated")),
                                     UNREADABLE.format("reward-truncated")),
    "safetensors-corrupted-reward": (lambda h: zoo.create_reward_model(str(h.root / "reward-corrupted")),
                                     UNREADABLE.format("reward-corrupted")),
    "register-truncated-folder": (lambda h: _register(h.root / "policy-truncated"), "truncated or corrupted"),
    "remote-code-off": (lambda h: zoo.create_reward_model(str(h.root / "remote-code")), "trust_remote_code=True"),
    "unknown-reward-model": (lambda h: zoo.create_reward_model("drive-clip-bev-tiy"),
                             "Did you mean 'drive-clip-bev-tiny'"),
    "unknown-policy": (lambda h: zoo.load_policy("no-such.policy"), "unknown model 'no-such.policy'"),
    "unknown-scenario": (lambda h: zoo.make_env("nowhere"), "unknown scenario 'nowhere'.*highway-fast"),
    "unknown-agent": (lambda h: _agents().get("DQNN"), "unknown agent 'DQNN'.*Did you mean 'DQN'"),
    "unknown-registered-model": (lambda h: zoo.create_reward_model("models:/missing@champion"),
                                 f"no registered model 'missing'.*Registered models: {REGISTERED}"),
    "unknown-alias": (lambda h: zoo.load_policy(f"models:/{REGISTERED}@best"), "has no alias 'best'"),
    "unknown-version": (lambda h: zoo.load_policy(f"models:/{REGISTERED}/9"), "has no version '9'; its versions: 1"),
    "malformed-models-uri": (lambda h: zoo.create_reward_model("models:/"), "is not models:/<name>@<alias>"),
    "malformed-runs-uri": (lambda h: zoo.load_agent("runs:/xyz"), r"checkpoint 'runs:/xyz' not found"),
    "unknown-run": (lambda h: zoo.load_agent("runs:/0123456789abcdef0123456789abcdef"),
                    "no MLflow run '0123456789abcdef0123456789abcdef'"),
    "unsupported-tracking-uri": (lambda h: _download(f"models:/{REGISTERED}@champion", "nonsense://store"),
                                 "unsupported MLflow tracking URI 'nonsense://store'"),
    "unreachable-tracking-uri": (lambda h: _download(f"models:/{REGISTERED}@champion", "http://127.0.0.1:9"),
                                 "cannot reach the MLflow tracking server at http://127.0.0.1:9"),
    "frames-float": (lambda h: _reward(h).image_embeddings(_frames(torch.float32)), "frames must be uint8"),
    "frames-nan": (lambda h: _reward(h).image_embeddings(_frames(torch.float32, fill=float("nan"))),
                   "frames must be uint8"),
    "frames-channels-last": (lambda h: _reward(h).image_embeddings(_frames(shape=(2, 32, 32, 3))),
                             r"channels first.*\(2, 32, 32, 3\).*channels last\?"),
    "frames-no-batch-no-channels": (lambda h: _reward(h).image_embeddings(_frames(shape=(32, 32))),
                                    r"\[\.\.\., 3, H, W\], got \(32, 32\)"),
    "frames-not-a-tensor": (lambda h: _reward(h).image_embeddings(np.zeros((2, 3, 32, 32), np.uint8)),
                            "frames must be a torch.Tensor, got ndarray"),
    "images-float": (lambda h: _predict_rewards(h, np.zeros((2, 32, 32, 3), np.float32)), "images must be uint8"),
    "images-wrong-shape": (lambda h: _predict_rewards(h, np.zeros((2, 32, 32), np.uint8)),
                           r"\[N, H, W, 3\] or \[N, 3, H, W\], got \(2, 32, 32\)"),
    "observations-nan": (lambda h: _predict_actions(h, float("nan")), "observations hold 50 NaN or infinite"),
    "observations-inf": (lambda h: _predict_actions(h, float("inf")), "observations hold 50 NaN or infinite"),
    "observations-wrong-shape": (lambda h: _predict_actions(h, 0.0, shape=(2, 3)),
                                 r"observations must have shape \[N, 25\]"),
}


def _agents():
    from zoo.agents import AGENTS

    return AGENTS


def _register(folder: Path):
    from zoo.hub.mlflow_registry import register_model

    return register_model(folder, REGISTERED)


def _download(uri: str, tracking_uri: str):
    from zoo.hub.mlflow_registry import download_model

    return download_model(uri, tracking_uri=tracking_uri)


def _reward(hostile: SimpleNamespace):
    return zoo.create_reward_model(str(hostile.reward), device="cpu")


def _predict_rewards(hostile: SimpleNamespace, images: np.ndarray):
    from zoo.hub.loaders import predict_rewards

    return predict_rewards(_reward(hostile), images)


def _predict_actions(hostile: SimpleNamespace, fill: float, shape: tuple[int, ...] = (2, 25)):
    from zoo.hub.loaders import predict_actions

    return predict_actions(load_policy_folder(hostile.policy), np.full(shape, fill, np.float32))


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_refuses_bad_input(case, hostile, untouched):
    call, message = API_CASES[case]
    with pytest.raises(ZooError, match=message):
        call(hostile)
    assert not hostile.marker.exists() and not hostile.remote_marker.exists()


# -- what runs only when asked ------------------------------------------------------------------------
def test_a_checkpoint_needing_pickle_loads_with_allow_pickle(hostile, untouched):
    agent = load_agent(hostile.root / "needs-pickle.ckpt", allow_pickle=True)
    reference = load_agent(untouched.ckpt)
    for key, tensor in reference.state_dict().items():
        assert torch.equal(agent.state_dict()[key], tensor), key


def test_remote_model_code_runs_only_when_asked(hostile, untouched):
    with pytest.raises(ZooError, match="trust_remote_code=True"):
        zoo.create_reward_model(str(hostile.root / "remote-code"))
    assert not hostile.remote_marker.exists()
    with contextlib.suppress(Exception):  # the stand-in code defines no model: only whether it ran matters
        zoo.create_reward_model(str(hostile.root / "remote-code"), trust_remote_code=True)
    assert hostile.remote_marker.exists()
    hostile.remote_marker.unlink()


# -- NaN and infinite values caught before the optimizer --------------------------------------------
class ConstantReward(RewardModule):
    """Every step rewarded with ``value`` (a NaN or an infinity here)."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = value

    def compute(self, next_state):
        return {keys.REWARD: torch.full((*next_state.batch_size, 1), self.value)}


def _poison_observations(agent, value: float) -> None:
    """Make the env's observations non-finite as they are collected (a broken sensor or simulator)."""
    collected = agent.collected

    def poisoned(batch):
        batch.get("next").get(keys.OBSERVATION)[..., 0] = value
        return collected(batch)

    agent.collected = poisoned


@pytest.mark.parametrize(("what", "value", "named"), [
    ("reward", float("nan"), r"next/reward \(\d+ NaN, 0 inf\)"),
    ("reward", float("inf"), r"next/reward \(0 NaN, \d+ inf\)"),
    ("reward", float("-inf"), r"next/reward \(0 NaN, \d+ inf\)"),
    ("observation", float("nan"), r"next/observation \(\d+ NaN, 0 inf\)"),
    ("observation", float("inf"), r"next/observation \(0 NaN, \d+ inf\)"),
], ids=["reward-nan", "reward-inf", "reward-neg-inf", "observation-nan", "observation-inf"])
def test_non_finite_batches_stop_training_before_the_optimizer(what, value, named, make_agent):
    agent = make_agent("dqn", reward=ConstantReward(value) if what == "reward" else None)
    if what == "observation":
        _poison_observations(agent, value)
    before = {k: v.detach().clone() for k, v in agent.named_parameters()}
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with pytest.raises(ZooError, match=rf"training batch of update 0 \(after \d+ env steps\): .*{named}"):
        trainer.fit(agent)
    for key, param in agent.named_parameters():  # the optimizer never stepped on the bad batch
        assert torch.equal(param, before[key]), key


def test_finite_batches_pass_the_guard(make_agent, fit_updates):
    agent = make_agent("dqn", reward=ConstantReward(1.0))
    before = {k: v.detach().clone() for k, v in agent.named_parameters()}
    fit_updates(agent, 1)
    assert any(not torch.equal(param, before[key]) for key, param in agent.named_parameters())

