"""Agents: one real update per algorithm, target networks, exploration vs deterministic acts, checkpoints."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from conftest import AGENT_CASES
from tensordict import TensorDict
from torchrl.envs import ExplorationType, set_exploration_type

import zoo
from zoo import keys
from zoo.agents import SAC
from zoo.envs import EnvConfig
from zoo.errors import ZooError
from zoo.evaluation import EVAL_SEED_OFFSET

#: the losses each algorithm reports from one update
LOSSES = {
    "DQN": ("loss_q",),
    "SAC": ("loss_qvalue", "loss_actor", "loss_alpha"),
    "TD3": ("loss_qvalue", "loss_actor"),
    "PPO": ("loss_objective", "loss_critic", "loss_entropy"),
}


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters, the TorchRL loss's own copies (critics, α) included."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _observation(agent, seed: int = 0) -> TensorDict:
    """A reset state of the agent's own environment (kinematics and/or frames as its network needs)."""
    env = agent.env_config.make(num_envs=1, seed=seed)
    try:
        return env.reset()
    finally:
        env.close()


def _targets(agent) -> dict[str, torch.Tensor]:
    """Online and target parameters of the TorchRL loss, flattened (``value``, ``qvalue``, ``actor`` …)."""
    out = {}
    for name in ("value", "qvalue", "actor"):
        for prefix in ("", "target_"):
            params = getattr(agent.loss, f"{prefix}{name}_network_params", None)
            if params is not None:
                flat = [p.detach().reshape(-1) for p in params.values(True, True)]
                out[f"{prefix}{name}"] = torch.cat(flat).clone()
    return out


# -- one update -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(AGENT_CASES))
def test_one_update_changes_parameters_and_gives_finite_losses(case, make_agent, fit_updates):
    agent = make_agent(case)
    before = _params(agent)
    trainer = fit_updates(agent, 1)
    after = _params(agent)
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed, "no parameter moved"
    if case != "td3":  # TD3's first update is critic-only (delayed actor, tested below)
        assert any(name.startswith(("actor.", "q_network.")) for name in changed), "the policy did not move"
    assert agent.tracker.frames >= agent.frames_per_batch  # the batch came from a real rollout
    for loss in LOSSES[type(agent).__name__]:
        value = trainer.callback_metrics[f"train/{loss}"]
        assert math.isfinite(value.item()), f"{loss} = {value}"


def test_cnn_agent_reads_frames():
    from zoo.agents import DQN
    from zoo.envs import EnvConfig

    agent = DQN(env=EnvConfig("highway-fast", bev_size=64), network="cnn", hidden_sizes=(32,),
                total_frames=64)
    assert agent.obs_key == keys.PIXELS
    assert agent.obs_shape == (3, 64, 64)
    assert agent.env_config.obs == "both"  # frames added for the CNN, kinematics kept for logging


# -- target networks ------------------------------------------------------------------------------
def test_dqn_target_stays_put_between_copies(make_agent, fit_updates):
    agent = make_agent("dqn", target_update_interval=2)
    start = _targets(agent)
    assert torch.equal(start["value"], start["target_value"])
    fit_updates(agent, 1)
    after = _targets(agent)
    assert not torch.equal(after["value"], start["value"])
    assert torch.equal(after["target_value"], start["target_value"]), "target moved before the interval"


@pytest.mark.parametrize("interval", [1, 2])
def test_dqn_target_is_copied_after_target_update_interval_updates(make_agent, fit_updates, interval):
    agent = make_agent("dqn", target_update_interval=interval)
    fit_updates(agent, interval)
    after = _targets(agent)
    assert torch.equal(after["target_value"], after["value"]), "target not copied at the interval"


def test_sac_target_critics_track_the_online_critics_softly(make_agent, fit_updates):
    tau = 0.25
    agent = make_agent("sac", tau=tau)
    start = _targets(agent)
    assert torch.equal(start["qvalue"], start["target_qvalue"])
    fit_updates(agent, 1)
    after = _targets(agent)
    assert not torch.equal(after["qvalue"], start["qvalue"])
    # Polyak averaging: target <- (1 - tau) * target + tau * online
    expected = (1 - tau) * start["target_qvalue"] + tau * after["qvalue"]
    torch.testing.assert_close(after["target_qvalue"], expected)
    assert not torch.equal(after["target_qvalue"], after["qvalue"])


