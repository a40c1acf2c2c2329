"""Benchmark: latency per action of an exported policy at batch 1 on CPU, next to the reward model's cost.

Measures, one observation at a time (batch 1), median and p99 wall time of

* the Lightning agent's ``act`` (the TensorDict policy the checkpoint holds),
* the ``zoo export`` artifacts: TorchScript (``torch.jit.load``) and ONNX (onnxruntime), each called raw
  and through :class:`zoo.export.ExportedPolicy` (which checks dtype, shape and NaN first),

and the per-frame cost of the reward model the policy was trained with (``zoo.create_reward_model``, CLG
on a 96×96 BEV frame, cache off) at batch 1 and per frame in batches of 64 (how training scores frames).
One torch / onnxruntime thread throughout.

Usage::

    python benchmarks/policy_latency.py                      # SAC of recipes/sac_vlmrl_highway.yaml, untrained
    python benchmarks/policy_latency.py --policy runs:/<id>  # any source zoo.load_policy takes
    python benchmarks/policy_latency.py --quick --out /tmp/pl.json   # a few calls each (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/policy_latency.json``).

Latency does not depend on the weights, so the default policy is the VLM-RL recipe's SAC (MLP 256-256 on
the 25-d kinematics vector) freshly initialised and saved as a policy folder.
"""

from __future__ import annotations

import datetime as _dt
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BenchmarkParser, git_state, load_average, machine, print_rows, versions, write_json


def timings_ms(call, iterations: int, warmup: int) -> dict[str, float]:
    """Median and p99 of ``iterations`` calls of ``call()`` (after ``warmup`` calls), in milliseconds."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p99_ms": samples[min(len(samples) - 1, int(0.99 * len(samples)))],
            "iterations": iterations}


def default_policy(folder: Path) -> str:
    """The VLM-RL recipe's SAC (untrained) as a policy folder; the reward is recorded, not built."""
    from zoo.agents import SAC
    from zoo.benchmark.methods import read_recipe
    from zoo.envs import EnvConfig
    from zoo.hub.policies import save_policy_folder

    args = read_recipe("sac_vlmrl_highway.yaml")["model"]["init_args"]
    keep = ("network", "hidden_sizes", "gamma", "tau", "lr", "batch_size", "buffer_size")
    agent = SAC(env=EnvConfig(**args["env"]), **{k: args[k] for k in keep})
    save_policy_folder(agent, folder, "sac-vlmrl-highway.latency", "untrained SAC of sac_vlmrl_highway.yaml")
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    parser = BenchmarkParser("policy_latency", __doc__,
                             quick={"iterations": 20, "reward_iterations": 10, "warmup": 2})
    parser.add_argument("--policy", default=None, help="policy source (default: the VLM-RL recipe's SAC, untrained)")
    parser.add_argument("--reward-model", default="drive-clip-bev-tiny", help="reward model of the training recipe")
    parser.add_argument("--iterations", type=int, default=2_000, help="timed policy calls per variant")
    parser.add_argument("--reward-iterations", type=int, default=200, help="timed reward calls at batch 1")
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    import torch
    from tensordict import TensorDict

    import zoo
    from zoo.export import export_policy, load_exported
    from zoo.extras import require

    onnxruntime = require("onnxruntime", "the ONNX latency")

    torch.set_num_threads(1)
    results: dict[str, Any] = {
        "benchmark": "policy_latency",
        "command": "python benchmarks/policy_latency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(), "versions": versions("onnxruntime", "onnx"), "git": git_state(),
        "load_start": load_average(), "policy": {}, "reward_model": {},
    }
    with tempfile.TemporaryDirectory(prefix="zoo-latency-") as tmp:
        source = args.policy or default_policy(Path(tmp) / "policy")
        results["policy_source"] = args.policy or "recipes/sac_vlmrl_highway.yaml SAC, untrained"
        agent = zoo.load_policy(source)
        obs = torch.randn(1, *agent.obs_shape) if agent.obs_key == "observation" else \
            torch.randint(0, 256, (1, *agent.obs_shape), dtype=torch.uint8)
        td = TensorDict({agent.obs_key: obs}, [1])
        variants = {"lightning agent.act (TensorDict)": lambda: agent.act(td.clone())}
        for fmt, suffix in (("torchscript", ".pt"), ("onnx", ".onnx")):
            path = export_policy(source, fmt, Path(tmp) / f"policy{suffix}")
            results["policy"][f"{fmt} artifact size (kB)"] = path.stat().st_size / 1e3
            checked = load_exported(path)
            if fmt == "torchscript":
                raw = torch.jit.load(str(path))
                variants["torchscript, raw"] = lambda raw=raw: raw(obs)
            else:
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = options.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                feed = {agent.obs_key: obs.numpy()}
                variants["onnx (onnxruntime), raw"] = lambda session=session, feed=feed: session.run(None, feed)
                checked._session = session  # same single-threaded session for the checked call
            variants[f"{fmt}, checked (ExportedPolicy)"] = lambda checked=checked: checked(obs)
        with torch.no_grad():
            for name, call in variants.items():
                results["policy"][name] = timings_ms(call, args.iterations, args.warmup)
                print(f"{name}: {results['policy'][name]}", flush=True)

    reward = zoo.create_reward_model(args.reward_model, cache_size=0, device="cpu")
    frames = torch.randint(0, 256, (64, 3, 96, 96), dtype=torch.uint8)
    one = TensorDict({"pixels": frames[:1]}, [1])
    batch = TensorDict({"pixels": frames}, [64])
    results["reward_model"]["name"] = args.reward_model
    results["reward_model"]["batch 1, per frame"] = timings_ms(lambda: reward.compute(one), args.reward_iterations, 5)
    per_batch = timings_ms(lambda: reward.compute(batch), max(10, args.reward_iterations // 10), 2)
    results["reward_model"]["batch 64, per frame"] = {k: v / 64 if k.endswith("_ms") else v
                                                      for k, v in per_batch.items()}
    print(f"reward model: {results['reward_model']}", flush=True)
    results["load_end"] = load_average()
    write_json(args.out, results)

    rows = [("what (batch 1, CPU, 1 thread)", "median ms", "p99 ms")]
    rows += [(name, f"{t['median_ms']:.3f}", f"{t['p99_ms']:.3f}") for name, t in results["policy"].items()
             if isinstance(t, dict)]
    rows += [(f"reward model {args.reward_model}, {name}", f"{t['median_ms']:.3f}", f"{t['p99_ms']:.3f}")
             for name, t in results["reward_model"].items() if isinstance(t, dict)]
    print()
    print_rows(rows)
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
