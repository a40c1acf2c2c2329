"""Benchmark: the zoo's SAC vs stable-baselines3 SAC, same reward module, hyper-parameters and budget.

In one run, on one scenario (default highway-fast):

* ``zoo``: ``zoo.agents.SAC`` built from ``recipes/sac_vlmrl_highway.yaml``'s parts (the SAC base recipe and the
  VLM-RL reward fragment: CLG on the shipped
  ``drive-clip-bev-tiny`` + hierarchical synthesis), ``total_frames`` = ``--steps``;
* ``sb3``: stable-baselines3 ``SAC`` on the *same* TorchRL env with the *same* reward module, seen through
  :class:`TorchRLGymAdapter` (a gymnasium env over the zoo env, reading the 25-d kinematics ``observation``),
  with the recipe's hyper-parameters mapped one to one (table in docs/performance.md).

Both are then evaluated by :func:`zoo.evaluate` on the same held-out episodes (seeds ``1_000_000 + i``), scored
with the same reward. Reported: training env steps/s (wall clock of the whole training loop: env, reward,
updates) and the held-out driving metrics.

Usage::

    python benchmarks/sac_sb3_peer.py --steps 5000 --eval-episodes 20
    python benchmarks/sac_sb3_peer.py --quick --out /tmp/smoke.json   # 64 steps, 1 episode (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/sac_sb3_peer.json``), rewritten after each learner.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
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

#: the recipe files of ``recipes/sac_vlmrl_highway.yaml``: the SAC base, then the reward fragment (reward, batching)
RECIPES = ("base/sac.yaml", "rewards/vlm-rl.yaml")


class TorchRLGymAdapter(gym.Env):
    """A zoo TorchRL env (reward module included) as a single gymnasium env reading one observation key.

    Args:
        env_config: the zoo agent's :class:`zoo.envs.EnvConfig`.
        reward: the reward module (a copy for this env: ``reward.copy_for_env()``).
        seed: seed of the env (as the zoo agent seeds its training env).
        obs_key: the observation the learner reads.
    """

    def __init__(self, env_config, reward, seed: int, obs_key: str = "observation") -> None:
        from zoo.envs import build_env

        self.env = build_env(replace(env_config, num_envs=1), seed=seed, reward=reward)
        self.obs_key = obs_key
        obs_spec = self.env.observation_spec[obs_key]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, tuple(obs_spec.shape), np.float32)
        space = self.env.full_action_spec["action"].space
        self.action_space = gym.spaces.Box(space.low.numpy(), space.high.numpy(), dtype=np.float32)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.env.set_seed(seed)
        self._state = self.env.reset()
        return self._state.get(self.obs_key).numpy(), {}

    def step(self, action):
        import torch
        from torchrl.envs.utils import step_mdp

        td = self.env.step(self._state.set("action", torch.as_tensor(action, dtype=torch.float32)))
        nxt = td.get("next")
        self._state = step_mdp(td)
        return (nxt.get(self.obs_key).numpy(), float(nxt.get("reward").item()), bool(nxt.get("terminated").item()),
                bool(nxt.get("truncated").item()), {})

    def close(self) -> None:
        self.env.close()


def recipe_arguments(steps: int) -> dict[str, Any]:
    """The recipe's SAC arguments at a budget of ``steps`` (warm-up capped at a quarter of it, as the grid does)."""
    from zoo.benchmark.methods import read_recipe

    args: dict[str, Any] = {}
    for recipe in RECIPES:  # a fragment sets whole arguments (reward, reward_batching): later files replace them
        args.update(read_recipe(recipe)["model"]["init_args"])
    args["total_frames"] = steps
    args["learning_starts"] = min(args["learning_starts"], steps // 4)
    return args


def train_zoo(args: dict[str, Any], seed: int):
    import lightning as L
    from lightning.pytorch.cli import instantiate_module

    from zoo.agents import SAC

    L.seed_everything(seed, verbose=False)
    agent = instantiate_module(SAC, {**args, "seed": seed})
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(agent)
    wall = time.perf_counter() - start
    return agent, {"env_steps": agent.tracker.frames, "wall_s": wall, "env_steps_per_s": agent.tracker.frames / wall,
                   "train_episodes": agent.tracker.episodes, "train_collisions": agent.tracker.collisions}


def train_sb3(args: dict[str, Any], seed: int, zoo_agent):
    """SB3 SAC with the recipe's hyper-parameters on the zoo env and reward (the zoo agent's config)."""
    from zoo.extras import require

    SB3SAC = require("stable_baselines3", "the SB3 reference run").SAC
    env = TorchRLGymAdapter(zoo_agent.env_config, zoo_agent.reward.copy_for_env(), seed)
    model = SB3SAC(
        "MlpPolicy", env, policy_kwargs={"net_arch": list(args["hidden_sizes"])}, learning_rate=args["lr"],
        buffer_size=args["buffer_size"], learning_starts=args["learning_starts"], batch_size=args["batch_size"],
        tau=args["tau"], gamma=args["gamma"], train_freq=args["frames_per_batch"],
        gradient_steps=args["updates_per_batch"], ent_coef="auto", target_entropy="auto", verbose=0, seed=seed,
        device="cpu",
    )
    start = time.perf_counter()
    model.learn(total_timesteps=args["total_frames"])
    wall = time.perf_counter() - start
    env.close()
    train = {"env_steps": int(model.num_timesteps), "wall_s": wall, "env_steps_per_s": model.num_timesteps / wall,
             "gradient_updates": int(model._n_updates)}
    return SB3Evaluatee(model, zoo_agent.env_config, zoo_agent.reward), train


def main(argv: list[str] | None = None) -> int:
    parser = BenchmarkParser("sac_sb3_peer", __doc__, quick={"steps": 64, "eval_episodes": 1})
    parser.add_argument("--steps", type=int, default=5_000, help="training budget in env steps per learner")
    parser.add_argument("--eval-episodes", type=int, default=20, help="held-out evaluation episodes per learner")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    import torch

    from zoo.evaluation import EVAL_SEED_OFFSET, evaluate

    torch.set_num_threads(1)
    sac_args = recipe_arguments(args.steps)
    results: dict[str, Any] = {
        "benchmark": "sac_sb3_peer",
        "command": "python benchmarks/sac_sb3_peer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(), "versions": versions(), "git": git_state(), "load_start": load_average(),
        "recipe": " + ".join(f"recipes/{r}" for r in RECIPES), "hparams": sac_args,
        "eval_seeds": f"{EVAL_SEED_OFFSET} .. {EVAL_SEED_OFFSET + args.eval_episodes - 1} (via zoo.evaluate)",
        "runs": [],
    }
    zoo_agent = None
    for learner in ("zoo", "sb3"):
        print(f"[{time.strftime('%H:%M:%S')}] training {learner} for {args.steps} steps", flush=True)
        run: dict[str, Any] = {"learner": learner, "seed": args.seed, "load_before": load_average()}
        if learner == "zoo":
            zoo_agent, run["train"] = train_zoo(sac_args, args.seed)
            policy = zoo_agent
        else:
            policy, run["train"] = train_sb3(sac_args, args.seed, zoo_agent)
        print(f"  trained: {run['train']}", flush=True)
        result = evaluate(policy, episodes=args.eval_episodes, seed=0, progress=False)
        run["eval"] = summary_dict(result)
        run["eval_episodes"] = [{k: round(v, 4) for k, v in e.items()} for e in result.episodes]
        results["runs"].append(run)
        write_json(args.out, results)
    results["load_end"] = load_average()
    write_json(args.out, results)

    rows = [("learner", "train env steps/s", "wall s", "return", "AS km/h", "RC", "SR", "CR", "CS km/h")]
    for run in results["runs"]:
        s = run["eval"]
        rows.append((run["learner"], f"{run['train']['env_steps_per_s']:.1f}", f"{run['train']['wall_s']:.0f}",
                     fmt(s, "return"), fmt(s, "AS", 1), fmt(s, "RC"), f"{s['SR']['mean']:.2f}",
                     f"{s['CR']['mean']:.2f}", fmt(s, "CS", 1)))
    print()
    print_rows(rows)
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
