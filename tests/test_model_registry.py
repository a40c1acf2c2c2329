"""The MLflow model registry: zoo model folders registered as pyfunc models (no pickle), loaded back by
alias or version through ``mlflow.pyfunc`` and as folders, in the local store and on a real tracking
server; policies from checkpoints; quantized LoRA adapters; ``zoo register``; helpful errors."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from conftest import free_port
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils

import zoo
from zoo import keys
from zoo.cli import main
from zoo.envs import build_env
from zoo.errors import ZooError
from zoo.hub.loaders import build_from_folder
from zoo.hub.mlflow_registry import download_model, register_model, set_alias
from zoo.hub.policies import load_policy_folder, save_policy_folder


# -- fixtures ---------------------------------------------------------------------------------------
def _write_card(folder: Path, **card) -> Path:
    (folder / "zoo.json").write_text(json.dumps(card, indent=2))
    (folder / "README.md").write_text(f"# {card['name']}\n\n{card['summary']}\n")
    return folder


@pytest.fixture(scope="session")
def reward_folder(tmp_path_factory) -> Path:
    """A tiny random reward model folder: Hugging Face dual encoder files + zoo.json + README.md."""
    from zoo.hub.random_models import build_random_dual_encoder

    folder = build_random_dual_encoder(tmp_path_factory.mktemp("reward") / "m", "vision-text", "tiny")
    return _write_card(folder, name="test-clip.tiny", kind="reward", summary="A random tiny reward model",
                       reward={"head": "clg"})


@pytest.fixture(params=["local", "server"])
def store(request, monkeypatch) -> str:
    """The tracking URI of a test: the local SQLite store in the test's folder, or the shared server."""
    if request.param == "server":
        uri = request.getfixturevalue("mlflow_server")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    else:
        uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    # what a user's `mlflow.set_tracking_uri(uri)` does, undone after the test
    monkeypatch.setattr(tracking_utils, "_tracking_uri", uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    return uri


@pytest.fixture
def local_store(monkeypatch) -> str:
    """The local store the CLI uses by default, also for ``mlflow.pyfunc.load_model`` in the test."""
    uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    monkeypatch.setattr(tracking_utils, "_tracking_uri", uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    return uri


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # the server is shared by the whole session


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 40, 48, 3), dtype=np.uint8)


def _zoo_rewards(folder: Path, images: np.ndarray, **kwargs) -> np.ndarray:
    reward = zoo.create_reward_model(str(folder), head="clg", device="cpu", **kwargs)
    with torch.no_grad():
        frames = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        return reward.score(reward.image_embeddings(frames))["reward"].numpy()


# -- reward models ----------------------------------------------------------------------------------
def test_registered_reward_model_predicts_the_zoo_rewards(reward_folder, store):
    name = _unique("clip")
    version = register_model(reward_folder, name, alias="champion")
    assert str(version.version) == "1" and "champion" in version.aliases
    assert version.tags["zoo.name"] == "test-clip.tiny" and version.description == "A random tiny reward model"

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    images = _images(4)
    rewards = model.predict(images)
    assert isinstance(rewards, np.ndarray) and rewards.shape == (4,) and rewards.dtype == np.float32
    assert np.isfinite(rewards).all()
    np.testing.assert_allclose(rewards, _zoo_rewards(reward_folder, images), atol=1e-5)
    # channels first works too
    np.testing.assert_allclose(model.predict(images.transpose(0, 3, 1, 2).copy()), rewards, atol=1e-5)


