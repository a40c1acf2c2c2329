"""``zoo reward evaluate``: does the dynamic pathway see danger that the static pathway misses?

On held-out recordings (``zoo data bev-captions`` from reset seed 1 000 000 on, which no training or model-selection
episode uses; frames at ``frame_rate_hz``; windows one policy decision apart, as the env renders them in training
and as the risk describer was trained; the simulator's boxes), each reward variant of :data:`VARIANTS` scores every
frame with its raw semantic reward (before any normalisation or vehicle-state shaping), and
:func:`zoo.evaluation.reward_quality.danger_scores` measures

* ``auroc_collision_1s``: P(a frame with no collision within the horizon scores higher than a frame within it),
  crash frames excluded. **Low reward means danger**: 1 is perfect, 0.5 chance, below 0.5 the reward is higher
  before collisions;
* ``spearman_ttc``: the rank correlation with the true time to collision (100 s when not closing in on a
  leader): positive means that safer frames score higher.

Intervals: percentile bootstrap over whole episodes (frames of one episode are correlated), within each scenario
(:func:`zoo.evaluation.reward_quality.episode_bootstrap`); the differences of each dual variant minus the static
one are paired, measured on the same resamples. Method and results: docs/rewards.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from rich.console import Console
from tensordict import TensorDict

from zoo import keys
from zoo.data.bev_captions import make_bev_captions
from zoo.data.datamodule import (
    COLUMNS,
    TEST_SEED,
    CaptionDataset,
    concat_splits,
    frames_tensor,
    windows_tensor,
)
from zoo.envs.presets import SCENARIOS
from zoo.errors import ZooError
from zoo.evaluation.reward_quality import danger_auroc, danger_scores, episode_bootstrap
from zoo.hub.cards import edit_card
from zoo.hub.resolve import resolve_model
from zoo.perception import AttentionGate
from zoo.perception.gate import DEFAULT_ROI, REGIONS, SCENARIO_REGIONS
from zoo.rewards.cache import EmbeddingCache
from zoo.rewards.factory import create_reward_model
from zoo.rewards.oracle import OracleDescriber

STATIC, DUAL, ORACLE = "static", "dual", "dual-oracle"
#: the reward variants compared, by name
VARIANTS = {
    STATIC: "the static pathway alone (CLG)",
    DUAL: "static + gated dynamic pathway, the shipped gate (detector) and risk describer",
    ORACLE: "static + gated dynamic pathway, the oracle gate (simulator boxes) and ground-truth descriptions: "
            "the upper bound",
}
METRICS = ("auroc_collision_1s", "spearman_ttc")
#: held-out scenarios by default: two the shipped reward model trained on (other seeds), one it never saw
DEFAULT_SCENARIOS = ("highway-fast", "merge", "roundabout")
#: the group of every scenario: each measure the mean of the scenarios' (episodes resampled within each scenario)
ALL = "all"
#: ``zoo reward evaluate --quick``: the same code path on tiny sizes (a test runs it; the command prints them)
QUICK = {"scenarios": ["merge", "roundabout"], "frames": 20, "replicates": 50, "data": "data/reward-evaluation-quick"}


@dataclass
class HeldOutWindows(CaptionDataset):
    """A held-out recording of one or more scenarios for the evaluation (recorded on first use).

    Attributes (besides :class:`~zoo.data.datamodule.CaptionDataset`'s):
        window: frames per window, one policy decision apart.
    """

    window: int = 4

    columns: ClassVar[tuple[str, ...]] = (*COLUMNS, "window", "objects", "dynamic_caption", "episode_seed")
    made_by: ClassVar[str] = "zoo data bev-captions --decision-windows --objects"

    def record(self) -> None:
        make_bev_captions(self.scenarios, self.frames, self.path, seed=self.seed, window=self.window,
                          frame_rate_hz=self.frame_rate_hz, decision_windows=True, objects=True)


def recording(data: str, scenario: str, frames: int, seed: int, frame_rate_hz: float, window: int) -> HeldOutWindows:
    """The held-out recording of ``scenario`` under the folder ``data``, its settings in its folder's name (so a
    recording with other settings is never read in its place).

    Raises:
        ZooError: ``seed`` below 1 000 000 (training seeds: not held out).
    """
    if seed < TEST_SEED:
        raise ZooError(f"seed {seed} is a training seed: held-out recordings start at {TEST_SEED} or above")
    folder = f"{data}/{scenario}-{frames}f-{frame_rate_hz:g}hz-w{window}-seed{seed}"
    return HeldOutWindows(folder, [scenario], frames=frames, seed=seed, frame_rate_hz=frame_rate_hz, window=window)


def build_variants(model: str, detector: str, describer: str, device: str = "cpu",
                   roi: str | tuple[float, float, float, float] | None = DEFAULT_ROI) -> tuple[dict[str, Any], Any]:
    """The reward module of each variant of :data:`VARIANTS`, both gates watching ``roi``, and the oracle describer
    (to be given each batch's ground truth before the oracle variant scores it)."""
    oracle = OracleDescriber()
    rewards: dict[str, Any] = {
        STATIC: create_reward_model(model, head="clg", device=device),
        DUAL: create_reward_model(model, head="dual-pathway", gate=AttentionGate(detector, roi=roi),
                                  describer=describer, device=device),
        ORACLE: create_reward_model(model, head="dual-pathway", gate=AttentionGate("oracle", roi=roi),
                                    describer=oracle, device=device),
    }
    shared = EmbeddingCache(rewards[STATIC].cache_size)  # one backbone: each frame is embedded once, for all three
    for reward in rewards.values():
        reward.cache = shared
    return rewards, oracle


def state_batches(rows: Any, batch_size: int) -> Iterator[tuple[Any, TensorDict]]:
    """``(rows of the batch, next state)``: the recorded frames, windows and boxes as the env writes them."""
    for start in range(0, len(rows), batch_size):
        batch = rows.select(range(start, min(start + batch_size, len(rows))))
        objects = np.asarray(batch.with_format("numpy", columns=["objects"])["objects"], dtype=np.float32)
        yield batch, TensorDict({keys.PIXELS: frames_tensor(batch), keys.PIXELS_WINDOW: windows_tensor(batch),
                                 keys.OBJECTS: torch.from_numpy(objects)}, batch_size=[len(batch)])


def score(rewards: Mapping[str, Any], oracle: Any, rows: Any, batch_size: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """Per variant, per frame of ``rows``: its raw ``reward``; for the dual variants also ``gate`` (the gate was
    open) and ``dynamic`` (a description became the negative goal: the dynamic term was paid)."""
    out: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in rewards}
    with torch.no_grad():
        for batch, state in state_batches(rows, batch_size):
            oracle.remember(state[keys.PIXELS_WINDOW], batch["dynamic_caption"])
            for name, reward in rewards.items():
                values = {k: v.reshape(-1).float().numpy() for k, v in reward.compute(state).items()}
                columns = {"reward": values[keys.REWARD]}
                if "gate" in values:
                    columns["gate"] = values["gate"] > 0.5
                    columns["dynamic"] = columns["gate"] & (values["dynamic_fallback"] < 0.5) & (
                        values["dynamic_clear"] < 0.5)
                for key, value in columns.items():
                    out[name].setdefault(key, []).append(value)
    return {name: {k: np.concatenate(v) for k, v in columns.items()} for name, columns in out.items()}


def _finite(value: float) -> float | None:
    """``value``, or ``None`` where it is undefined (an AUROC of frames without a collision ahead): strict JSON."""
    return float(value) if np.isfinite(value) else None


def _interval(point: float, draws: np.ndarray, confidence: float) -> dict[str, float | None]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {"value": _finite(point), "low": _finite(low), "high": _finite(high)}


def measure(scores: Mapping[str, Mapping[str, np.ndarray]], truth: Mapping[str, np.ndarray],
            strata: list[list[np.ndarray]], replicates: int, confidence: float, seed: int,
            reference: str = STATIC) -> dict[str, Any]:
    """The metrics of each variant on the frames of ``strata`` (per scenario, per episode, frame indices), with
    their intervals, and the paired differences of each other variant minus ``reference`` (the static pathway).

    With several strata a metric is the mean of its value in each: pooling the frames of scenarios whose rewards and
    times to collision lie at different levels would rank across scenarios, not danger within them.

    Args:
        scores: :func:`score`'s output (concatenated over scenarios).
        truth: per frame ``collision_within_horizon``, ``crashed``, ``time_to_collision``.
    """
    within, crashed, ttc = (np.asarray(truth[c]) for c in ("collision_within_horizon", "crashed", "time_to_collision"))
    names = list(scores)
    frames = np.concatenate([e for episodes in strata for e in episodes])
    stratum = np.empty(len(within), dtype=int)
    for k, episodes in enumerate(strata):
        stratum[np.concatenate(episodes)] = k

    def statistic(index: np.ndarray) -> np.ndarray:
        parts = [index[stratum[index] == k] for k in range(len(strata))]
        return np.mean([[[danger_scores(scores[n]["reward"][i], within[i], crashed[i], ttc[i])[m] for m in METRICS]
                         for n in names] for i in parts], axis=0)

    point = statistic(frames)
    draws = episode_bootstrap(statistic, strata, replicates, seed)
    base = names.index(reference)
    variants = {}
    for i, name in enumerate(names):
        variants[name] = {m: _interval(point[i, j], draws[:, i, j], confidence) for j, m in enumerate(METRICS)}
        for rate in ("gate", "dynamic"):
            if rate in scores[name]:
                variants[name][f"{rate}_rate"] = float(scores[name][rate][frames].mean())
    differences = {f"{name} - {reference}": {m: _interval(point[i, j] - point[base, j], draws[:, i, j] - draws[:, base, j],
                                                        confidence) for j, m in enumerate(METRICS)}
                   for i, name in enumerate(names) if i != base}
    keep = ~crashed[frames]
    return {"pooling": "mean over scenarios" if len(strata) > 1 else None,"episodes": sum(len(s) for s in strata),
            "collision_episodes": int(sum(crashed[e].any() for s in strata for e in s)),
            "frames": len(frames), "imminent_frames": int((within[frames] & keep).sum()),
            # for scale: the simulator's own time to collision as the score (no frame-reading reward beats it by much)
            "oracle_auroc_ttc": _finite(np.mean([danger_auroc(ttc[i][~crashed[i]], within[i][~crashed[i]])
                                                 for i in map(np.concatenate, strata)])),
            "variants": variants, "differences": differences}


def episodes_of(seeds: np.ndarray, index: np.ndarray) -> list[np.ndarray]:
    """The frame indices ``index`` grouped by episode (``seeds[index]``), in order of first appearance."""
    order = dict.fromkeys(seeds[index].tolist())
    return [index[seeds[index] == s] for s in order]


def evaluate_rewards(model: str = "drive-clip-bev-tiny", detector: str = "bev-detector-tiny",
                     describer: str = "risk-describer-tiny", scenarios: tuple[str, ...] | list[str] = DEFAULT_SCENARIOS,
                     frames: int = 1500, data: str = "data/reward-evaluation", seed: int = TEST_SEED,
                     frame_rate_hz: float = 5.0, window: int = 4, replicates: int = 2000, confidence: float = 0.95,
                     bootstrap_seed: int = 0, batch_size: int = 64) -> dict[str, Any]:
    """Record (if missing) and score the held-out windows of each scenario with every variant of :data:`VARIANTS`.

    Args:
        model: the dual encoder of every variant (a zoo reward model).
        detector: the shipped gate's detector.
        describer: the shipped risk describer.
        scenarios: held-out scenarios, each recorded on its own from ``seed``.
        frames: frames recorded per scenario (whole episodes, so slightly more).
        data: folder of the recordings.
        seed: first reset seed of each recording (>= 1 000 000).
        frame_rate_hz: recorded frames per simulated second (the zoo's reward models train on 5 Hz).
        window: frames per describer window (the describer's K+1).
        replicates: bootstrap resamples.
        confidence: interval coverage.
        bootstrap_seed: seed of the resampling.
        batch_size: frames scored at once.

    Returns:
        the settings; per scenario the measures of :func:`measure` and whether the model trained on that
        scenario (its card's training data), and over all of them (``"all"``) their means; the seconds spent.
    """
    import datasets  # lazy: datasets is slow to import

    if not scenarios:
        raise ZooError("no scenario to evaluate on: give at least one")
    if frames < 2 or replicates < 1 or not 0 < confidence < 1:
        raise ZooError(f"need frames >= 2, replicates >= 1 and 0 < confidence < 1; got {frames}, {replicates}, "
                       f"{confidence}")
    started, cpu = time.monotonic(), time.process_time()
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_average_at_start": list(os.getloadavg())}
    recordings = [recording(data, s, frames, seed, frame_rate_hz, window) for s in scenarios]
    parts = [concat_splits(r.load()) for r in recordings]
    rows = datasets.concatenate_datasets(parts)
    recorded = time.monotonic()
    regions = {s: SCENARIO_REGIONS.get(s, "ego-lane-ahead") for s in scenarios}
    per_scenario = []  # each scenario's gates watch its own region (zoo.perception.gate.SCENARIO_REGIONS)
    for scenario, part in zip(scenarios, parts, strict=True):
        rewards, oracle = build_variants(model, detector, describer, roi=regions[scenario])
        per_scenario.append(score(rewards, oracle, part, batch_size))
    scores = {name: {key: np.concatenate([p[name][key] for p in per_scenario]) for key in per_scenario[0][name]}
              for name in per_scenario[0]}
    scored = time.monotonic()
    truth = {c: np.asarray(rows[c]) for c in ("collision_within_horizon", "crashed", "time_to_collision")}
    seeds, names = np.asarray(rows["episode_seed"]), np.asarray(rows["scenario"])
    strata = {s: episodes_of(seeds, np.flatnonzero(names == s)) for s in scenarios}
    trained = (((resolve_model(model).card or {}).get("training") or {}).get("train_data") or {}).get("scenarios")
    groups = {s: {"trained_on": None if trained is None else s in trained,
                  **measure(scores, truth, [strata[s]], replicates, confidence, bootstrap_seed)} for s in scenarios}
    if len(scenarios) > 1:
        groups[ALL] = measure(scores, truth, list(strata.values()), replicates, confidence, bootstrap_seed)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": machine,
        "model": model, "detector": detector, "describer": describer, "descriptions": VARIANTS,
        "regions_of_interest": {s: {"name": r, "roi": REGIONS[r]} for s, r in regions.items()},
        "recording": {"scenarios": list(scenarios), "frames_per_scenario": frames, "seed": seed,
                      "frame_rate_hz": frame_rate_hz, "window": window, "window_spacing": "one policy decision",
                      "folders": [r.path for r in recordings]},
        "bootstrap": {"unit": "episode, within each scenario", "replicates": replicates, "confidence": confidence,
                      "seed": bootstrap_seed, "interval": "percentile"},
        "sign": "AUROC = P(reward of a frame with no collision within 1 s > reward of a frame within 1 s before "
                "one): low reward means danger",
        "scenarios": groups,
        # wall seconds of each part, and the CPU seconds of this process (all its threads) in all
        "seconds": {"recording": recorded - started, "scoring": scored - recorded,
                    "bootstrap": time.monotonic() - scored, "cpu": time.process_time() - cpu},
    }


