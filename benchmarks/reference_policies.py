"""Reference policies on every meta-action scenario: does success need progress and safety?

For each scenario with meta-actions × evaluation condition (default, unseen) × reference policy (every constant
meta-action, random, the IDM/MOBIL driver), ``zoo.evaluation.reference.evaluate_reference`` on held-out seeds:
SR and CR with 95 % Wilson intervals, RC and AS with 95 % normal intervals of the mean. The presets are right when
no constant and no random policy has SR > 0.2, while the IDM/MOBIL driver shows the task can be done.

    nice python benchmarks/reference_policies.py                  # 100 episodes per cell -> results/ + table
    python benchmarks/reference_policies.py --quick               # 2 episodes, 2 policies, 1 scenario (a test runs it)
    python benchmarks/reference_policies.py --scenarios merge --conditions default

Cells already in the results file (same scenario, condition, policy, episodes, preset version) are kept, so an
interrupted run goes on where it stopped. The per-episode metrics are written too (``--out``, JSON lines).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from common import RESULTS, git_state, load_average, machine, print_rows, versions

Z95 = 1.959964


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (stays inside [0, 1] and is not empty at 0 or n successes)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: list[float], z: float = Z95) -> tuple[float, float, float]:
    """Mean and its 95 % normal-approximation interval."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, mean - z * sd / math.sqrt(n), mean + z * sd / math.sqrt(n)


def cell_summary(episodes: list[dict[str, float]]) -> dict[str, list[float]]:
    """``metric: [estimate, low, high]`` for SR, CR (Wilson) and RC, AS (mean)."""
    n = len(episodes)
    out = {}
    for name, column in (("SR", "SR"), ("CR", "collisions")):
        hits = sum(e[column] for e in episodes)
        out[name] = [hits / n, *wilson_interval(hits, n)]
    for name in ("RC", "AS"):
        out[name] = list(mean_interval([e[name] for e in episodes]))
    return out


def measure(scenario: str, condition: str, policy: str, episodes: int) -> dict:
    from zoo.envs.presets import SCENARIOS
    from zoo.evaluation.reference import evaluate_reference

    start = time.perf_counter()
    result = evaluate_reference(policy, scenario, episodes=episodes, condition=condition)
    return {"scenario": scenario, "condition": condition, "policy": policy, "episodes": episodes,
            "preset_version": SCENARIOS.get(scenario).version, "seconds": round(time.perf_counter() - start, 1),
            "summary": cell_summary(result.episodes), "seeds": result.seeds,
            "per_episode": [{k: round(v, 3) for k, v in e.items()} for e in result.episodes]}


def straight_ahead(scenario: str, episodes: int) -> None:
    """Continuous control: constant (steer 0, throttle 0 or 1) through the same episode loop, printed."""
    import torch

    import zoo
    from zoo.evaluation.rollout import held_out_seeds, run_episodes

    for throttle in (0.0, 1.0):
        env = zoo.make_env(scenario, action="continuous", obs="kinematics")
        action = torch.tensor([0.0, throttle])
        result = run_episodes(env, lambda seed, action=action: lambda td: td.set("action", action), scenario,
                              held_out_seeds(episodes), progress=False)
        summary = {name: result.summary[name][0] for name in ("SR", "CR", "RC", "TD")}
        print(f"{scenario} straight, throttle {throttle:.0f}, {episodes} episodes: "
              + ", ".join(f"{name} {value:.2f}" for name, value in summary.items()), flush=True)


def _key(cell: dict) -> tuple:
    return cell["scenario"], cell["condition"], cell["policy"], cell["episodes"], cell["preset_version"]


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _table(cells: list[dict]) -> list[tuple[str, ...]]:
    def pct(values: list[float], digits: int = 2) -> str:
        return f"{values[0]:.{digits}f} [{values[1]:.{digits}f}, {values[2]:.{digits}f}]"

    rows = [("scenario", "condition", "policy", "n", "SR [95% CI]", "CR [95% CI]", "RC [95% CI]", "AS km/h [95% CI]")]
    for c in cells:
        s = c["summary"]
        rows.append((c["scenario"], c["condition"], c["policy"], str(c["episodes"]), pct(s["SR"]), pct(s["CR"]),
                     pct(s["RC"]), pct(s["AS"], 1)))
    return rows


def main() -> None:
    from zoo.envs.presets import CONDITIONS, SCENARIOS
    from zoo.evaluation.reference import reference_policies

    meta_action_scenarios = [n for n in SCENARIOS.names() if "discrete" in SCENARIOS.get(n).action_modes]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--scenarios", nargs="+", default=meta_action_scenarios, choices=meta_action_scenarios)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--policies", nargs="+", default=None, help="default: every reference policy of a scenario")
    parser.add_argument("--quick", action="store_true", help="2 episodes of constant:SLOWER and idm on "
                                                              "highway-fast, default traffic (seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS / "reference_policies.jsonl")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown (docs/envs.md)")
    parser.add_argument("--straight", action="store_true",
                        help="instead: constant (steer 0, throttle 0/1) with continuous control on --scenarios")
    args = parser.parse_args()
    if args.straight:
        for scenario in args.scenarios:
            straight_ahead(scenario, args.episodes)
        return
    if args.quick:
        args.episodes, args.scenarios, args.conditions = 2, ["highway-fast"], ["default"]
        args.policies = ["constant:SLOWER", "idm"]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {_key(c) for c in _load(args.out)}
    measured = 0
    for scenario in args.scenarios:
        for condition in args.conditions:
            for policy in args.policies or reference_policies(scenario):
                cell_key = (scenario, condition, policy, args.episodes, SCENARIOS.get(scenario).version)
                if cell_key in done:
                    continue
                cell = measure(scenario, condition, policy, args.episodes)
                with args.out.open("a") as fh:
                    fh.write(json.dumps(cell) + "\n")
                measured += 1
                print(f"{scenario} {condition} {policy}: SR {cell['summary']['SR'][0]:.2f} "
                      f"CR {cell['summary']['CR'][0]:.2f} ({cell['seconds']} s)", flush=True)
    if measured:  # where and with what the last cells were measured
        context = {"git": git_state(), "machine": machine(), "versions": versions(), "load": load_average(),
                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cells_measured": measured}
        args.out.with_suffix(".context.json").write_text(json.dumps(context, indent=2))
    wanted = {(s, c) for s in args.scenarios for c in args.conditions}
    rows = _table([c for c in _load(args.out) if (c["scenario"], c["condition"]) in wanted
                   and c["episodes"] == args.episodes
                   and c["preset_version"] == SCENARIOS.get(c["scenario"]).version])  # the current presets only
    if args.markdown:
        print("\n".join("| " + " | ".join(row) + " |" + ("\n|" + "---|" * len(row) if i == 0 else "")
                        for i, row in enumerate(rows)))
    else:
        print_rows(rows)


if __name__ == "__main__":
    main()