def test_registered_model_holds_the_folder_files_and_no_pickle(reward_folder, store):
    name = _unique("clip")
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    register_model(reward_folder, name)
    assert os.environ.get("MLFLOW_TRACKING_URI") == env_before and mlflow.active_run() is None  # no leftovers
    assert tracking_utils._tracking_uri == store
    folder = download_model(f"models:/{name}/1")
    model_root = folder.parents[1]  # <model>/artifacts/<folder>
    assert (model_root / "MLmodel").is_file() and (model_root / "pyfunc.py").is_file()
    assert "python_model" not in (model_root / "MLmodel").read_text()  # models from code: nothing pickled
    assert not [p for p in model_root.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]
    for file in ("zoo.json", "README.md", "config.json", "model.safetensors", "preprocessor_config.json"):
        assert (folder / file).read_bytes() == (reward_folder / file).read_bytes(), file
    if store.startswith("sqlite"):  # the local store's artifacts, as logged
        assert not list((Path.cwd() / "mlartifacts").rglob("*.pkl"))


def test_download_model_by_alias_and_by_version(reward_folder, store):
    name = _unique("clip")
    register_model(reward_folder, name)
    register_model(reward_folder, name, alias="champion")
    by_alias = download_model(f"models:/{name}@champion")
    assert json.loads((by_alias / "zoo.json").read_text())["name"] == "test-clip.tiny"
    assert by_alias == download_model(f"models:/{name}/2")  # the alias names version 2: one cached copy
    assert download_model(f"models:/{name}/1") != by_alias
    assert str(by_alias).startswith(os.environ["ZOO_CACHE"])

    set_alias(name, "champion", 1)
    assert download_model(f"models:/{name}@champion") == download_model(f"models:/{name}/1")
    reward = build_from_folder(by_alias)
    assert reward.score(reward.image_embeddings(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)))["reward"].shape == (1,)


def test_download_model_reads_the_store_it_is_given_whatever_mlflow_points_at(reward_folder, tmp_path, monkeypatch):
    """MLflow resolves models:/ through its global registry URI even when the call names another one."""
    store = f"sqlite:///{tmp_path / 'given.db'}"
    register_model(reward_folder, "clip-given", alias="champion", tracking_uri=store)
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")  # undone by conftest's _isolated_cwd
    folder = download_model("models:/clip-given@champion", tracking_uri=store)
    assert json.loads((folder / "zoo.json").read_text())["name"] == "test-clip.tiny"
    assert mlflow.get_registry_uri().endswith("elsewhere.db")  # the user's setting is left as it was


def test_unknown_model_alias_or_version_is_a_helpful_zoo_error(reward_folder, store):
    name = _unique("clip")
    register_model(reward_folder, name, alias="champion")
    for uri, message in [
        (f"models:/{name}x@champion", rf"no registered model '{name}x' in {store}\..*Did you mean '{name}'"),
        (f"models:/{name}@best", r"has no alias 'best'; its aliases: @champion \(version 1\)"),
        (f"models:/{name}/7", r"has no version '7'; its versions: 1"),
        (f"models:/{name}", r"is not models:/<name>@<alias> or models:/<name>/<version>"),
        ("runs:/0123456789abcdef0123456789abcdef", "no MLflow run '0123456789abcdef0123456789abcdef'"),
    ]:
        with pytest.raises(ZooError, match=message):
            download_model(uri)


def test_unreachable_tracking_server_is_named():
    port = free_port()
    with pytest.raises(ZooError, match=f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}"):
        download_model("models:/clip@champion", tracking_uri=f"http://127.0.0.1:{port}")


def test_folder_without_card_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ZooError, match="no zoo.json"):
        register_model(tmp_path / "m", "clip")