def _cell(interval: Mapping[str, float | None], signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    if None in interval.values():
        return "—"
    return f"{f.format(interval['value'])} ({f.format(interval['low'])} to {f.format(interval['high'])})"


def markdown_table(result: Mapping[str, Any]) -> str:
    """The result as a Markdown table: per scenario and variant the two measures with their intervals, the paired
    difference to the static pathway, and how often the gate opened and the dynamic term was paid."""
    confidence = round(100 * result["bootstrap"]["confidence"])
    lines = [f"| scenario | reward | AUROC, collision within 1 s ({confidence} % CI) | Δ AUROC vs static | "
             f"Spearman with TTC ({confidence} % CI) | Δ Spearman vs static | gate open | dynamic term paid |",
             "|---|---|---|---|---|---|---|---|"]
    for scenario, group in result["scenarios"].items():
        seen = {True: "trained on", False: "never trained on", None: "—"}[group.get("trained_on")]
        label = (f"{scenario} ({seen if scenario != ALL else 'mean over scenarios'}; {group['episodes']} episodes, "
                 f"{group['collision_episodes']} with a collision, {group['frames']} frames, "
                 f"{group['imminent_frames']} imminent)")
        for name, values in group["variants"].items():
            difference = group["differences"].get(f"{name} - {STATIC}")
            rates = [f"{values[r]:.3f}" if r in values else "—" for r in ("gate_rate", "dynamic_rate")]
            lines.append(" | ".join([
                f"| {label if name == STATIC else ''}", name, _cell(values["auroc_collision_1s"]),
                _cell(difference["auroc_collision_1s"], signed=True) if difference else "—",
                _cell(values["spearman_ttc"]),
                _cell(difference["spearman_ttc"], signed=True) if difference else "—", *rates]) + " |")
    return "\n".join(lines)


def card_entry(result: Mapping[str, Any], command: str | None) -> dict[str, Any]:
    """What a reward model's card keeps of an evaluation (``metrics.reward_evaluation``): the measures, the
    recording, the date and the command; not the machine or the timings."""
    return {**{k: v for k, v in result.items() if k not in ("seconds", "machine")}, "command": command}


def evaluate_reward_models(*, model: str = "drive-clip-bev-tiny", detector: str = "bev-detector-tiny",
                           describer: str = "risk-describer-tiny", scenarios: tuple[str, ...] = DEFAULT_SCENARIOS,
                           frames: int = 1500, frame_rate: float = 5.0, window: int = 4, seed: int = TEST_SEED,
                           data: str = "data/reward-evaluation", replicates: int = 2000, confidence: float = 0.95,
                           bootstrap_seed: int = 0, out: str | None = None, write_card: bool = False,
                           quick: bool = False, command_line: str | None = None) -> None:
    """Does the dual pathway see danger better than the static one, on held-out windows.

    Record held-out BEV frames and windows (reset seeds from 1 000 000; once, kept under --data), score them with
    the static pathway (CLG), the dual pathway with the shipped gate and describer, and the dual pathway with the
    oracle gate and ground-truth descriptions, and report per scenario the AUROC of the reward for a collision
    within 1 s (low reward = danger) and its Spearman correlation with the true time to collision, with
    episode-bootstrap confidence intervals and the paired differences to the static pathway (docs/rewards.md).
    The table goes to stdout.

    Args:
        model: the dual encoder of every variant
        detector: the shipped gate's detector
        describer: the shipped risk describer
        scenarios: held-out scenarios (include one the model never trained on)
        frames: frames recorded per scenario (whole episodes)
        frame_rate: recorded frames per simulated second
        window: frames per describer window, one policy decision apart
        seed: first reset seed of each recording (>= 1 000 000)
        data: folder of the recordings (reused when present)
        replicates: bootstrap resamples of episodes
        confidence: interval coverage
        bootstrap_seed: seed of the resampling
        out: write the result as JSON here
        write_card: store the result under metrics.reward_evaluation in the model's card (zoo.json)
        quick: the same code path on tiny sizes, which it prints (a test runs it)
        command_line: the command that ran this, recorded in the JSON and the card
    """
    if quick:
        scenarios, frames, replicates, data = (QUICK[k] for k in ("scenarios", "frames", "replicates", "data"))
        Console(stderr=True).print(f"--quick: --scenarios {' '.join(scenarios)} --frames {frames} "
                                   f"--replicates {replicates} --data {data}", highlight=False)
    for scenario in scenarios:
        SCENARIOS.get(scenario)
    card_folder = resolve_model(model).card_folder if write_card else None
    if write_card and card_folder is None:
        raise ZooError(f"--write-card needs a zoo model with a card (zoo.json); {model!r} has none")
    result = evaluate_rewards(model, detector, describer, scenarios, frames=frames, data=data, seed=seed,
                              frame_rate_hz=frame_rate, window=window, replicates=replicates, confidence=confidence,
                              bootstrap_seed=bootstrap_seed)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({**result, "command": command_line}, indent=2, allow_nan=False) + "\n")
    print(markdown_table(result))
    console = Console(stderr=True)
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items() if k != "cpu")
    seconds += f" (wall); {result['seconds']['cpu']:.0f} s of CPU"
    console.print(f"{seconds}{f'; wrote {out}' if out else ''}")
    if card_folder is not None:
        path = edit_card(card_folder, lambda card: card.setdefault("metrics", {}).update(
            reward_evaluation=card_entry(result, command_line)))
        console.print(f"wrote the evaluation to {path}")
