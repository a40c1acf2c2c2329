"""The README's quickstart, measured: held-out result over 3 seeds beside the reference policies, and its time.

For each seed S (0, 1, 2), one after the other, in its own fresh working folder (its own MLflow store), the
quickstart exactly as the README writes it, with only the seed added:

    zoo fit --config recipes/quickstart.yaml --seed_everything=S

Each run's wall time, CPU time (user + sys of the child process, from ``getrusage(RUSAGE_CHILDREN)`` deltas) and the
1-minute load average when it started (how quiet the machine was) are recorded. The recipe's own held-out
evaluation (``EvaluateAfterFit``, 20 episodes, before and after) is read back, and the final checkpoint is evaluated
again on 100 held-out episodes (``zoo.evaluate(..., episodes=100, seed=0)``: reset seeds 1,000,000–1,000,099), the
seeds of the reference policies (every constant meta-action, random, the IDM/MOBIL driver; taken from
``results/reference_policies.jsonl`` when it holds the same scenario, preset version and episodes, else evaluated).

    nice python benchmarks/quickstart.py                    # 3 seeds -> results/quickstart.json (15-25 min, 2 cores)
    python benchmarks/quickstart.py --markdown              # the README / docs table from results/quickstart.json
    python benchmarks/quickstart.py --quick                 # 1 seed, 128 env steps, 2 episodes, temp output (a test)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, git_state, load_average, machine, versions

REPO = ROOT.parent
RECIPE = REPO / "recipes" / "quickstart.yaml"
SCENARIO = "highway-fast"  # the recipe's
#: the README's command; each run adds ``--seed_everything=S``
COMMAND = "zoo fit --config recipes/quickstart.yaml"
#: what --quick adds (a tiny budget; the recipe evaluation on 2 episodes)
QUICK_OVERRIDES = ["--model.init_args.total_frames", "128", "--model.init_args.learning_starts", "64",
                   "--trainer.callbacks.episodes", "2"]
#: the reference policies --quick evaluates (the full run: every one of the scenario)
QUICK_REFERENCES = ["constant:FASTER", "random", "idm"]
METRICS = ("SR", "CR", "AS", "RC", "return")


def zoo_command() -> list[str]:
    """The ``zoo`` console script of this environment (``python -m zoo.cli`` where it is not installed)."""
    script = Path(sys.executable).parent / "zoo"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "zoo.cli"]


def summary_means(summary: dict) -> dict[str, float]:
    """``{metric: mean}`` for :data:`METRICS` from a ``metrics.json`` summary (``{metric: {mean, std}}``)."""
    return {name: summary[name]["mean"] for name in METRICS}


def fit(seed: int, workdir: Path, extra: list[str]) -> dict:
    """One quickstart run in ``workdir``: time, CPU, load at start, the recipe's evaluation, the checkpoint."""
    import mlflow

    workdir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # its own store: ./mlflow.db
    argv = [*zoo_command(), "fit", "--config", str(RECIPE), f"--seed_everything={seed}", *extra]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with (workdir / "fit.log").open("w") as log:
        code = subprocess.run(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        sys.exit(f"seed {seed}: zoo fit exited {code}; see {workdir / 'fit.log'}")
    (ckpt,) = workdir.glob("runs/quickstart/*/checkpoints/last.ckpt")
    run_id = ckpt.parents[1].name
    recipe_eval = json.loads((ckpt.parents[1] / "evaluation" / "metrics.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    run = client.get_run(run_id)
    logged = run.data.metrics
    return {
        "seed": seed, "run_id": run_id, "checkpoint": str(ckpt), "load_1min_at_start": round(load, 2),
        "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "total_frames": int(run.data.params["total_frames"]),
        "recipe_eval": {"episodes": len(recipe_eval["episodes"]), "seeds": [recipe_eval["seeds"][0],
                                                                              recipe_eval["seeds"][-1]],
                        "after": summary_means(recipe_eval["summary"]),
                        "before": {name: logged.get(f"eval_before/{name}") for name in METRICS}},
    }


def held_out(ckpt: str, episodes: int) -> dict:
    """The checkpoint on ``episodes`` held-out episodes (seed 0: the reference policies' reset seeds)."""
    import zoo

    start = time.perf_counter()
    result = zoo.evaluate(zoo.load_agent(ckpt), episodes=episodes, seed=0, progress=False)
    return {"episodes": episodes, "seeds": [result.seeds[0], result.seeds[-1]],
            "seconds": round(time.perf_counter() - start, 1),
            **{name: result.summary[name][0] for name in METRICS}}


def references(episodes: int, jsonl: Path, policies: list[str] | None = None) -> dict[str, dict]:
    """Every reference policy of the scenario on the same held-out seeds: ``{policy: {SR, CR, AS, RC, source}}``."""
    from zoo.envs.presets import SCENARIOS
    from zoo.evaluation.reference import evaluate_reference, reference_policies

    version = SCENARIOS.get(SCENARIO).version
    stored = {}
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            cell = json.loads(line) if line.strip() else None
            if cell and (cell["scenario"], cell["condition"], cell["episodes"], cell["preset_version"]) == \
                    (SCENARIO, "default", episodes, version):
                stored[cell["policy"]] = cell
    out = {}
    for policy in policies or reference_policies(SCENARIO):
        if policy in stored:
            s = stored[policy]["summary"]
            out[policy] = {"SR": s["SR"][0], "CR": s["CR"][0], "AS": s["AS"][0], "RC": s["RC"][0],
                           "seeds": [stored[policy]["seeds"][0], stored[policy]["seeds"][-1]],
                           "source": f"{jsonl.relative_to(REPO) if jsonl.is_relative_to(REPO) else jsonl}"}
            continue
        result = evaluate_reference(policy, SCENARIO, episodes=episodes, seed=0)
        out[policy] = {"SR": result.summary["SR"][0], "CR": result.summary["CR"][0],
                       "AS": result.summary["AS"][0], "RC": result.summary["RC"][0],
                       "seeds": [result.seeds[0], result.seeds[-1]], "source": "evaluated here"}
    return out


def measure(args: argparse.Namespace) -> dict:
    from zoo.envs.presets import SCENARIOS

    workroot = Path(tempfile.mkdtemp(prefix="zoo-quickstart-"))
    extra = QUICK_OVERRIDES if args.quick else []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = load_average()
    runs = []
    for seed in args.seeds:
        run = fit(seed, workroot / f"seed{seed}", extra)
        print(f"seed {seed}: fit {run['wall_s']} s wall, {run['cpu_s']} s CPU (load {run['load_1min_at_start']} "
              f"at start); recipe evaluation SR {run['recipe_eval']['after']['SR']:.2f}", flush=True)
        run["held_out"] = held_out(run.pop("checkpoint"), args.episodes)
        print(f"seed {seed}: {args.episodes} held-out episodes SR {run['held_out']['SR']:.2f} "
              f"CR {run['held_out']['CR']:.2f}", flush=True)
        runs.append(run)
    refs = references(args.episodes, args.references, QUICK_REFERENCES if args.quick else None)
    if not args.keep:
        shutil.rmtree(workroot, ignore_errors=True)
    command = f"{COMMAND} --seed_everything=S" + ("".join(f" {a}" for a in extra) if extra else "")
    return {
        "scenario": SCENARIO, "preset_version": SCENARIOS.get(SCENARIO).version, "quick": args.quick,
        "command": command, "benchmark": "python benchmarks/quickstart.py" + (" --quick" if args.quick else ""),
        "seeds": args.seeds, "runs": runs, "references": refs,
        "context": {"git": git_state(), "date": started, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": machine(), "versions": versions(), "load_at_start": load_start,
                    "load_at_end": load_average(), "niceness": os.nice(0),
                    "workdir": str(workroot) if args.keep else None},
    }


def _spread(values: list[float], digits: int = 2) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def markdown(data: dict) -> str:
    """The table: quickstart mean (range over seeds) on 100 and 20 held-out episodes, references, time."""
    runs, refs = data["runs"], data["references"]
    n, n_recipe = runs[0]["held_out"]["episodes"], runs[0]["recipe_eval"]["episodes"]
    constants = {k: v for k, v in refs.items() if k.startswith("constant:")}
    best = max(constants, key=lambda k: (constants[k]["SR"], -constants[k]["CR"]))
    seeds = ", ".join(str(r["seed"]) for r in runs)
    rows = [("policy", f"SR ({n} ep.)", f"CR ({n} ep.)", "AS km/h", "RC", f"SR ({n_recipe} ep., recipe)"),
            (f"quickstart, seeds {seeds}: mean (range)", _spread([r["held_out"]["SR"] for r in runs]),
             _spread([r["held_out"]["CR"] for r in runs]), _spread([r["held_out"]["AS"] for r in runs], 1),
             _spread([r["held_out"]["RC"] for r in runs]),
             _spread([r["recipe_eval"]["after"]["SR"] for r in runs]))]
    for r in runs:
        h = r["held_out"]
        rows.append((f"quickstart, seed {r['seed']}", f"{h['SR']:.2f}", f"{h['CR']:.2f}", f"{h['AS']:.1f}",
                     f"{h['RC']:.2f}", f"{r['recipe_eval']['after']['SR']:.2f}"))
    for name, label in ((best, f"best constant ({best})"), ("random", "random"), ("idm", "idm (IDM/MOBIL driver)")):
        ref = refs[name]
        rows.append((label, f"{ref['SR']:.2f}", f"{ref['CR']:.2f}", f"{ref['AS']:.1f}", f"{ref['RC']:.2f}", ""))
    table = "\n".join("| " + " | ".join(row) + " |" + ("\n|" + "---|" * len(row) if i == 0 else "")
                      for i, row in enumerate(rows))
    timing = (f"Time per run (`{data['command']}`): wall {_spread([r['wall_s'] for r in runs], 0)} s, CPU "
              f"{_spread([r['cpu_s'] for r in runs], 0)} s; 1-min load average at each start "
              f"{', '.join(str(r['load_1min_at_start']) for r in runs)}; {data['context']['machine']['cpu_count']} "
              f"cores; commit {data['context']['git']['commit'][:7]}, {data['context']['date']}.")
    return table + "\n\n" + timing


def check_finite(data: dict) -> None:
    for run in data["runs"]:
        for block in (run["held_out"], run["recipe_eval"]["after"]):
            for name in METRICS:
                if not math.isfinite(block[name]):
                    sys.exit(f"seed {run['seed']}: {name} is {block[name]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100, help="held-out episodes of each final checkpoint")
    parser.add_argument("--quick", action="store_true", help="1 seed, 128 env steps, 2 episodes, 3 reference "
                                                                 "policies, temp output")
    parser.add_argument("--out", type=Path, default=None, help="default results/quickstart.json (--quick: a temp "
                                                                 "folder)")
    parser.add_argument("--references", type=Path, default=RESULTS / "reference_policies.jsonl",
                        help="reference cells to reuse (read only)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' working folders (temp)")
    parser.add_argument("--markdown", action="store_true", help="print the table from --out and exit")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.episodes = args.seeds[:1], 2
    if args.out is None:
        args.out = (Path(tempfile.mkdtemp(prefix="zoo-quickstart-quick-")) / "quickstart.json" if args.quick
                    and not args.markdown else RESULTS / "quickstart.json")
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return

    data = measure(args)
    check_finite(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}\n")
    print(markdown(data))


if __name__ == "__main__":
    main()