# -- quantized LoRA adapters ------------------------------------------------------------------------
def test_quantized_lora_adapter_registers_as_adapter_and_base_reference(tmp_path, store):
    from zoo.hub.random_models import build_random_dual_encoder
    from zoo.vlm import load_dual_encoder

    base = _write_card(build_random_dual_encoder(tmp_path / "base", "clip", "tiny"), name="test-clip.base",
                       kind="reward", summary="A random tiny base")
    encoder = load_dual_encoder(base, quantization={"bits": 8}, lora={"r": 4}, device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():  # "train" the adapters: lora_B starts at zero
        for param_name, param in encoder.model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(std=0.5)
    adapter = tmp_path / "adapter"
    encoder.model.save_pretrained(adapter)
    _write_card(adapter, name="test-clip.adapter", kind="reward", summary="LoRA adapters on a quantized base",
                adapter_of=str(base), quantization={"bits": 8}, reward={"head": "clg"})

    name = _unique("clip-adapter")
    version = register_model(adapter, name, alias="champion")
    assert version.tags["zoo.adapter_of"] == str(base)
    assert json.loads(version.tags["zoo.quantization"]) == {"bits": 8}
    folder = download_model(f"models:/{name}@champion")
    assert {"adapter_config.json", "adapter_model.safetensors", "zoo.json"} <= {p.name for p in folder.iterdir()}
    assert not (folder / "model.safetensors").exists()  # the base is referenced, not copied

    images = _images(3)
    expected = _zoo_rewards(base, images, adapter=str(adapter), quantization={"bits": 8})
    assert not np.allclose(expected, _zoo_rewards(base, images), atol=1e-4)  # the adapters matter
    rewards = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(images)
    np.testing.assert_allclose(rewards, expected, atol=1e-4)


# -- policies ---------------------------------------------------------------------------------------
def _observations(agent, n: int = 4) -> np.ndarray:
    env = build_env(replace(agent.env_config, num_envs=1), seed=0)
    try:
        return env.rollout(n, break_when_any_done=False)[agent.obs_key].numpy()  # random actions
    finally:
        env.close()


def _actions(agent, observations: np.ndarray) -> np.ndarray:
    from tensordict import TensorDict

    obs = torch.from_numpy(observations)
    return agent.act(TensorDict({agent.obs_key: obs}, batch_size=[len(obs)]))[keys.ACTION].numpy()


@pytest.fixture
def trained_dqn(make_agent, fit_updates, tmp_path):
    """A tiny DQN after one update, and its Lightning checkpoint."""
    agent = make_agent("dqn")
    trainer = fit_updates(agent, 1)
    trainer.save_checkpoint(tmp_path / "dqn.ckpt")
    return agent, tmp_path / "dqn.ckpt"


def test_policy_folder_round_trip(trained_dqn, tmp_path):
    agent, _ = trained_dqn
    folder = save_policy_folder(agent, tmp_path / "policy", "dqn-highway.test", "A tiny DQN")
    assert {"zoo.json", "README.md", "agent.yaml", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    card = json.loads((folder / "zoo.json").read_text())
    assert card["kind"] == "policy" and card["policy"]["obs_shape"] == list(agent.obs_shape)
    loaded = load_policy_folder(folder)
    assert type(loaded) is type(agent)
    for key, tensor in agent.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    obs = _observations(agent)
    np.testing.assert_array_equal(_actions(loaded, obs), _actions(agent, obs))


def test_zoo_models_save_policy_writes_a_card_with_the_training_command_and_held_out_metrics(
        trained_dqn, local_store, tmp_path, capsys):
    agent, ckpt = trained_dqn
    client = mlflow.MlflowClient(local_store)
    run = client.create_run(client.create_experiment("benchmark-paper"),
                            tags={"zoo.benchmark.method": "engineered", "zoo.benchmark.seed": "2",
                                  "zoo.benchmark.eval_episodes": "20"})
    client.log_batch(run.info.run_id, metrics=[mlflow.entities.Metric(k, v, 0, 0) for k, v in
                                               (("eval/SR", 0.95), ("eval/SR_std", 0.2), ("eval/CR", 0.05))])
    out = tmp_path / "sac-merge.test"
    argv = ["models", "save-policy", str(ckpt), "--name", "dqn-highway.test", "--summary", "A tiny DQN",
            "--out", str(out), "--run", run.info.run_id, "--command", "zoo benchmark --steps 2000"]
    assert main(argv) == 0
    card = json.loads((out / "zoo.json").read_text())
    assert card["training"] == {"command": "zoo benchmark --steps 2000", "algorithm": "DQN",
                                "scenario": "highway-fast", "action": "discrete", "env_steps": agent.hparams.total_frames,
                                "reward": "zoo.rewards.EngineeredReward (default)", "method": "engineered", "seed": "2",
                                "run": run.info.run_id}
    assert card["metrics"]["SR"] == 0.95 and card["metrics"]["CR"] == 0.05 and "SR_std" not in card["metrics"]
    assert card["metrics"]["episodes"] == 20
    readme = (out / "README.md").read_text()
    assert "## Held-out metrics" in readme and "* **SR**: 0.95" in readme and "`zoo benchmark --steps 2000`" in readme
    obs = _observations(agent)
    np.testing.assert_array_equal(_actions(zoo.load_policy(str(out)), obs), _actions(agent, obs))

    no_eval = client.create_run(client.get_experiment_by_name("benchmark-paper").experiment_id)
    assert main([*argv[:-4], "--run", no_eval.info.run_id]) == 2
    assert "no eval/* metrics" in capsys.readouterr().err


def test_policy_folder_naming_an_unregistered_class_is_refused(trained_dqn, tmp_path):
    folder = save_policy_folder(trained_dqn[0], tmp_path / "policy", "dqn-highway.test", "A tiny DQN")
    text = (folder / "agent.yaml").read_text().replace("zoo.agents.dqn.DQN", "os.system")
    (folder / "agent.yaml").write_text(text)
    with pytest.raises(ZooError, match="names agent class 'os.system'; known: .*zoo.agents.DQN"):
        load_policy_folder(folder)


def test_zoo_register_a_checkpoint_then_the_policy_predicts_actions(trained_dqn, local_store, capsys):
    agent, ckpt = trained_dqn
    assert main(["register", str(ckpt), "--as", "dqn-highway", "--alias", "champion"]) == 0
    out = capsys.readouterr().out
    assert "registered dqn-highway version 1 (alias @champion)" in out and "models:/dqn-highway@champion" in out

    model = mlflow.pyfunc.load_model("models:/dqn-highway@champion")
    obs = _observations(agent)
    actions = model.predict(obs)
    assert actions.shape == (len(obs),)
    np.testing.assert_array_equal(actions, _actions(agent, obs))
    card = json.loads((download_model("models:/dqn-highway@champion") / "zoo.json").read_text())
    assert card["kind"] == "policy" and card["name"] == "dqn-highway-fast.dqn"


# -- zoo register -----------------------------------------------------------------------------------
def test_zoo_register_a_folder_prints_the_uri(reward_folder, local_store, capsys):
    assert main(["register", str(reward_folder), "--as", "clip-bev", "--alias", "champion"]) == 0
    out = capsys.readouterr().out
    assert "registered clip-bev version 1 (alias @champion)" in out
    assert 'mlflow.pyfunc.load_model("models:/clip-bev@champion")' in out
    assert (download_model("models:/clip-bev@champion") / "zoo.json").is_file()


@pytest.mark.parametrize("name", ["drive-clip-bev-tiny", "drive-clip-bev-tiny.sim"])
def test_zoo_register_takes_the_family_name_and_the_listed_name(name, local_store, capsys):
    """The README's line: the family name, as create_reward_model takes it, and the name `zoo models list` shows."""
    assert main(["register", name, "--as", "drive-clip", "--alias", "champion"]) == 0
    assert "registered drive-clip version 1 (alias @champion)" in capsys.readouterr().out
    card = json.loads((download_model("models:/drive-clip@champion") / "zoo.json").read_text())
    assert card["name"] == "drive-clip-bev-tiny.sim"


@pytest.mark.parametrize("source, message", [
    ("no/such/folder", "cannot register 'no/such/folder': give a zoo model folder"),
    ("{tmp}", "is not a zoo model folder (no zoo.json)"),
    ("models:/missing@champion", "no registered model 'missing'"),
])
def test_zoo_register_bad_source_exits_2(source, message, tmp_path, capsys):
    assert main(["register", source.format(tmp=tmp_path), "--as", "clip"]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
