"""Which region of interest should the attention gate watch in each scenario?

    python benchmarks/gate_roi.py            # records what it lacks, about 40 minutes on a busy core
    python benchmarks/gate_roi.py --quick --out /tmp/roi.json   # 20 frames of highway-fast (a test runs it)

The gate runs the dual pathway's describer only where it opens, so a region must open on the frames that lead to a
collision (danger recall: the share of frames within 1 s of a collision on which the gate is open) while opening
on few frames overall (gate rate: the describer's cost). For each scenario and each region of
``zoo.perception.gate.REGIONS``, on 5 Hz recordings with 4-frame windows (those of ``zoo reward evaluate``):

1. **selection**, on training-seed episodes (seed 0 on): the oracle gate's danger recall and rate; the region
   chosen is the one with the lowest rate among those with recall >= ``--min-recall`` (0.9), else the one with the
   highest recall;
2. **held out** (seeds from 1 000 000, the recordings ``zoo reward evaluate`` scores): danger recall and rate of
   each region with the oracle's boxes and with the shipped detector's, recall with a 95 % interval over whole
   episodes resampled.

Recordings go under ``--data`` (``data/reward-evaluation``, shared with ``zoo reward evaluate``; reused when
present). Results: ``--out`` (default ``benchmarks/results/gate_roi.json``), quoted in docs/perception.md.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BenchmarkParser, git_state, machine, write_json

SCENARIOS = ("highway-fast", "merge", "roundabout", "intersection")


def gate_columns(rows: Any, detector: Any, regions: dict[str, Any], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per region, whether the gate on ``detector`` opens on each frame of ``rows`` (one detection pass)."""
    import torch

    from zoo.evaluation.reward_evaluation import state_batches
    from zoo.perception import AttentionGate

    gates = {name: AttentionGate(detector, roi=roi) for name, roi in regions.items()}
    opened: dict[str, list[bool]] = {name: [] for name in regions}
    with torch.no_grad():
        for _, state in state_batches(rows, batch_size):
            for detections in detector.detect(state):
                for name, gate in gates.items():
                    opened[name].append(gate.is_open(detections))
    return {name: np.asarray(values, dtype=bool) for name, values in opened.items()}


def measure(opened: dict[str, np.ndarray], danger: np.ndarray, seeds: np.ndarray, replicates: int,
            seed: int) -> dict[str, dict[str, Any]]:
    """Per region: gate rate, danger recall and its 95 % interval (the episodes with a danger frame resampled whole,
    every region on the same resamples; ``None`` without danger frames)."""
    from zoo.evaluation.reward_quality import episode_bootstrap

    names = list(opened)
    low = high = [None] * len(names)
    if danger.any():
        episodes = [[np.flatnonzero((seeds == s) & danger) for s in np.unique(seeds[danger])]]
        draws = episode_bootstrap(lambda i: np.array([opened[n][i].mean() for n in names]), episodes, replicates,
                                  seed)
        low, high = np.percentile(draws, 2.5, axis=0).tolist(), np.percentile(draws, 97.5, axis=0).tolist()
    return {name: {"gate_rate": float(opened[name].mean()),
                   "danger_recall": float(opened[name][danger].mean()) if danger.any() else None,
                   "danger_recall_ci": [low[k], high[k]]}
            for k, name in enumerate(names)}


def choose(selection: dict[str, dict[str, Any]], min_recall: float) -> str:
    """The region with the lowest gate rate among those whose danger recall reaches ``min_recall``; else the one
    with the highest recall."""
    enough = [n for n, m in selection.items() if m["danger_recall"] is not None and m["danger_recall"] >= min_recall]
    if enough:
        return min(enough, key=lambda n: selection[n]["gate_rate"])
    return max(selection, key=lambda n: selection[n]["danger_recall"] or 0.0)


def main() -> None:
    parser = BenchmarkParser("gate_roi", __doc__, quick={"scenarios": ["highway-fast"], "frames": 20,
                                                        "replicates": 20, "data": "data/gate-roi-quick"})
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), help="scenarios measured")
    parser.add_argument("--frames", type=int, default=1500, help="frames recorded per scenario and split")
    parser.add_argument("--detector", default="bev-detector-tiny.sim", help="the learned detector scored")
    parser.add_argument("--min-recall", type=float, default=0.9, help="danger recall a chosen region must reach")
    parser.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--data", default="data/reward-evaluation", help="folder of the recordings")
    args = parser.parse_args()

    from zoo.data.datamodule import concat_splits
    from zoo.evaluation.reward_evaluation import TEST_SEED, HeldOutWindows
    from zoo.hub.resolve import model_weights_digest
    from zoo.perception import load_detector
    from zoo.perception.gate import REGIONS

    oracle, learned = load_detector("oracle"), load_detector(args.detector)
    results: dict[str, Any] = {}
    for scenario in args.scenarios:
        row: dict[str, Any] = {}
        for split, seed in (("selection", 0), ("held_out", TEST_SEED)):
            folder = f"{args.data}/{scenario}-{args.frames}f-5hz-w4-seed{seed}"
            rows = concat_splits(HeldOutWindows(folder, [scenario], frames=args.frames, seed=seed,
                                                frame_rate_hz=5.0, window=4).load())
            danger = np.asarray(rows["collision_within_horizon"], dtype=bool)
            seeds = np.asarray(rows["episode_seed"])
            detectors = {"oracle": oracle} if split == "selection" else {"oracle": oracle, "learned": learned}
            row[split] = {"frames": len(rows), "danger_frames": int(danger.sum()),
                          "episodes": int(len(np.unique(seeds))),
                          **{name: measure(gate_columns(rows, detector, REGIONS), danger, seeds, args.replicates, 0)
                             for name, detector in detectors.items()}}
        row["chosen"] = choose(row["selection"]["oracle"], args.min_recall)
        results[scenario] = row
        chosen = row["held_out"]["learned"][row["chosen"]]
        print(f"{scenario}: {row['chosen']} (held out, learned detector: danger recall {chosen['danger_recall']}, "
              f"gate rate {chosen['gate_rate']:.3f})", flush=True)
    command = "python benchmarks/gate_roi.py" + (" --quick" if args.quick else "")
    write_json(args.out, {"benchmark": "gate_roi", "command": command,
                          "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                          "git": git_state(), "machine": machine(), "args": vars(args),
                          "detector": {"name": args.detector, "digest": model_weights_digest(args.detector)},
                          "regions": {n: None if r is None else list(r) for n, r in REGIONS.items()},
                          "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
