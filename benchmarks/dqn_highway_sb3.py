"""Benchmark: the zoo's DQN vs stable-baselines3 DQN on highway-fast (engineered reward).

Trains, in one run and on the same machine,

* ``zoo-fpb1``  — ``zoo.agents.DQN`` with ``frames_per_batch=1, updates_per_batch=1`` (SB3's
  ``train_freq=1, gradient_steps=1``);
* ``zoo-fpb16`` — the same with ``frames_per_batch=16, updates_per_batch=16`` (same update-to-data ratio);
* ``sb3``       — stable-baselines3 ``DQN`` with highway-env's reference hyper-parameters,

each for ``--steps`` environment steps, then evaluates every model on the same ``--eval-episodes``
held-out episodes (seeds ``1_000_000 + i``) through :func:`zoo.evaluate`, so the episodes and the
metric code are identical for all three. SB3 trains on the zoo's own gymnasium layer
(:class:`zoo.envs.DrivingEnv`, reading ``obs["observation"]``), i.e. the exact flattened kinematics
vector the zoo agent sees; the script checks that this equals plain ``highway-fast-v0`` step by step.

It also measures pipeline efficiency: env steps/s of bare random-action stepping on the same TorchRL
env the zoo trains on (and of the raw gymnasium env), next to the training loops' env steps/s.

Usage::

    python benchmarks/dqn_highway_sb3.py                         # full: 20k steps, 50 eval episodes
    python benchmarks/dqn_highway_sb3.py --quick --out /tmp/smoke.json   # tiny sizes (a test runs it)

Not a test: it takes ~30 min on 2 CPU cores. Results are written (and rewritten after every stage, so a
killed run keeps what it finished) to ``--out``.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BenchmarkParser,
    SB3Evaluatee,
    fmt,
    git_state,
    load_average,
    machine,
    print_rows,
    summary_dict,
    versions,
    write_json,
)

# highway-env maintainer's SB3 DQN settings (scripts/sb3_highway_dqn.py), shared by every learner here.
HPARAMS = {
    "net_arch": [256, 256],
    "learning_rate": 5e-4,
    "buffer_size": 15_000,
    "learning_starts": 200,
    "batch_size": 32,
    "gamma": 0.8,
    "train_freq": 1,
    "gradient_steps": 1,
    "target_update_interval": 50,
    "exploration_fraction": 0.7,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
    "tau": 1.0,
    "max_grad_norm": 10.0,  # SB3's default, also the zoo's default
}
REFERENCE = {"source": "highway-env maintainer, SB3 DQN on highway-fast-v0 at 20k steps",
             "return": 19.7, "return_max": 30, "length": 25.2}
CONFIGS = ("zoo-fpb1", "zoo-fpb16", "sb3")


# -- the zoo's gymnasium layer as SB3 sees it ------------------------------------------------------
def sb3_env():
    """``DrivingEnv`` on highway-fast, exposing only the flattened kinematics vector the zoo agent sees."""
    import gymnasium as gym

    from zoo.envs import DrivingEnv, EnvConfig

    class VectorObservation(gym.ObservationWrapper):
        def __init__(self, env: DrivingEnv) -> None:
            super().__init__(env)
            self.observation_space = env.observation_space["observation"]

        def observation(self, observation):
            return observation["observation"]

    return VectorObservation(DrivingEnv(EnvConfig("highway-fast", obs="kinematics", action="discrete")))


def check_observation_parity(steps: int = 60) -> dict[str, Any]:
    """Step the SB3 training env and plain ``highway-fast-v0`` side by side: same obs, reward, done?"""
    import gymnasium as gym
    import highway_env  # noqa: F401

    ours, plain = sb3_env(), gym.make("highway-fast-v0")
    rng = np.random.default_rng(0)
    identical, checked = True, 0
    for seed in (0, 1, 1_000_000):
        a, _ = ours.reset(seed=seed)
        b, _ = plain.reset(seed=seed)
        identical &= bool(np.array_equal(a, np.asarray(b, np.float32).reshape(-1)))
        for _ in range(steps):
            action = int(rng.integers(5))
            a, ra, ta, tra, _ = ours.step(action)
            b, rb, tb, trb, _ = plain.step(action)
            checked += 1
            identical &= bool(np.array_equal(a, np.asarray(b, np.float32).reshape(-1))) and ra == rb \
                and ta == tb and tra == trb
            if ta or tra:
                break
    ours.close()
    plain.close()
    return {"identical": identical, "steps_compared": checked, "obs_shape": list(ours.observation_space.shape)}


# -- pipeline efficiency ---------------------------------------------------------------------------
def bare_env_throughput(steps: int, seed: int) -> dict[str, float]:
    """Env steps/s with random actions: the TorchRL env the zoo trains on, and the gymnasium layers under it."""
    import gymnasium as gym
    import highway_env  # noqa: F401
    import torch

    from zoo.envs import EnvConfig, build_env
    from zoo.rewards import EngineeredReward

    out: dict[str, float] = {}

    # 1. The zoo's training env (TransformedEnv(GymWrapper(DrivingEnv)) + reward, StepCounter, RewardSum),
    #    stepped with random actions and auto-reset, exactly as agent.make_train_env() builds it.
    env = build_env(EnvConfig("highway-fast", action="discrete", obs="kinematics"), seed=seed,
                    reward=EngineeredReward())
    env.rollout(5, break_when_any_done=False)  # warm-up
    start = time.perf_counter()
    with torch.no_grad():
        rollout = env.rollout(steps, break_when_any_done=False)
    out["torchrl_env_random_steps_per_s"] = steps / (time.perf_counter() - start)
    out["random_episodes"] = int(rollout["next", "done"].sum())  # random driving crashes early: many resets
    env.close()

    # 2. The gymnasium layers: the zoo's DrivingEnv, and plain highway-fast-v0.
    for name, env in (("driving_env_random_steps_per_s", sb3_env()),
                      ("highway_fast_v0_random_steps_per_s", gym.make("highway-fast-v0"))):
        env.reset(seed=seed)
        env.action_space.seed(seed)
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        out[name] = steps / (time.perf_counter() - start)
        env.close()
    out["steps"] = steps
    return out


# -- learners --------------------------------------------------------------------------------------
def train_zoo(steps: int, seed: int, frames_per_batch: int, updates_per_batch: int):
    import lightning as L

    from zoo.agents import DQN
    from zoo.envs import EnvConfig
    from zoo.rewards import EngineeredReward

    L.seed_everything(seed, verbose=False)
    # Hard target copies every `target_update_interval` updates: older zoo versions spell it tau=1.0.
    extra = {"target_update_tau": HPARAMS["tau"]} if "target_update_tau" in inspect.signature(DQN).parameters else {}
    agent = DQN(
        env=EnvConfig("highway-fast", action="discrete", obs="kinematics"),
        reward=EngineeredReward(),
        network="mlp",
        hidden_sizes=tuple(HPARAMS["net_arch"]),
        total_frames=steps,
        frames_per_batch=frames_per_batch,
        updates_per_batch=updates_per_batch,
        learning_starts=HPARAMS["learning_starts"],
        buffer_size=HPARAMS["buffer_size"],
        batch_size=HPARAMS["batch_size"],
        lr=HPARAMS["learning_rate"],
        gamma=HPARAMS["gamma"],
        target_update_interval=HPARAMS["target_update_interval"],
        exploration_fraction=HPARAMS["exploration_fraction"],
        eps_init=HPARAMS["exploration_initial_eps"],
        eps_end=HPARAMS["exploration_final_eps"],
        max_grad_norm=HPARAMS["max_grad_norm"],
        double_dqn=False,
        seed=seed,
        **extra,
    )
    updates = 0
    update = agent.update

    def counted_update(batch):
        nonlocal updates
        updates += 1
        return update(batch)

    agent.update = counted_update  # count gradient updates whatever the DQN version keeps
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(agent)
    wall = time.perf_counter() - start
    recent = list(agent.tracker.recent_returns)
    train = {
        "env_steps": agent.tracker.frames,
        "gradient_updates": updates,
        "wall_s": wall,
        "env_steps_per_s": agent.tracker.frames / wall,
        "train_episodes": agent.tracker.episodes,
        "train_collisions": agent.tracker.collisions,
        "train_last20_return": float(np.mean(recent)) if recent else None,
        "final_epsilon": float(agent.greedy.eps),
    }
    return agent, train


def train_sb3(steps: int, seed: int):
    from zoo.extras import require

    SB3DQN = require("stable_baselines3", "the SB3 reference run").DQN
    from zoo.envs import EnvConfig

    env = sb3_env()
    h = HPARAMS
    model = SB3DQN(
        "MlpPolicy", env, policy_kwargs={"net_arch": list(h["net_arch"])}, learning_rate=h["learning_rate"],
        buffer_size=h["buffer_size"], learning_starts=h["learning_starts"], batch_size=h["batch_size"],
        gamma=h["gamma"], train_freq=h["train_freq"], gradient_steps=h["gradient_steps"],
        target_update_interval=h["target_update_interval"], exploration_fraction=h["exploration_fraction"],
        exploration_initial_eps=h["exploration_initial_eps"], exploration_final_eps=h["exploration_final_eps"],
        tau=h["tau"], max_grad_norm=h["max_grad_norm"], verbose=0, seed=seed, device="cpu",
    )
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    episodes = list(model.ep_info_buffer)[-20:]
    train = {
        "env_steps": int(model.num_timesteps),
        "gradient_updates": int(model._n_updates),
        "wall_s": wall,
        "env_steps_per_s": model.num_timesteps / wall,
        "train_last20_return": float(np.mean([e["r"] for e in episodes])) if episodes else None,
        "final_epsilon": float(model.exploration_rate),
    }
    env.close()
    # reward None: zoo.evaluate then scores with the default EngineeredReward, as for the zoo agent
    return SB3Evaluatee(model, EnvConfig("highway-fast", action="discrete", obs="kinematics")), train


# -- main ------------------------------------------------------------------------------------------
def print_table(results: dict[str, Any]) -> None:
    rows = [("learner", "seed", "eval return", "CR", "AS km/h", "length", "train steps/s", "wall s")]
    for run in results["runs"]:
        s = run.get("eval")
        if s is None:
            continue
        rows.append((run["config"], str(run["seed"]), fmt(s, "return"), f"{s['CR']['mean']:.2f}",
                     fmt(s, "AS", 1), fmt(s, "length", 1), f"{run['train']['env_steps_per_s']:.1f}",
                     f"{run['train']['wall_s']:.0f}"))
    print_rows(rows)
    bare = results.get("bare_env")
    if bare:
        print(f"\nbare random stepping (env steps/s): TorchRL train env {bare['torchrl_env_random_steps_per_s']:.1f}, "
              f"DrivingEnv {bare['driving_env_random_steps_per_s']:.1f}, "
              f"highway-fast-v0 {bare['highway_fast_v0_random_steps_per_s']:.1f}")
        for run in results["runs"]:
            if "train" in run and "pipeline_efficiency" in run:
                print(f"  {run['config']} seed {run['seed']}: training loop at "
                      f"{100 * run['pipeline_efficiency']:.0f}% of bare TorchRL env stepping")


def main(argv: list[str] | None = None) -> int:
    parser = BenchmarkParser("dqn_highway_sb3", __doc__, quick={"steps": 64, "eval_episodes": 1, "bare_steps": 20,
                                                                 "parity_steps": 5})
    parser.add_argument("--steps", type=int, default=20_000, help="training budget in env steps per learner")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out evaluation episodes per learner")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="training seed(s)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS, help="learners to run")
    parser.add_argument("--bare-steps", type=int, default=2_000, help="env steps of bare random stepping")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads for every learner (0: leave torch's default). 1 by default: a "
                             "256x256 MLP on batches of 32 is ~8x slower per update with 2 threads on a busy 2-core box")
    parser.add_argument("--parity-steps", type=int, default=60,
                        help="steps per seed of the observation parity check with highway-fast-v0")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    import torch

    from zoo.evaluation import EVAL_SEED_OFFSET, evaluate

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    results: dict[str, Any] = {
        "benchmark": "dqn_highway_sb3",
        "command": "python benchmarks/dqn_highway_sb3.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "git": git_state(),
        "load_start": load_average(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "hparams": HPARAMS,
        "reference": REFERENCE,
        "eval_seeds": f"{EVAL_SEED_OFFSET} .. {EVAL_SEED_OFFSET + args.eval_episodes - 1} (via zoo.evaluate)",
        "runs": [],
    }

    def save() -> None:
        write_json(args.out, results)

    results["observation_parity"] = check_observation_parity(args.parity_steps)
    print(f"observation parity with highway-fast-v0: {results['observation_parity']}", flush=True)
    results["bare_env"] = bare_env_throughput(args.bare_steps, args.seed[0])
    print(f"bare env: {results['bare_env']}", flush=True)
    save()

    for seed in args.seed:
        for config in args.configs:
            print(f"[{time.strftime('%H:%M:%S')}] training {config} seed {seed} for {args.steps} steps "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
            load_before = load_average()
            if config == "sb3":
                agent, train = train_sb3(args.steps, seed)
            else:
                fpb = 1 if config == "zoo-fpb1" else 16
                agent, train = train_zoo(args.steps, seed, frames_per_batch=fpb, updates_per_batch=fpb)
            run = {"config": config, "seed": seed, "load_before": load_before, "load_after_train": load_average(),
                   "train": train,
                   "pipeline_efficiency": train["env_steps_per_s"]
                   / results["bare_env"]["torchrl_env_random_steps_per_s"]}  # recomputed at the end
            print(f"  trained: {train}", flush=True)
            start = time.perf_counter()
            result = evaluate(agent, episodes=args.eval_episodes, seed=0, progress=False)
            run["eval_wall_s"] = time.perf_counter() - start
            run["eval"] = summary_dict(result)
            run["eval_episodes"] = [{k: round(v, 4) for k, v in e.items()} for e in result.episodes]
            s = run["eval"]
            print(f"  eval: return {fmt(s, 'return')}, CR {s['CR']['mean']:.2f}, AS {fmt(s, 'AS', 1)} km/h, "
                  f"length {fmt(s, 'length', 1)}", flush=True)
            results["runs"].append(run)
            save()
            del agent

    # Bare stepping again at the end: the load of a shared machine drifts, so bracket the training runs.
    end = bare_env_throughput(args.bare_steps, args.seed[0])
    print(f"bare env (end): {end}", flush=True)
    start = results["bare_env"]
    results["bare_env_start"], results["bare_env_end"] = start, end
    results["bare_env"] = {k: (start[k] + end[k]) / 2 for k in start}
    for run in results["runs"]:
        run["pipeline_efficiency"] = run["train"]["env_steps_per_s"] / results["bare_env"]["torchrl_env_random_steps_per_s"]
    results["load_end"] = load_average()
    save()
    print()
    print_table(results)
    print(f"\nload: start {results['load_start']['loadavg']}, end {results['load_end']['loadavg']}")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
