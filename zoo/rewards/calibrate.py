"""Calibrate reward heads on frames recorded in a scenario: normalisation windows and VLM-SR's threshold.

The constants of the VLM rewards depend on the backbone (VLM-RL's [−0.03, 0] is for ViT-bigG, VLM-SR's 0.32
is CLIP's: docs/method.md#constants), so they are measured: drive a scenario with random meta-actions
(collisions are frequent), score every frame with each head's raw reward, and derive

* ``window`` — the [θ_min, θ_max] normalisation window of :class:`~zoo.rewards.HierarchicalReward` around that
  head: the (low, high) percentiles of its raw reward (default 5th/95th);
* ``threshold`` (VLM-SR) — the cosine to the goal that best separates safe frames from frames just before a
  collision (:func:`separating_threshold`); VLM-SR pays +1 above it, −1 at or below it.

``zoo reward calibrate --model drive-clip-bev-tiny --head all --write-card`` stores them in the model's card
(``calibration``), where :func:`zoo.create_reward_model` and the reward classes find them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from rich.progress import Progress
from tensordict import TensorDictBase

from zoo import keys
from zoo.envs.config import EnvConfig
from zoo.envs.make import build_env
from zoo.envs.presets import SCENARIOS
from zoo.errors import UsageError, ZooError
from zoo.hub.cards import edit_card
from zoo.hub.resolve import resolve_model
from zoo.registry import check_choice
from zoo.rewards.base import render_needs
from zoo.rewards.baselines import EngineeredReward
from zoo.rewards.factory import HEADS, create_reward_model

#: a frame is "imminent" when a collision happens within this many simulated seconds (the crash frame included),
#: the label the reward model's AUROC is measured on (docs/models.md)
HORIZON_S = 1.0
THRESHOLD_RULE = ("the cosine to the goal maximising balanced accuracy between safe frames (above) and frames "
                  f"within {HORIZON_S:g} s of a collision (at or below) on the calibration frames")


def record(env: EnvConfig, frames: int, seed: int = 0, progress: bool = True) -> tuple[TensorDictBase, torch.Tensor]:
    """Drive the env of ``env`` with random actions (meta-actions with ``action="discrete"``, as
    :func:`calibrate_heads` records) for ``frames`` steps.

    Returns:
        the next states ``[frames]`` (frames, frame windows, vehicle state) and a bool ``[frames]``: a collision
        follows within :data:`HORIZON_S` in the same episode.
    """
    driving = build_env(replace(env, num_envs=1), seed=seed, reward=EngineeredReward())
    horizon_steps = round(HORIZON_S * driving.base_env._env.unwrapped.config["policy_frequency"])
    episodes, labels = [], []
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"recording {env.scenario}", total=frames)
            while sum(len(e) for e in episodes) < frames:
                episode = driving.rollout(frames, break_when_any_done=True).get("next")
                episodes.append(episode)
                labels.append(collision_ahead(episode.get(keys.CRASHED).reshape(-1) > 0.5, horizon_steps))
                bar.update(task, completed=min(frames, sum(len(e) for e in episodes)))
    finally:
        driving.close()
    return torch.cat(episodes)[:frames], torch.cat(labels)[:frames]


def collision_ahead(crashed: torch.Tensor, horizon_steps: int) -> torch.Tensor:
    """Bool per step of one episode: a crash happens at this step or within ``horizon_steps`` after it."""
    ahead = torch.zeros_like(crashed)
    for step in crashed.nonzero().reshape(-1).tolist():
        ahead[max(0, step - horizon_steps):step + 1] = True
    return ahead


def percentile_window(scores: torch.Tensor, percentiles: tuple[float, float]) -> list[float]:
    """``[θ_min, θ_max]``: the (low, high) percentiles of ``scores``."""
    low, high = percentiles
    q = torch.quantile(scores.double(), torch.tensor([low / 100, high / 100], dtype=torch.double))
    return [float(q[0]), float(q[1])]


def separating_threshold(scores: torch.Tensor, safe: torch.Tensor) -> tuple[float, float]:
    """The threshold ``t`` maximising balanced accuracy of "``score > t`` ⇔ safe", and that balanced accuracy.

    Candidates are the observed scores; ties go to the lowest such score.

    Raises:
        ZooError: no safe frame or no unsafe frame to separate.
    """
    if safe.all() or not safe.any():
        raise ZooError(f"cannot choose a separating threshold: {int(safe.sum())} safe and {int((~safe).sum())} "
                       "unsafe frames; record more frames (--frames) so that both occur")
    candidates = torch.unique(scores)
    safe_scores, unsafe_scores = scores[safe].sort().values, scores[~safe].sort().values
    safe_above = 1 - torch.searchsorted(safe_scores, candidates, right=True) / len(safe_scores)
    unsafe_at_or_below = torch.searchsorted(unsafe_scores, candidates, right=True) / len(unsafe_scores)
    balanced = (safe_above + unsafe_at_or_below) / 2
    best = int(balanced.argmax())
    return float(candidates[best]), float(balanced[best])


def safe_auroc(scores: torch.Tensor, safe: torch.Tensor) -> float | None:
    """P(a safe frame scores higher than an unsafe one), ties counting half; ``None`` without both kinds."""
    if safe.all() or not safe.any():
        return None
    diff = scores[safe].double()[:, None] - scores[~safe].double()[None, :]
    return float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())


def head_calibration(reward: Any, states: TensorDictBase, imminent: torch.Tensor,
                     percentiles: tuple[float, float] = (5.0, 95.0)) -> dict[str, Any]:
    """The calibration entry of one head on recorded ``states``: the fields its class declares
    (``calibration_fields``: ``window`` or ``threshold``), and statistics of the calibrated score (``score``:
    the head's raw ``reward``; for a threshold, the cosine it thresholds, ``cos_goal``).
    """
    values = reward.compute(states)
    fields = getattr(reward, "calibration_fields", ("window",))
    score = "cos_goal" if "threshold" in fields else keys.REWARD
    scores = values[score].reshape(-1).float()
    crash = states.get(keys.CRASHED).reshape(-1) > 0.5
    entry: dict[str, Any] = {"score": score}
    if "window" in fields:
        entry.update(window=percentile_window(scores, percentiles), percentiles=list(percentiles))
    if "threshold" in fields:
        threshold, balanced = separating_threshold(scores, ~imminent)
        entry.update(threshold=threshold, rule=THRESHOLD_RULE, balanced_accuracy=balanced,
                     above_threshold=float((scores > threshold).float().mean()))
    entry.update(mean=float(scores.mean()), std=float(scores.std()), min=float(scores.min()), max=float(scores.max()),
                 auroc_safe=safe_auroc(scores, ~imminent), imminent_frames=int(imminent.sum()),
                 collision_frames=int(crash.sum()),
                 mean_at_collision=float(scores[crash].mean()) if crash.any() else None,
                 mean_elsewhere=float(scores[~crash].mean()) if (~crash).any() else None)
    return entry


def check_percentiles(percentiles: tuple[float, float]) -> tuple[float, float]:
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ZooError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    return float(low), float(high)


def calibrate_heads(rewards: Mapping[str, Any], scenario: str = "highway-fast", frames: int = 500, seed: int = 0,
                    percentiles: tuple[float, float] = (5.0, 95.0), bev_size: int = 96, bev_range_m: float = 60.0,
                    progress: bool = True) -> dict[str, dict[str, Any]]:
    """Calibrate several heads on one recording: ``{head: entry}`` (see :func:`head_calibration`).

    Each entry also names the recording (``scenario``, ``frames``, ``seed``) and the head's ``crop``.

    Example:
        >>> rewards = {"clg": zoo.create_reward_model("drive-clip-bev-tiny")}  # doctest: +SKIP
        >>> calibrate_heads(rewards, frames=1000)["clg"]["window"]  # doctest: +SKIP
    """
    percentiles = check_percentiles(percentiles)
    if frames < 2:
        raise ZooError(f"frames must be >= 2, got {frames}")
    env = EnvConfig(scenario, action="discrete", obs="bev", bev_size=bev_size, bev_range_m=bev_range_m)
    states, imminent = record(env.rendering(render_needs(*rewards.values())), frames, seed, progress)
    return {head: {**head_calibration(reward, states, imminent, percentiles), "scenario": scenario,
                   "frames": int(len(states)), "seed": seed, "crop": getattr(reward, "crop", "none")}
            for head, reward in rewards.items()}


def calibrate(reward: Any, scenario: str = "highway-fast", frames: int = 500, seed: int = 0,
              percentiles: tuple[float, float] = (5.0, 95.0), bev_size: int = 96, bev_range_m: float = 60.0,
              progress: bool = True) -> dict[str, Any]:
    """Calibrate one reward module (see :func:`calibrate_heads`).

    Example:
        >>> calibrate(CLGReward("path/to/clip"), frames=1000)["window"]  # doctest: +SKIP
    """
    head = getattr(reward, "head", type(reward).__name__)
    return calibrate_heads({head: reward}, scenario, frames, seed, percentiles, bev_size, bev_range_m, progress)[head]


def write_card_calibration(folder: str | Path, entries: Mapping[str, Mapping[str, Any]], command: str | None) -> Path:
    """Store ``entries`` under the card's ``calibration`` key (one entry per head, each with ``command``);
    heads not in ``entries`` keep their stored entry.

    Raises:
        ZooError: ``folder`` has no card.
    """
    def change(card: dict[str, Any]) -> None:
        card["calibration"] = {**card.get("calibration", {}),
                               **{head: {**entry, "command": command} for head, entry in entries.items()}}

    return edit_card(folder, change)


def calibrate_model(*, model: str, head: tuple[str, ...] = ("clg",), quantization_bits: Literal[4, 8] | None = None,
                    adapter: str | None = None, crop: str = "none", scenario: str = "highway-fast", frames: int = 500,
                    seed: int = 0, percentiles: tuple[float, float] = (5.0, 95.0), bev_size: int = 96,
                    out: str | None = None, trust_remote_code: bool = False, write_card: bool = False,
                    command_line: str | None = None) -> None:
    """Measure the normalisation windows and VLM-SR's threshold of a backbone.

    Record BEV frames of a scenario (random actions: collisions are common), score them with each head's raw
    reward and measure its normalisation window (percentiles) and, for vlm-sr, the threshold that best separates
    safe frames from frames before a collision; --write-card stores them in the model's card. The result goes to
    stdout as JSON.

    Args:
        model: dual encoder: zoo name, hub id, folder, or random:<family>-<size>
        head: reward heads, or 'all' (default clg; dual-pathway: CLG + the gated dynamic pathway with the shipped
            detector and describer)
        quantization_bits: load the backbone quantized to this many bits
        adapter: folder of LoRA adapters
        crop: none or right_half
        scenario: the scenario recorded
        frames: frames recorded
        seed: first reset seed of the recording
        percentiles: the LOW and HIGH percentiles of the window
        bev_size: BEV frame size, pixels
        out: write the result as JSON here
        trust_remote_code: run the model folder's own Python code (config.json auto_map); only for a source you
            trust (a card can never switch this on)
        write_card: store each head's entry under 'calibration' in the model's card (zoo.json)
        command_line: the command that ran this, recorded in the card
    """
    SCENARIOS.get(scenario)
    heads = HEADS.names() if list(head) == ["all"] else [check_choice("reward head", h, HEADS.names()) for h in head]
    if frames < 2:
        raise UsageError(f"--frames must be >= 2, got {frames}")
    percentiles = check_percentiles(tuple(percentiles))
    card_folder = resolve_model(model).card_folder if write_card else None
    if write_card and card_folder is None:
        raise ZooError(f"--write-card needs a zoo model with a card (zoo.json); {model!r} has none")
    quantization = {"bits": quantization_bits} if quantization_bits else None
    rewards = {h: create_reward_model(model, head=h, quantization=quantization, adapter=adapter, crop=crop,
                                      trust_remote_code=trust_remote_code) for h in heads}
    entries = calibrate_heads(rewards, scenario, frames, seed, percentiles, bev_size)
    text = json.dumps({"model": model, "quantization": quantization, "adapter": adapter, "heads": entries}, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    print(text)
    console = Console(stderr=True)
    for name, entry in entries.items():
        measured = [f"window [{entry['window'][0]:.4f}, {entry['window'][1]:.4f}]" if "window" in entry else "",
                    f"threshold {entry['threshold']:.4f}" if "threshold" in entry else ""]
        console.print(f"{name}: {', '.join(m for m in measured if m)} ({entry['frames']} frames of {scenario})")
    if card_folder is not None:
        path = write_card_calibration(card_folder, entries, command_line)
        console.print(f"wrote the calibration of {', '.join(entries)} to {path}")