def test_td3_updates_actor_and_targets_only_every_policy_delay(make_agent, fit_updates):
    tau = 0.25
    agent = make_agent("td3", tau=tau, policy_delay=2)
    start = _targets(agent)
    fit_updates(agent, 1)  # a critic-only update
    mid = _targets(agent)
    assert not torch.equal(mid["qvalue"], start["qvalue"])
    assert torch.equal(mid["actor"], start["actor"])
    assert torch.equal(mid["target_qvalue"], start["target_qvalue"])
    assert torch.equal(mid["target_actor"], start["target_actor"])

    agent = make_agent("td3", tau=tau, policy_delay=1)
    start = _targets(agent)
    fit_updates(agent, 1)
    after = _targets(agent)
    assert not torch.equal(after["actor"], start["actor"])
    for name in ("qvalue", "actor"):
        expected = (1 - tau) * start[f"target_{name}"] + tau * after[name]
        torch.testing.assert_close(after[f"target_{name}"], expected)


# -- acting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["dqn", "sac", "sac-discrete", "td3", "ppo-continuous", "ppo-discrete"])
def test_act_is_deterministic_while_exploration_varies(case, make_agent):
    agent = make_agent(case)
    obs = _observation(agent)
    first = agent.act(obs.clone())[keys.ACTION]
    assert torch.equal(agent.act(obs.clone())[keys.ACTION], first)
    assert agent.action_spec.is_in(first)

    torch.manual_seed(0)
    policy = agent.exploration_policy()
    if case.startswith("ppo"):
        policy = agent.actor  # PPO explores by sampling its stochastic actor
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        explored = torch.stack([policy(obs.clone())[keys.ACTION] for _ in range(10)])
    assert all(agent.action_spec.is_in(a) for a in explored)
    assert len({tuple(a.reshape(-1).tolist()) for a in explored}) > 1, "exploration gave one action only"


# -- checkpoints ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(AGENT_CASES))
def test_checkpoint_round_trip_gives_identical_actions(case, make_agent, fit_updates, tmp_path):
    agent = make_agent(case)
    trainer = fit_updates(agent, 1)
    path = tmp_path / "agent.ckpt"
    trainer.save_checkpoint(path)

    loaded = zoo.load_agent(path)
    assert type(loaded) is type(agent)
    assert loaded.env_config == agent.env_config
    for name, tensor in agent.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    for seed in (0, 1):
        obs = _observation(agent, seed)
        assert torch.equal(loaded.act(obs.clone())[keys.ACTION], agent.act(obs.clone())[keys.ACTION])


def test_checkpoint_records_the_reward_module_without_building_it(make_agent, fit_updates, tmp_path):
    """Acting needs no reward, and a checkpoint is data: its reward entry is kept as the record it is."""
    from zoo.rewards import SparseCollisionReward

    agent = make_agent("dqn", reward=SparseCollisionReward(penalty=-2.0))
    trainer = fit_updates(agent, 1)
    trainer.save_checkpoint(tmp_path / "agent.ckpt")
    loaded = zoo.load_agent(tmp_path / "agent.ckpt")
    assert loaded.reward is None
    assert loaded.hparams["reward"] == agent.reward.config()
    assert loaded.hparams["reward"]["init_args"]["penalty"] == -2.0


