"""Reference policies on the intersection with other traffic settings, on tuning seeds: how a preset is tuned.

Evaluates reference policies (``zoo.evaluation.reference``) on the ``intersection`` preset with extra highway-env
config overrides (``zoo-intersection-v0``'s keys, e.g. ``through_traffic_headway_range``) on the tuning seeds
1,500,000 and up (``seed=500_000``), never on the held-out seeds of docs/envs.md's tables, and prints SR, CR and the
share of episodes that end neither arrived nor collided (time-outs, mostly), per policy.

    nice python benchmarks/intersection_traffic.py --config '{"through_traffic_headway_range": [3, 6]}' \\
        --policies constant:FASTER idm --episodes 20
"""

from __future__ import annotations

import argparse
import json
import time

#: offset into the held-out seed range for tuning: episode i resets with 1,500,000 + i
TUNING_SEED = 500_000


def main() -> None:
    from zoo.envs.make import make_env
    from zoo.evaluation.reference import reference_policies, reference_policy
    from zoo.evaluation.rollout import held_out_seeds, run_episodes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=json.loads, default={}, help="highway-env config overrides, as JSON")
    parser.add_argument("--policies", nargs="+", default=reference_policies("intersection"))
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    for name in args.policies:
        policy = reference_policy(name)
        env = make_env("intersection", action="discrete", obs="kinematics", config=args.config)
        start = time.perf_counter()
        result = run_episodes(env, lambda seed, policy=policy, env=env: policy.for_episode(env, seed), "intersection",
                              held_out_seeds(args.episodes, TUNING_SEED), progress=False)
        n = len(result.episodes)
        success = sum(e["SR"] for e in result.episodes) / n
        collisions = sum(e["collisions"] for e in result.episodes) / n
        print(f"{name}: SR {success:.2f} CR {collisions:.2f} neither {1 - success - collisions:.2f} "
              f"({n} tuning episodes, {time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
