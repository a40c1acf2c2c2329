"""``zoo export``: a policy-only artifact (no VLM inside) that acts like the checkpoint and refuses bad input."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from zoo.cli import main
from zoo.errors import ZooError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


@pytest.fixture(scope="module")
def vlm_trained(tmp_path_factory):
    """A tiny SAC trained one update with a CLG reward on a random dual encoder, saved as a checkpoint."""
    import lightning as L

    from zoo.agents import SAC
    from zoo.envs import EnvConfig
    from zoo.rewards import CLGReward

    root = tmp_path_factory.mktemp("export")
    reward = CLGReward("random:clip-tiny", device="cpu")
    agent = SAC(env=EnvConfig("highway-fast", bev_size=32), reward=reward, hidden_sizes=(32,), total_frames=32,
                frames_per_batch=32, learning_starts=32, batch_size=16, buffer_size=64, updates_per_batch=1)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(root))
    trainer.fit(agent)
    ckpt = root / "agent.ckpt"
    trainer.save_checkpoint(ckpt)
    vlm_names = {name for name, _ in reward.encoder.named_parameters()}
    actor_numel = sum(p.numel() for p in agent.policy.parameters())
    return {"ckpt": ckpt, "vlm_names": vlm_names, "vlm_numel": sum(p.numel() for p in reward.encoder.parameters()),
            "actor_numel": actor_numel, "root": root}


@pytest.fixture(scope="module", params=["torchscript", "onnx"])
def exported(request, vlm_trained):
    from zoo.export import export_policy

    out = vlm_trained["root"] / f"policy{SUFFIX[request.param]}"
    return request.param, export_policy(str(vlm_trained["ckpt"]), request.param, out)


def _artifact_parameters(fmt: str, path) -> dict[str, int]:
    """Parameter names and sizes stored in the artifact."""
    if fmt == "torchscript":
        return {name: p.numel() for name, p in torch.jit.load(str(path)).named_parameters()}
    model = onnx.load(str(path))
    return {init.name: math.prod(init.dims) for init in model.graph.initializer}


def test_artifact_holds_the_actor_and_no_vlm(exported, vlm_trained):
    fmt, path = exported
    params = _artifact_parameters(fmt, path)
    # the actor's weights, nothing more (ONNX may fold a constant or two, never a tower's worth)
    assert sum(params.values()) - vlm_trained["actor_numel"] in range(8)
    assert vlm_trained["vlm_numel"] > 10 * vlm_trained["actor_numel"]
    assert not any(word in name for name in params for word in ("vision", "text", "logit_scale", "encoder.model"))
    assert path.stat().st_size < 200_000


def test_artifact_acts_like_the_checkpoint(exported, vlm_trained):
    from zoo.agents.checkpoint import load_agent
    from zoo.export import load_exported

    fmt, path = exported
    agent = load_agent(str(vlm_trained["ckpt"]))
    obs = torch.randn(16, *agent.obs_shape)
    expected = agent.act(TensorDict({agent.obs_key: obs}, [16]))["action"]
    policy = load_exported(path)
    assert policy.fmt == fmt and policy.spec["obs_key"] == "observation" and policy.spec["obs_shape"] == [25]
    torch.testing.assert_close(policy(obs), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(policy(obs[:1].numpy()), expected[:1], atol=1e-5, rtol=1e-5)  # batch 1, NumPy


@pytest.mark.parametrize(("bad", "message"), [
    (lambda x: x.double(), "must be float32, got float64"),
    (lambda x: x[:, :7], r"must have shape \[batch, 25\], got \[4, 7\]"),
    (lambda x: x[0], r"must have shape \[batch, 25\], got \[25\]"),
    (lambda x: x.index_fill(1, torch.tensor([3]), float("nan")), "contains NaN or inf"),
])
def test_malformed_input_gets_a_zoo_error_before_the_graph(exported, bad, message):
    from zoo.export import load_exported

    policy = load_exported(exported[1])
    with pytest.raises(ZooError, match=message):
        policy(bad(torch.randn(4, 25)))


def test_torchscript_checks_its_input_inside_the_file(vlm_trained):
    fmt, path = "torchscript", vlm_trained["root"] / "policy.pt"
    from zoo.export import export_policy

    module = torch.jit.load(str(export_policy(str(vlm_trained["ckpt"]), fmt, path)))
    assert module(torch.zeros(2, 25)).shape == (2, 2)
    for bad in (torch.zeros(2, 25, dtype=torch.float64), torch.zeros(2, 24), torch.full((2, 25), float("nan"))):
        with pytest.raises((RuntimeError, torch.jit.Error), match="zoo policy: observation (must|contains NaN)"):
            module(bad)


def test_pixel_policy_folder_exports_with_uint8_input(make_agent, tmp_path):
    """A CNN policy from a policy folder: the input is the uint8 BEV frame."""
    from zoo.export import export_policy, load_exported
    from zoo.hub.policies import save_policy_folder

    agent = make_agent("dqn-cnn")
    folder = save_policy_folder(agent, tmp_path / "dqn", "dqn-cnn.test", "tiny untrained DQN on BEV frames")
    policy = load_exported(export_policy(str(folder), "torchscript", tmp_path / "dqn.pt"))
    assert policy.spec["obs_key"] == "pixels" and policy.spec["obs_dtype"] == "uint8"
    frames = torch.randint(0, 256, (3, *agent.obs_shape), dtype=torch.uint8)
    expected = agent.act(TensorDict({"pixels": frames}, [3]))["action"]
    assert torch.equal(policy(frames), expected)
    with pytest.raises(ZooError, match="must be uint8, got float32"):
        policy(frames.float())


def test_cli_exports_and_refuses_bad_arguments(vlm_trained, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "--policy", str(vlm_trained["ckpt"]), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and "input observation float32 [batch, 25]" in capsys.readouterr().err
    assert main(["export", "--policy", str(tmp_path / "missing.ckpt"), "--format", "onnx",
                 "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--policy", str(vlm_trained["ckpt"]), "--format", "tflite", "--out", str(out)])
