"""Plumbing shared by every agent: environment, collector, replay buffer, logging.

Each algorithm file (``dqn.py``, ``sac.py`` …) subclasses :class:`OffPolicyAgent` or
:class:`OnPolicyAgent`, builds its networks and TorchRL loss, and implements :meth:`Agent.update`
— one gradient update on one batch — top to bottom. Everything else lives here.

The training budget is ``total_frames`` environment steps (the RL convention); Lightning's
``max_steps`` still caps optimizer steps if set. One Lightning "batch" is one gradient update.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

import lightning as L
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch.utils.data import DataLoader, IterableDataset
from torchrl.collectors import BaseCollector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import ExplorationType, set_exploration_type

from zoo import keys
from zoo.agents.collect import PolicyVersionStamp, build_collector, seed_of_worker
from zoo.agents.guards import check_finite_batch
from zoo.agents.networks import ENCODERS
from zoo.agents.state import (
    RESUME_KEY,
    AttributeState,
    ReplayBufferState,
    RewardState,
    Stateful,
    collect_state,
    restore_state,
    training_env_seed,
)
from zoo.envs.config import EnvConfig, RenderNeeds
from zoo.envs.make import build_env
from zoo.errors import ZooError
from zoo.evaluation.metrics import MS_TO_KMH
from zoo.evaluation.rollout import EVAL_SEED_OFFSET
from zoo.extras import require as require_extra
from zoo.registry import check_choice
from zoo.rewards.base import RewardModule, render_needs
from zoo.rewards.worker import RewardWorker

REWARD_BATCHING = ("step", "collector", "async")
PIPELINES = ("sync", "async")
COLLECTORS = ("local", "ray")


def require(name: str, value: Any, valid: bool, expected: str) -> None:
    """Refuse a degenerate setting up front, naming it and its valid range: a negative budget or a discount
    above 1 would otherwise run to exit 0 having trained nothing sensible.

    Example:
        >>> require("gamma", 0.99, 0 <= 0.99 <= 1, "in [0, 1]")
    """
    if not valid:
        raise ZooError(f"{name} must be {expected}, got {value!r}")


class EpisodeTracker:
    """Counts env steps, episodes and collisions; summarises episodes as they finish."""

    def __init__(self, window: int = 20) -> None:
        self.frames = 0
        self.episodes = 0
        self.collisions = 0
        self.recent_returns: deque[float] = deque(maxlen=window)
        self._running: torch.Tensor | None = None  # return so far of each env's current episode

    def finished_returns(self, nxt: TensorDictBase) -> torch.Tensor:
        """Returns of the episodes that end in this batch, summed from the learner's ``reward`` (right also
        when rewards are written after collection)."""
        reward = nxt.get(keys.REWARD).squeeze(-1)
        done = nxt.get(keys.DONE).squeeze(-1)
        reward, done = reward.reshape(-1, reward.shape[-1]).cpu(), done.reshape(-1, done.shape[-1]).cpu()
        if self._running is None or self._running.shape[0] != reward.shape[0]:
            self._running = torch.zeros(reward.shape[0])
        finished = []
        for t in range(reward.shape[1]):  # batches are [envs, time]
            self._running += reward[:, t]
            finished.append(self._running[done[:, t]].clone())
            self._running[done[:, t]] = 0
        return torch.cat(finished)

    def update(self, batch: TensorDictBase) -> dict[str, float]:
        """Account for one collected batch; return metrics of the episodes it finished (may be empty)."""
        self.frames += batch.numel()
        nxt = batch.get("next")
        metrics = {"train/speed_kmh": nxt.get(keys.SPEED).mean().item() * MS_TO_KMH,
                   "train/reward": nxt.get(keys.REWARD).mean().item()}
        if keys.REWARD_TERMS in nxt:
            for name, value in nxt.get(keys.REWARD_TERMS).items():
                metrics[f"reward_terms/{name}"] = value.float().mean().item()
        done = nxt.get(keys.DONE).squeeze(-1)
        returns = self.finished_returns(nxt)
        if done.any():
            crashed = nxt.get(keys.CRASHED)[done].squeeze(-1)
            self.episodes += int(done.sum())
            self.collisions += int(crashed.sum())
            self.recent_returns.extend(returns.tolist())
            metrics.update({
                "train/episode_return": returns.mean().item(),
                "train/episode_length": nxt.get(keys.STEP_COUNT)[done].float().mean().item(),
                "train/collision_rate": crashed.mean().item(),
                "train/route_progress": nxt.get(keys.ROUTE_PROGRESS)[done].mean().item(),
                "train/distance_m": nxt.get(keys.DISTANCE)[done].mean().item(),
            })
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Counters and recent returns (the returns of episodes under way are not kept: a resumed run starts
        new episodes)."""
        return {"frames": self.frames, "episodes": self.episodes, "collisions": self.collisions,
                "recent_returns": list(self.recent_returns)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frames, self.episodes, self.collisions = state["frames"], state["episodes"], state["collisions"]
        self.recent_returns.clear()
        self.recent_returns.extend(state["recent_returns"])
        self._running = None

    def progress(self) -> dict[str, float]:
        recent = sum(self.recent_returns) / len(self.recent_returns) if self.recent_returns else float("nan")
        return {"env_steps": float(self.frames), "episodes": float(self.episodes), "return": recent,
                "collisions": float(self.collisions)}


def _identity(batch: Any) -> Any:
    return batch


class _Stream(IterableDataset):
    """Lets Lightning iterate over an agent's generator of batches."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def __iter__(self) -> Iterator[TensorDictBase]:
        if not self.agent.work_left():  # resumed from the run's final checkpoint, nothing owed
            return iter(())
        return self.agent.batches()


class Agent(L.LightningModule):
    """Base LightningModule for an RL algorithm on a driving scenario.

    Args:
        env: the training environment (scenario, observation, number of parallel envs …).
        reward: a reward module; default highway-env's engineered reward.
        network: encoder name, ``"mlp"`` (kinematics ``observation``) or ``"cnn"`` (BEV ``pixels``).
        hidden_sizes: hidden layer sizes of the encoders and heads.
        total_frames: training budget in environment steps.
        frames_per_batch: environment steps collected between rounds of updates.
        gamma: discount factor.
        lr: learning rate.
        max_grad_norm: gradient-norm clip (``None``: no clipping).
        seed: seed of the training environments (evaluation uses disjoint seeds; data-parallel ranks and env
            workers get their own, see :func:`zoo.agents.state.training_env_seed`).
        reward_batching: ``"step"``: the reward scores each env step (a batch of ``num_envs`` frames);
            ``"collector"``: it scores each collected batch of ``frames_per_batch`` transitions in one pass
            (VLM-RL's synchronous scheme: collect 64 steps, score the 64 frames, then learn); ``"async"``
            (off-policy agents): a reward worker scores each collected batch out of band while the collector
            goes on (DriveVLM-RL's pipeline, :class:`zoo.rewards.worker.RewardWorker`).
        reward_queue: with ``"async"``, collected batches that may wait for their rewards (back-pressure beyond).
        collector_workers: env worker processes of the collector (TorchRL ``MultiSyncCollector``, or
            ``MultiAsyncCollector`` with ``pipeline: async``), each stepping ``env.num_envs`` envs with its own
            seeds and its own copy of a per-step reward.
        pipeline: ``"sync"``: collect a batch, then learn on it, in turn (the reference, and the easiest to debug);
            ``"async"`` (off-policy agents): the envs step in collector processes while the learner trains, with
            the learner's weights of the moment (shared memory); the policy lag of every transition is logged
            (``pipeline/policy_lag_updates``). Both make the same number of gradient updates for the same budget.
        collector: where the env workers run: ``"local"``, processes of this machine; ``"ray"``, ``collector_workers``
            Ray actors on a Ray cluster (TorchRL's ``RayCollector``; ``pip install drive-zoo[ray]``), the learner's
            weights pushed to them before each batch they collect (``pipeline`` says whether the learner waits for
            the batch of every worker or takes each as it comes).
        ray_address: with ``collector: ray``, the cluster (:func:`zoo.ray_runtime.connect`; a Ray instance
            this process already joined is used as it is).
    """

    #: action modes the algorithm supports; the first is used when the recipe leaves it open
    action_modes: tuple[str, ...] = ("continuous", "discrete")
    #: plain counters of the algorithm (not tensors) that a resumed run must get back
    resume_attributes: tuple[str, ...] = ()

    def __init__(
        self,
        env: EnvConfig | None = None,
        reward: RewardModule | None = None,
        network: str = "mlp",
        hidden_sizes: Sequence[int] = (256, 256),
        total_frames: int = 100_000,
        frames_per_batch: int = 64,
        gamma: float = 0.99,
        lr: float = 3e-4,
        max_grad_norm: float | None = 10.0,
        seed: int = 0,
        reward_batching: str = "step",
        collector_workers: int = 1,
        reward_queue: int = 4,
        pipeline: str = "sync",
        collector: str = "local",
        ray_address: str | None = None,
    ) -> None:
        super().__init__()
        require("total_frames", total_frames, total_frames >= 1, ">= 1 env step")
        require("frames_per_batch", frames_per_batch, frames_per_batch >= 1, ">= 1 env step")
        require("gamma", gamma, 0 <= gamma <= 1, "in [0, 1]")
        require("lr", lr, lr > 0, "> 0")
        require("max_grad_norm", max_grad_norm, max_grad_norm is None or max_grad_norm > 0, "> 0 or null")
        self.automatic_optimization = False  # each algorithm steps its optimizers itself, CleanRL style
        # Keep hyper-parameters plain data (checkpoints load with weights_only=True): components are
        # stored as recipe entries, also when the agent is built in Python rather than from a recipe,
        # in the form LightningCLI records, so both load the same way.
        self.save_hyperparameters(ignore=["reward"])
        hparams = dict(self.hparams)
        hparams["reward"] = reward.config() if reward is not None else None
        if isinstance(hparams.get("env"), EnvConfig):
            hparams["env"] = asdict(hparams["env"])
        hparams.setdefault("_class_path", f"{type(self).__module__}.{type(self).__name__}")
        hparams.setdefault("_instantiator", "lightning.pytorch.cli.instantiate_module")
        self.save_hyperparameters(hparams)  # also what the logger records
        env = env if isinstance(env, EnvConfig) else EnvConfig(**(env or {}))  # a dict: hyper-parameters read back
        if env.action is None:
            env = replace(env, action=self.action_modes[0])
        elif env.action not in self.action_modes:
            raise ZooError(f"{type(self).__name__} needs action mode {' or '.join(self.action_modes)}, "
                           f"but the env asks for {env.action!r}")
        if not 0 <= seed < EVAL_SEED_OFFSET:
            raise ZooError(f"seed must be in [0, {EVAL_SEED_OFFSET}) so that evaluation seeds stay held out, "
                           f"got {seed}")
        encoder_key = ENCODERS.get(network).in_key  # raises with the valid names
        # the reward's frames, windows and objects, and the frames a CNN policy reads
        self.env_config = env.rendering(render_needs(reward) | RenderNeeds(frames=encoder_key == keys.PIXELS))
        # The reward shapes the environment, it is not part of the policy: kept out of the module tree so
        # its (possibly large) backbone is neither in checkpoints nor moved by Lightning.
        object.__setattr__(self, "reward", reward)
        self.network = network
        self.hidden_sizes = tuple(hidden_sizes)
        self.total_frames = total_frames
        self.frames_per_batch = frames_per_batch
        self.gamma = gamma
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.seed = seed
        self.reward_batching = check_choice("reward_batching", reward_batching, REWARD_BATCHING)
        if collector_workers < 1:
            raise ZooError(f"collector_workers must be >= 1, got {collector_workers}")
        self.collector_workers = collector_workers
        if reward_batching == "async" and not isinstance(self, OffPolicyAgent):
            raise ZooError(f"reward_batching='async' needs an off-policy agent (a replay buffer); "
                           f"{type(self).__name__} learns from fresh rollouts: use 'step' or 'collector'")
        if reward_queue < 1:
            raise ZooError(f"reward_queue must be >= 1 batch, got {reward_queue}")
        self.reward_queue = reward_queue
        self.pipeline = check_choice("pipeline", pipeline, PIPELINES)
        if pipeline == "async" and not isinstance(self, OffPolicyAgent):
            raise ZooError(f"pipeline='async' needs an off-policy agent (a replay buffer); {type(self).__name__} "
                           f"learns from fresh rollouts of its current policy: use 'sync'")
        self.collector_backend = check_choice("collector", collector, COLLECTORS)
        if collector == "ray":
            require_extra("ray", "collector: ray")  # refused now, not after the first minutes of a run
        if ray_address is not None and collector != "ray":
            raise ZooError(f"ray_address needs collector: ray, got collector: {collector!r}")
        self.ray_address = ray_address
        self.reward_worker: RewardWorker | None = None
        self.tracker = EpisodeTracker()

        spec_env = build_env(replace(self.env_config, num_envs=1))
        self.obs_key = encoder_key
        self.obs_shape = tuple(spec_env.observation_spec[encoder_key].shape)
        self.action_spec = spec_env.full_action_spec[keys.ACTION]
        spec_env.close()

    # -- to implement per algorithm ---------------------------------------------------------------
    @property
    def policy(self) -> TensorDictModuleBase:
        """The deterministic policy used for evaluation and deployment."""
        raise NotImplementedError

    def exploration_policy(self) -> TensorDictModuleBase:
        """The policy the collector runs (stochastic / with exploration noise)."""
        return self.policy

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """One gradient update on ``batch``; returns the losses to log."""
        raise NotImplementedError

    def batches(self) -> Iterator[TensorDictBase]:
        """Yield training batches (collecting experience as needed)."""
        raise NotImplementedError

    # -- shared plumbing --------------------------------------------------------------------------
    def encoder(self) -> torch.nn.Module:
        """A fresh encoder for this agent's observation (one per network: no shared trunk)."""
        return ENCODERS.get(self.network)(self.obs_shape, self.hidden_sizes)

    def training_reward(self) -> RewardModule | None:
        return self.reward.copy_for_env() if self.reward is not None else None

    def make_collector(self, init_random_frames: int = 0, stamp: PolicyVersionStamp | None = None,
                       **kwargs: Any) -> BaseCollector:
        """The collector for the rest of the budget: after a resume it collects only the env steps still
        due (and the random-action steps still due), with envs seeded past the ones already used. ``stamp``
        ends the exploration policy, writing the learner's update count into each step."""
        reward = self.training_reward()
        on_batches = self.reward_batching != "step"  # "collector" scores each batch, "async" leaves it to a worker
        done = self.tracker.frames
        rank = self.trainer.global_rank if self._trainer is not None else 0
        policy = self.exploration_policy() if stamp is None else TensorDictSequential(self.exploration_policy(), stamp)
        seed = training_env_seed(self.seed, rank, done)
        if self.logger is not None:  # where each worker's envs start, for the record (they shift on resume)
            self.logger.log_metrics({f"collector/worker_{w}_first_seed": float(seed_of_worker(self.env_config, seed, w))
                                     for w in range(self.collector_workers)}, step=done)
        return build_collector(
            self.env_config, policy, seed=seed,
            frames_per_batch=self.frames_per_batch, total_frames=max(1, self.total_frames - done),
            workers=self.collector_workers, step_reward=None if on_batches else reward,
            batch_reward=reward if self.reward_batching == "collector" else None, device=self.device,
            init_random_frames=max(0, init_random_frames - done), asynchronous=self.pipeline == "async",
            backend=self.collector_backend, address=self.ray_address, **kwargs)

    def resumable(self) -> dict[str, Stateful]:
        """The parts of the run's state that a checkpoint carries beside weights and optimizers (see
        :mod:`zoo.agents.state`); subclasses and reward workers add theirs."""
        parts: dict[str, Stateful] = {"tracker": self.tracker}
        if self.resume_attributes:
            parts["attributes"] = AttributeState(self, self.resume_attributes)
        if self.reward is not None:
            parts["reward"] = RewardState(self.reward)
        return parts

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RESUME_KEY] = collect_state(self.resumable())

    def collected(self, batch: TensorDictBase) -> TensorDictBase:
        """Book-keep a freshly collected batch: counters, episode metrics to the logger."""
        metrics = self.tracker.update(batch)
        if self.reward is not None:
            metrics.update({f"reward/{k}": v for k, v in self.reward.stats().items()})
        if self.reward_worker is not None:
            metrics.update({f"reward_worker/{k}": v for k, v in self.reward_worker.stats().items()})
        if self.logger is not None:
            self.logger.log_metrics(metrics, step=self.tracker.frames)
        return batch

    def optimizer_step(self, optimizers: Any, loss: torch.Tensor) -> None:
        """Backward, optional gradient clipping, step of one or several optimizers (manual optimization)."""
        optimizers = optimizers if isinstance(optimizers, (list, tuple)) else [optimizers]
        for optimizer in optimizers:
            optimizer.zero_grad()
        self.manual_backward(loss)
        for optimizer in optimizers:
            if self.max_grad_norm is not None:
                self.clip_gradients(optimizer, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
            optimizer.step()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self), batch_size=None, collate_fn=_identity)

    def training_step(self, batch: TensorDictBase, batch_idx: int) -> None:
        check_finite_batch(batch, update=batch_idx, env_steps=self.tracker.frames)
        losses = self.update(batch)
        # Logging costs more than a small update: log as often as the trainer writes (log_every_n_steps).
        if batch_idx % self.trainer.log_every_n_steps == 0:
            self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, on_step=True, prog_bar=False)
            self.log_dict(self.tracker.progress(), on_step=True, prog_bar=True, logger=False)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint whose weights do not fit this agent (TorchRL's parameter containers would
        otherwise take tensors of another shape without a word); when a fit resumes, restore the resume state."""
        own, theirs = self.state_dict(), checkpoint.get("state_dict", {})
        problems = [f"missing {k}" for k in sorted(own.keys() - theirs.keys())]
        problems += [f"unexpected {k}" for k in sorted(theirs.keys() - own.keys())]
        problems += [f"{k}: checkpoint {tuple(theirs[k].shape)} vs recipe {tuple(own[k].shape)}"
                     for k in sorted(own.keys() & theirs.keys())
                     if hasattr(theirs[k], "shape") and tuple(theirs[k].shape) != tuple(own[k].shape)]
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ZooError(f"the checkpoint does not match the agent the recipe describes: "
                           f"{'; '.join(problems[:3])}{more}")
        if RESUME_KEY in checkpoint and self._trainer is not None:  # a resumed fit, not load_from_checkpoint
            restore_state(self.resumable(), checkpoint[RESUME_KEY])
            self._allow_an_epoch_for_the_budget_left(checkpoint)

    def work_left(self) -> bool:
        """Whether the run has env steps (or, off-policy, gradient updates) still to do."""
        return self.tracker.frames < self.total_frames

    def _allow_an_epoch_for_the_budget_left(self, checkpoint: dict[str, Any]) -> None:
        """The budget is ``total_frames`` env steps, streamed in one Lightning epoch: a run resumed from its final
        checkpoint with a larger ``total_frames`` would stop at once (``max_epochs`` reached), so it gets one more."""
        if not self.work_left():
            return
        loop = self.trainer.fit_loop
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
        epochs_done = progress.get("processed", 0)
        if loop.max_epochs is not None and 0 <= loop.max_epochs <= epochs_done:
            loop.max_epochs = epochs_done + 1

    def on_train_start(self) -> None:
        """Learning rates come from the agent's arguments: the optimizer states of a resumed checkpoint carry
        the rates it was trained with, and would silently replace a changed ``lr``."""
        configured = self.configure_optimizers()
        configured = configured if isinstance(configured, (list, tuple)) else [configured]
        for optimizer, fresh in zip(self.trainer.optimizers, configured):
            for group, fresh_group in zip(optimizer.param_groups, fresh.param_groups):
                group["lr"] = fresh_group["lr"]

    @torch.no_grad()
    def act(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Deterministic action for evaluation or deployment."""
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return self.policy(tensordict)


class OffPolicyAgent(Agent):
    """Agents that learn from a replay buffer (DQN, SAC, TD3).

    Args:
        buffer_size: replay buffer capacity in transitions (BEV frames are stored only if the policy reads them).
        batch_size: transitions per gradient update.
        learning_starts: environment steps of random actions before learning begins.
        updates_per_batch: gradient updates per collected batch (``frames_per_batch`` steps) once
            ``learning_starts`` steps are stored: each stored batch owes them, and the learner pays them before it
            takes the next batch, so the update-to-data ratio is exact whatever the pipeline and reward batching.
        **kwargs: see :class:`Agent`.
    """

    def __init__(self, buffer_size: int = 100_000, batch_size: int = 256, learning_starts: int = 1_000,
                 updates_per_batch: int = 64, **kwargs: Any) -> None:
        require("buffer_size", buffer_size, buffer_size >= 1, ">= 1 transition")
        require("batch_size", batch_size, batch_size >= 1, ">= 1 transition")
        require("learning_starts", learning_starts, learning_starts >= 0, ">= 0 env steps")
        require("updates_per_batch", updates_per_batch, updates_per_batch >= 1, ">= 1")
        super().__init__(**kwargs)
        # Frames (and objects) rendered only for the reward stay out of the buffer (55 kB per transition at 96 px).
        frames = [keys.PIXELS_WINDOW, keys.OBJECTS] + ([] if self.obs_key == keys.PIXELS else [keys.PIXELS])
        self.stored_exclusions = [*frames, *(("next", k) for k in frames), keys.POLICY_VERSION]
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.learning_starts = learning_starts
        self.updates_per_batch = updates_per_batch
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(buffer_size), batch_size=batch_size)
        self.updates_owed = 0  # gradient updates the stored batches pay for and have not had yet
        self.learner_updates = 0  # batches sampled for updates in this fit: the policy version lags are counted in
        self.trained_updates = 0  # updates made in this fit (Lightning fetches one batch ahead of training)

    def resumable(self) -> dict[str, Stateful]:
        return {**super().resumable(), "buffer": ReplayBufferState(self.buffer),
                "updates": AttributeState(self, ("updates_owed",))}

    def after_collect(self, batch: TensorDictBase) -> None:
        """Hook after each collected batch (exploration annealing …)."""

    def store(self, batch: TensorDictBase) -> None:
        """Account for a batch with its rewards, add it to the replay buffer, and owe its gradient updates."""
        self.collected(batch)
        self.buffer.extend(batch.reshape(-1).exclude(*self.stored_exclusions).to("cpu"))
        self.after_collect(batch)
        if self.tracker.frames >= self.learning_starts:
            self.updates_owed += self.updates_per_batch

    def collected(self, batch: TensorDictBase) -> TensorDictBase:
        """Book-keep a batch as it is stored; with the async pipeline, also its policy lag: the learner's updates
        between the weights that chose each action and this moment."""
        batch = super().collected(batch)
        if keys.POLICY_VERSION in batch.keys() and self.logger is not None:
            lag = (self.learner_updates - batch.get(keys.POLICY_VERSION)).float()
            self.logger.log_metrics({"pipeline/policy_lag_updates": lag.mean().item(),
                                     "pipeline/max_policy_lag_updates": lag.max().item()}, step=self.tracker.frames)
        return batch

    def pay_updates(self, stamp: PolicyVersionStamp | None) -> Iterator[TensorDictBase]:
        """A sampled batch for each gradient update owed and not yet sampled. The debt shrinks when the update is
        made (:meth:`training_step`), so a checkpoint carries exactly the updates still due, the batch Lightning
        has fetched ahead included."""
        while self.updates_owed > self.learner_updates - self.trained_updates:
            self.learner_updates += 1
            if stamp is not None:
                stamp.set(self.learner_updates)
            yield self.buffer.sample().to(self.device)

    def work_left(self) -> bool:
        return super().work_left() or self.updates_owed > 0

    def training_step(self, batch: TensorDictBase, batch_idx: int) -> None:
        super().training_step(batch, batch_idx)
        self.updates_owed -= 1
        self.trained_updates += 1

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """With an async reward worker, first wait for the batches it holds and store them, so the checkpoint's
        buffer and counters hold every transition collected so far (nothing is left in a queue to lose)."""
        if self.reward_worker is not None:
            for labelled in self.reward_worker.flush(version=self.learner_updates):
                self.store(labelled)
        super().on_save_checkpoint(checkpoint)

    def batches(self) -> Iterator[TensorDictBase]:
        # whole collector batches of random actions (TorchRL rounds up anyway, with a warning)
        random_frames = -(-self.learning_starts // self.frames_per_batch) * self.frames_per_batch
        self.learner_updates = self.trained_updates = 0
        if self.tracker.frames >= self.total_frames:  # resumed from the final checkpoint with updates still owed
            yield from self.pay_updates(None)
            return
        stamp = PolicyVersionStamp() if self.pipeline == "async" else None
        collector = self.make_collector(init_random_frames=random_frames, stamp=stamp)
        if self.reward_batching == "async" and self.reward is not None:
            self.reward_worker = RewardWorker(self.training_reward(), max_pending=self.reward_queue)
        worker = self.reward_worker
        try:
            yield from self.pay_updates(stamp)  # those a resumed checkpoint still owed
            for batch in collector:  # with pipeline "async", the workers collect the next batches meanwhile
                if worker is None:
                    self.store(batch)
                else:  # the learner only ever stores (and samples) labelled transitions
                    worker.submit(batch, version=self.learner_updates)
                    for labelled in worker.ready(version=self.learner_updates):
                        self.store(labelled)
                yield from self.pay_updates(stamp)
            if worker is not None:  # the last batches: every collected transition ends in the buffer
                for labelled in worker.flush(version=self.learner_updates):
                    self.store(labelled)
                yield from self.pay_updates(stamp)
        finally:
            if worker is not None:
                worker.close()
                self.reward_worker = None
            collector.shutdown()


class OnPolicyAgent(Agent):
    """Agents that learn from fresh rollouts (PPO).

    Args:
        epochs: passes over each rollout.
        minibatch_size: transitions per gradient update.
        **kwargs: see :class:`Agent`.
    """

    def __init__(self, epochs: int = 10, minibatch_size: int = 64, **kwargs: Any) -> None:
        require("epochs", epochs, epochs >= 1, ">= 1")
        require("minibatch_size", minibatch_size, minibatch_size >= 1, ">= 1 transition")
        super().__init__(**kwargs)
        self.epochs = epochs
        self.minibatch_size = minibatch_size

    def prepare(self, rollout: TensorDictBase) -> TensorDictBase:
        """Per-rollout computation before the epochs (advantages …)."""
        return rollout

    def batches(self) -> Iterator[TensorDictBase]:
        collector = self.make_collector()
        try:
            for rollout in collector:
                self.collected(rollout)
                with torch.no_grad():
                    flat = self.prepare(rollout.to(self.device)).reshape(-1)
                for _ in range(self.epochs):
                    for idx in torch.randperm(flat.numel(), device=flat.device).split(self.minibatch_size):
                        yield flat[idx]
        finally:
            collector.shutdown()