@pytest.fixture
def dqn_checkpoint(make_agent, fit_updates, tmp_path):
    trainer = fit_updates(make_agent("dqn"), 1)
    path = tmp_path / "dqn.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.mark.parametrize("edit", [
    pytest.param({"hidden_sizes": [16]}, id="other-sizes"),
    pytest.param({"_class_path": "zoo.agents.PPO"}, id="other-algorithm"),
])
def test_checkpoint_into_a_mismatching_agent_is_a_zoo_error(dqn_checkpoint, tmp_path, edit):
    checkpoint = torch.load(dqn_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"].update(edit)
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    with pytest.raises(ZooError, match="edited.ckpt"):
        zoo.load_agent(tmp_path / "edited.ckpt")


def test_checkpoint_with_other_sizes_names_the_mismatch_briefly(dqn_checkpoint, tmp_path):
    checkpoint = torch.load(dqn_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["hidden_sizes"] = [16]
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    with pytest.raises(ZooError, match="does not match") as err:
        zoo.load_agent(tmp_path / "edited.ckpt")
    assert len(str(err.value).splitlines()) <= 5


def test_checkpoint_naming_an_unknown_agent_is_a_zoo_error(dqn_checkpoint, tmp_path):
    checkpoint = torch.load(dqn_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "os.system"
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    with pytest.raises(ZooError, match="'os.system'"):
        zoo.load_agent(tmp_path / "edited.ckpt")


def test_truncated_checkpoint_is_a_zoo_error(dqn_checkpoint, tmp_path):
    data = dqn_checkpoint.read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ZooError, match="cannot read checkpoint"):
        zoo.load_agent(tmp_path / "truncated.ckpt")


def test_pickled_code_in_a_checkpoint_is_refused(tmp_path):
    torch.save({"hyper_parameters": {"_class_path": "zoo.agents.DQN"}, "payload": ZooError("x")},
               tmp_path / "pickle.ckpt")
    with pytest.raises(ZooError, match="holds pickled objects .*allow_pickle=True"):
        zoo.load_agent(tmp_path / "pickle.ckpt")


def test_missing_checkpoint_is_a_zoo_error(tmp_path):
    with pytest.raises(ZooError, match="'nothing.ckpt' not found"):
        zoo.load_agent("nothing.ckpt")


# -- bad arguments --------------------------------------------------------------------------------
def test_agent_refuses_an_action_mode_it_cannot_use(make_agent):
    with pytest.raises(ZooError, match="DQN needs action mode discrete"):
        make_agent("dqn", env={"scenario": "highway-fast", "action": "continuous"})
    with pytest.raises(ZooError, match="TD3 needs action mode continuous"):
        make_agent("td3", env={"scenario": "merge", "action": "discrete"})


def test_training_seed_must_stay_below_the_evaluation_seeds(make_agent):
    with pytest.raises(ZooError, match=str(EVAL_SEED_OFFSET)):
        make_agent("dqn", seed=EVAL_SEED_OFFSET)


def test_unknown_network_is_a_zoo_error(make_agent):
    with pytest.raises(ZooError, match=r"unknown network 'rnn'.*cnn, mlp"):
        make_agent("dqn", network="rnn")


def test_every_registered_agent_has_a_case():
    assert {name for name, _ in AGENT_CASES.values()} == set(zoo.list_agents())


def test_tracked_episode_returns_equal_torchrl_reward_sum():
    """The tracker sums the learner's reward per env across batches; it must agree with TorchRL's RewardSum."""
    from torchrl.collectors import Collector

    from zoo.agents.base import EpisodeTracker

    env = zoo.make_env("highway-fast", num_envs=2, parallel=False, seed=0)
    collector = Collector(env, None, frames_per_batch=14, total_frames=84)  # random actions
    tracker, ours, torchrl = EpisodeTracker(), [], []
    for batch in collector:  # [envs, time]; batches cut episodes in the middle
        ours += tracker.finished_returns(batch.get("next")).tolist()
        done = batch.get(("next", "done")).squeeze(-1)
        torchrl += batch.get(("next", "episode_reward"))[done].squeeze(-1).tolist()
    collector.shutdown()
    assert torchrl and sorted(ours) == pytest.approx(sorted(torchrl))


def test_collector_reward_batching_scores_whole_batches(tmp_path):
    """reward_batching="collector": the reward model sees frames_per_batch frames at once (VLM-RL's scheme)."""
    from zoo.hub.random_models import build_random_dual_encoder
    from zoo.rewards import CLGReward, HierarchicalReward

    reward = HierarchicalReward(CLGReward(str(build_random_dual_encoder(tmp_path / "clip")), device="cpu",
                                          cache_size=0))
    sizes = []
    embed = reward.semantic.encoder.embed_images
    reward.semantic.encoder.embed_images = lambda frames: sizes.append(len(frames)) or embed(frames)
    agent = SAC(env=EnvConfig("highway-fast", action="continuous"), reward=reward, reward_batching="collector",
                total_frames=32, frames_per_batch=16, learning_starts=16, updates_per_batch=1, batch_size=8,
                hidden_sizes=(32,))
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(agent)
    assert sizes == [16, 16]
    assert agent.tracker.frames == 32
