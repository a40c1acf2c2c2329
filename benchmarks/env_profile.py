"""Benchmark: where a step of the simulator goes, per scenario preset (issue 17 item 4).

For each preset (kinematics observation, the training action mode; ``highway-fast`` also with the 96 px BEV frame
VLM rewards read), the same random actions under the same seeds are stepped through:

* ``plain``: highway-env's own gymnasium env, ``gym.make(gym_id, config=...)`` with exactly the config the zoo's
  env gives it (no zoo code at all);
* ``plain_fast_obs``: the same env observing with the zoo's numpy kinematics (``zoo.envs.observation``, the same
  array as highway-env's pandas one);
* ``zoo``: ``zoo.envs.DrivingEnv`` (what training and evaluation step; it observes with the numpy kinematics).

Each is warmed up, then timed ``--rounds`` times in turn (the median is reported: single timings of the same
steps vary by ±20 % on a shared machine).

Then a ``cProfile`` of the zoo env splits a step into highway-env's parts — other road users deciding
(``Road.act``: IDM/MOBIL), moving and colliding (``Road.step``), the observation, reward and termination — the
BEV render, and the zoo's own wrapper (vehicle state, object boxes, frame windows). The shares say where an
upstream change would pay and bound what it could give: a part's share is the most its removal could save.

Usage::

    python benchmarks/env_profile.py                    # ~6 min on 2 CPU cores
    python benchmarks/env_profile.py --quick --out /tmp/ep.json   # tiny sizes (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/env_profile.json``, which docs/performance.md quotes).
"""

from __future__ import annotations

import cProfile
import datetime as dt
import pstats
import warnings
from typing import Any

from common import BenchmarkParser, git_state, load_average, machine, random_steps, versions, write_json

warnings.filterwarnings("ignore")

#: the parts of a step, each the cumulative time of the functions named (file suffix, function name)
PARTS: dict[str, list[tuple[str, str]]] = {
    "traffic decisions (Road.act)": [("highway_env/road/road.py", "act")],
    "dynamics and collisions (Road.step)": [("highway_env/road/road.py", "step")],
    "observation (observe)": [("highway_env/envs/common/observation.py", "observe"),
                              ("zoo/envs/observation.py", "observe")],
    "reward, termination, info": [("highway_env/envs/common/abstract.py", "_reward"),
                                  ("highway_env/envs/common/abstract.py", "_is_terminated"),
                                  ("highway_env/envs/common/abstract.py", "_info")],
    "BEV render": [("highway_env/envs/common/abstract.py", "render")],
    "zoo wrapper (state, objects)": [("zoo/envs/driving.py", "vehicle_state"), ("zoo/envs/driving.py", "objects")],
}


def cases(args) -> list[dict[str, Any]]:
    from zoo.envs import SCENARIOS, EnvConfig

    out = []
    for name in args.scenarios:
        preset = SCENARIOS.get(name)
        action = "discrete" if "discrete" in preset.action_modes else "continuous"
        out.append({"case": f"{name} kinematics {action}", "env": EnvConfig(name, action=action)})
        if name == "highway-fast" and args.bev:
            out.append({"case": f"{name} kinematics+BEV {action}",
                        "env": EnvConfig(name, action=action, obs="both", bev_size=96)})
    return out


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def shares(profile: cProfile.Profile, total_s: float) -> dict[str, float]:
    stats = pstats.Stats(profile).stats  # {(file, line, function): (calls, ..., tottime, cumtime, callers)}
    out = {}
    for part, functions in PARTS.items():
        seconds = sum(stat[3] for (file, _, function), stat in stats.items()
                      if any(file.endswith(suffix) and function == name for suffix, name in functions))
        out[part] = round(seconds / total_s, 3)
    return out


def measure(case: dict[str, Any], args) -> dict[str, Any]:
    import gymnasium as gym

    from zoo.envs import DrivingEnv
    from zoo.envs.observation import use_fast_kinematics

    zoo_env = DrivingEnv(case["env"])
    config = dict(zoo_env.unwrapped.config)
    envs = {"plain": gym.make(zoo_env.preset.gym_id, config=config, render_mode="rgb_array").unwrapped,
            "plain_fast_obs": gym.make(zoo_env.preset.gym_id, config=config, render_mode="rgb_array").unwrapped,
            "zoo": zoo_env}
    use_fast_kinematics(envs["plain_fast_obs"])
    seconds: dict[str, list[float]] = {name: [] for name in envs}
    for env in envs.values():
        random_steps(env, args.warmup, args.seed)
    for _ in range(args.rounds):
        for name, env in envs.items():
            elapsed, episodes = random_steps(env, args.steps, args.seed)
            seconds[name].append(elapsed)
    profile = cProfile.Profile()
    profile.enable()
    profiled_s, _ = random_steps(zoo_env, args.steps, args.seed)
    profile.disable()
    for env in envs.values():
        env.close()
    rate = {name: round(args.steps / median(values), 1) for name, values in seconds.items()}
    return {"case": case["case"], "steps": args.steps, "rounds": args.rounds, "episodes": episodes,
            "seconds": seconds, **{f"{name}_steps_per_s": value for name, value in rate.items()},
            "fast_obs_over_plain": round(rate["plain_fast_obs"] / rate["plain"], 3),
            "zoo_over_plain": round(rate["zoo"] / rate["plain"], 3), "profiled_shares": shares(profile, profiled_s)}


def main() -> None:
    from zoo.envs import SCENARIOS

    meta_action = [name for name in SCENARIOS.names() if "discrete" in SCENARIOS.get(name).action_modes]
    parser = BenchmarkParser("env_profile", __doc__, quick={"steps": 10, "rounds": 1, "warmup": 2,
                                                              "scenarios": ["highway-fast"]})
    parser.add_argument("--scenarios", nargs="+", default=meta_action, choices=SCENARIOS.names())
    parser.add_argument("--steps", type=int, default=200, help="env steps per timing")
    parser.add_argument("--rounds", type=int, default=3, help="timings of each env, in turn (median reported)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps of each env first")
    parser.add_argument("--no-bev", dest="bev", action="store_false", help="skip highway-fast with BEV frames")
    parser.add_argument("--seed", type=int, default=1_500_000)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "env_profile", "command": "python benchmarks/env_profile.py" + (" --quick" if args.quick else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git": git_state(),
        "machine": machine(), "versions": versions(), "load_start": load_average(), "args": vars(args), "runs": [],
    }
    for case in cases(args):
        row = measure(case, args)
        print(row, flush=True)
        result["runs"].append(row)
    result["load_end"] = load_average()
    write_json(args.out, result)


if __name__ == "__main__":
    main()
