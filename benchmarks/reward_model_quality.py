"""Benchmark: how well reward models see danger, on held-out episodes (issue: the zoo itself).

For each scenario's test dataset (``zoo data bev-captions`` on seeds from 1 000 000, which no training or
model-selection episode uses) and each model, the CLG reward with the papers' exact prompts
(docs/method.md#prompts) is scored by ``zoo.evaluation.reward_quality``: AUROC for frames that precede a
collision within 1 s against safe frames, and Spearman correlation with time to collision. Models: the
zoo's shipped ones (the adapter beside its 8-bit base), the same architecture untrained, and a random CLIP (the recipes' stand-in before the
zoo shipped a model).

Usage::

    python benchmarks/reward_model_quality.py                       # records the test data if missing
    python benchmarks/reward_model_quality.py --datasets data/drive-clip/test data/drive-clip/roundabout-test
    python benchmarks/reward_model_quality.py --quick --out /tmp/q/rmq.json   # 24 frames of highway-fast
    python benchmarks/reward_model_quality.py --datasets … --adapter mixed /tmp/lora-mixed   # one more adapter

Results go to ``--out`` (default ``benchmarks/results/reward_model_quality.json``, which docs/models.md quotes).
With ``--quick`` the test data are recorded next to ``--out``, not under ``--data``.
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BenchmarkParser, write_json

warnings.filterwarnings("ignore")

BASE_8BIT = "drive-clip-bev-tiny.sim (8-bit)"
MODELS = {
    "drive-clip-bev-tiny.sim": {"model": "drive-clip-bev-tiny.sim"},
    BASE_8BIT: {"model": "drive-clip-bev-tiny.sim", "quantization": {"bits": 8}},
    "drive-clip-bev-tiny.lora-roundabout": {"model": "drive-clip-bev-tiny.lora-roundabout"},
    "drive-clip-bev-tiny (untrained)": {"model": "drive-clip-bev-tiny", "pretrained": False},
    "random:clip-tiny": {"model": "random:clip-tiny"},
}
#: adapter -> its base as the adapter loads it: their paired difference, with an episode-bootstrap interval
ADAPTERS = {"drive-clip-bev-tiny.lora-roundabout": BASE_8BIT}
SCENARIOS = ("highway-fast", "highway", "merge", "roundabout")


def main() -> None:
    parser = BenchmarkParser("reward_model_quality", __doc__, quick={"frames": 24, "scenarios": ["highway-fast"],
                                                                            "replicates": 20})
    parser.add_argument("--datasets", nargs="*", default=None,
                        help="held-out captioned datasets to score (rows grouped by scenario); default: record "
                             "one per scenario under --data")
    parser.add_argument("--frames", type=int, default=1500, help="test frames per scenario when recording")
    parser.add_argument("--frame-rate", type=float, default=5.0,
                        help="frames per simulated second when recording (the zoo's reward models train on 5 Hz)")
    parser.add_argument("--data", default="data/reward-quality", help="where recorded test datasets go")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap resamples of the adapters' gains")
    parser.add_argument("--adapter", nargs=2, action="append", default=[], metavar=("LABEL", "FOLDER"),
                        help="also score this adapter folder of drive-clip-bev-tiny.sim, beside its 8-bit base "
                             "(e.g. one trained with other data); repeatable")
    args = parser.parse_args()
    if args.quick:
        args.data = str(args.out.parent / "reward-quality-data")
    torch.set_num_threads(2)

    import datasets

    from zoo.data.datamodule import CaptionDataset, frames_tensor
    from zoo.evaluation.reward_quality import reward_quality
    from zoo.hub.resolve import resolve_model
    from zoo.train.contrastive import paired_gain, split_rewards
    from zoo.vlm import load_dual_encoder

    recorded = [CaptionDataset(f"{args.data}/{s}", [s], frames=args.frames, seed=1_000_000,
                               frame_rate_hz=args.frame_rate) for s in args.scenarios]
    paths = args.datasets or [dataset.path for dataset in recorded]
    if not args.datasets:
        for dataset in recorded:
            dataset.load()
    tables = [datasets.load_from_disk(p) for p in paths]
    rows = datasets.concatenate_datasets([split for t in tables for split in t.values()])
    if min(rows["episode_seed"]) < 1_000_000:
        raise SystemExit("these datasets hold episodes with seeds < 1 000 000 (training seeds): not held out")
    for label, folder in args.adapter:
        MODELS[label] = {"model": folder}
        ADAPTERS[label] = BASE_8BIT
    encoders = {label: load_dual_encoder(resolve_model(source["model"], pretrained=source.get("pretrained", True)).path,
                                         quantization=source.get("quantization"), device="cpu")
                for label, source in MODELS.items()}
    results: dict[str, dict] = {}
    for scenario in sorted(set(rows["scenario"])):
        subset = rows.filter(lambda r, s=scenario: r["scenario"] == s)
        frames = frames_tensor(subset)
        results[scenario] = {}
        rewards = {label: split_rewards(encoder, frames) for label, encoder in encoders.items()}
        for label in encoders:
            quality = reward_quality(rewards[label], subset)
            results[scenario][label] = quality
            print(f"{scenario:13s} {label:38s} AUROC {quality['auroc_collision_1s']:.3f}  "
                  f"Spearman(TTC) {quality['spearman_ttc']:+.3f}  oracle(TTC) {quality['oracle_auroc_ttc']:.3f}  "
                  f"({int(quality['imminent_frames'])} imminent of {int(quality['frames'])})", flush=True)
        for adapter, base in ADAPTERS.items():  # what the adapter changed, paired on the same episodes
            gain = paired_gain(rewards[adapter], rewards[base], subset, replicates=args.replicates)
            results[scenario][f"{adapter} - {base}"] = gain
            value, low, high = (f"{v:+.3f}" if v is not None else "n/a" for v in gain["auroc_collision_1s"].values())
            print(f"{scenario:13s} {adapter} - {base}: AUROC {value} [{low}, {high}] over {gain['episodes']} episodes",
                  flush=True)
    write_json(args.out, {
        "benchmark": "reward_model_quality", "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "datasets": paths,
        "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
