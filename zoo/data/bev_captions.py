"""``zoo data bev-captions``: BEV frames with simulator ground truth and templated captions.

Episodes are driven by a mix of policies chosen per episode (random, reckless, cautious meta-actions), so
that near-misses and collisions are common. Each row is one step:

* ``image``: the BEV frame; ``window``: the last ``window`` frames up to and including it (the first
  frame repeated at an episode's start);
* ground truth read from highway-env: ``crashed``, ``collision_within_horizon`` (a collision happens
  in this step or within ``horizon_s`` seconds after it), ``time_to_collision`` (s, gap to the leader in
  the ego lane over the closing speed; ``TTC_NONE`` when not closing or no leader), ``gap_to_leader`` (m,
  ``GAP_NONE`` without a leader), ``lateral_offset`` (m), ``off_road``, ``speed`` (m/s);
* ``risk``: the category the caption describes, ``caption``: a template of that category, drawn with
  paraphrase variety;
* ``episode_seed``, ``step``, ``scenario``, ``policy``;
* with ``objects``: the simulator's boxes of the other road users (what the oracle attention gate reads);
* ``stalled``: whether the recorder has stopped a vehicle ahead in this episode by this step (``stall_probability``:
  highway-env's traffic only stops behind a crash, so stopped obstacles are otherwise missing from the data).

Splits are by episode seed: an episode goes to ``validation`` when its seed is a multiple of
``validation_every``, so no validation frame comes from a training episode.
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import Progress

from zoo.errors import ZooError

TTC_NONE = 100.0  # s: no leader, or not closing in
GAP_NONE = 200.0  # m: no leader in the ego lane
POLICIES = ("random", "reckless", "cautious")
#: highway-env's meta-actions, in the order of the weights of :data:`_ACTION_PROBS`
_META_ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
#: meta-action probabilities (LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER) of each policy; where a scenario offers no
#: lane change (the intersection drives longitudinally only), the policy draws among the meta-actions it has
_ACTION_PROBS = {
    "random": (0.2, 0.2, 0.2, 0.2, 0.2),
    "reckless": (0.15, 0.1, 0.15, 0.6, 0.0),
    "cautious": (0.05, 0.55, 0.05, 0.05, 0.3),
}
CAPTIONS = {
    "collision": ("Two cars have collided with each other on the road", "A car has crashed into another vehicle",
                  "There is a collision between two cars on the road"),
    "imminent": ("Two cars are about to collide on the road", "A collision with the car ahead is about to happen",
                 "The car is dangerously close to the vehicle ahead"),
    "closing": ("The car is closing in fast on the vehicle ahead", "The gap to the car ahead is shrinking quickly",
                "A slower vehicle is ahead in the same lane"),
    "off_road": ("The car has left the road", "A car is driving off the road"),
    "clear": ("The road is clear with no car accidents", "The car drives safely with space ahead",
              "Traffic flows smoothly with no danger ahead"),
}

#: how dangerous each caption category is (0 safe … 3 catastrophic): an ordinal scale for soft targets
SEVERITY = {"collision": 3, "imminent": 2, "closing": 1, "off_road": 3, "clear": 0}


#: risk descriptions of a frame window (the dynamic pathway's negative goals), most severe first
DYNAMIC_CAPTIONS = {
    "collision": ("The car has crashed into another vehicle", "A collision with another car has happened",
                  "The car collided with a vehicle on the road"),
    "stopped_obstacle": ("A stopped vehicle blocks the lane ahead", "There is a stationary car in the lane ahead",
                         "A car is standing still in the lane ahead"),
    "cut_in": ("A car is cutting in just ahead", "Another vehicle changes into the lane just ahead",
               "A car merges into the lane right in front"),
    "hard_braking": ("The car ahead is braking hard", "The vehicle in front brakes suddenly",
                     "The lead car slows down sharply"),
    "closing_fast": ("The car is closing in fast on the vehicle ahead",
                     "The gap to the car ahead is shrinking quickly",
                     "The car approaches the slower vehicle ahead too fast"),
    "clear": ("The road ahead is clear", "There is no danger on the road ahead",
              "Traffic ahead flows smoothly with plenty of space"),
}
#: words that identify each dynamic risk type in a description (:func:`parse_dynamic_risk`)
DYNAMIC_RISK_KEYWORDS = {
    "collision": ("crash", "collision", "collided"),
    "stopped_obstacle": ("stopped", "stationary", "standing"),
    "cut_in": ("cutting", "changes into", "merges", "cut in", "cuts in"),
    "hard_braking": ("braking", "brakes", "sharply"),
    "closing_fast": ("closing", "shrinking", "too fast"),
    "clear": ("clear", "no danger", "smoothly"),
}
STALL_STEPS = (2, 10)  # the step at which a stalled episode stops a vehicle ahead, drawn uniformly
STALL_SEARCH = 150.0  # m: the vehicle stopped is the nearest ahead of the ego car within this distance
STALL_SPEED = 0.5  # m/s: its target speed (not 0: highway-env's merge reward divides by every target speed)
CUT_IN_GAP = 30.0  # m: a vehicle entering the ego lane closer than this ahead is a cut-in
HARD_BRAKING = -3.0  # m/s²: the leader decelerating harder than this brakes hard
STOPPED_SPEED = 2.0  # m/s: a leader slower than this is a stopped obstacle …
STOPPED_GAP = 60.0  # m: … when it is closer than this


def dynamic_risk_category(crashed: bool, gap: float, leader_speed: float, leader_accel: float, cut_in: bool,
                          ttc: float) -> str:
    """The risk type of a frame window, most severe first (the labels of ``DYNAMIC_CAPTIONS``)."""
    if crashed:
        return "collision"
    if gap < STOPPED_GAP and leader_speed < STOPPED_SPEED:
        return "stopped_obstacle"
    if cut_in:
        return "cut_in"
    if gap < STOPPED_GAP and leader_accel < HARD_BRAKING:
        return "hard_braking"
    if ttc < 4.0:
        return "closing_fast"
    return "clear"


def parse_dynamic_risk(text: str | None) -> str | None:
    """The risk type a description names (by ``DYNAMIC_RISK_KEYWORDS``, most severe first); None if none.

    Example:
        >>> parse_dynamic_risk("The car ahead is braking hard")
        'hard_braking'
    """
    text = (text or "").lower()
    return next((risk for risk, words in DYNAMIC_RISK_KEYWORDS.items() if any(w in text for w in words)), None)


def risk_category(crashed: bool, imminent: bool, ttc: float, off_road: bool) -> str:
    """The caption category of one frame, most severe first."""
    if crashed:
        return "collision"
    if off_road:
        return "off_road"
    if imminent or ttc < 1.5:
        return "imminent"
    if ttc < 4.0:
        return "closing"
    return "clear"


def _leader_state(env: Any) -> tuple[Any, float, float]:
    """(the leader in the ego lane or None, its gap in m, time to collision in s) from highway-env's road."""
    unwrapped = env.unwrapped
    ego = unwrapped.vehicle
    front, _ = unwrapped.road.neighbour_vehicles(ego, ego.lane_index)
    if front is None:
        return None, GAP_NONE, TTC_NONE
    gap = max(0.0, float(ego.lane_distance_to(front)) - (ego.LENGTH + front.LENGTH) / 2)
    closing = float(ego.speed - front.speed * np.cos(front.heading - ego.heading))
    return front, min(gap, GAP_NONE), (min(gap / closing, TTC_NONE) if closing > 1e-3 else TTC_NONE)


def _scene(env: Any) -> dict[str, Any]:
    """What the window's dynamic risk needs of one step: the ego lane, the leader, every vehicle's lane and speed."""
    unwrapped = env.unwrapped
    leader, gap, _ = _leader_state(env)
    return {"ego_lane": unwrapped.vehicle.lane_index, "leader": id(leader) if leader is not None else None,
            "gap": gap, "vehicles": {id(v): (v.lane_index, float(v.speed)) for v in unwrapped.road.vehicles}}


def _same_lane(a: tuple, b: tuple) -> bool:
    """Whether two highway-env lane indices (from, to, id) are one lane (the same id on joined segments)."""
    return a[2] == b[2] and (a[:2] == b[:2] or a[1] == b[0] or b[1] == a[0])


def _window_dynamics(scenes: list[dict[str, Any]], dt: float) -> tuple[float, float, bool]:
    """(leader speed, leader's strongest deceleration in m/s², cut-in) over a window of scenes, current last."""
    now = scenes[-1]
    leader = now["leader"]
    if leader is None:
        return 0.0, 0.0, False
    speeds = [s["vehicles"][leader][1] for s in scenes if leader in s["vehicles"]]
    accel = min([(b - a) / dt for a, b in itertools.pairwise(speeds)], default=0.0)
    first = scenes[0]
    was_elsewhere = leader in first["vehicles"] and not _same_lane(first["vehicles"][leader][0], first["ego_lane"])
    cut_in = was_elsewhere and _same_lane(first["ego_lane"], now["ego_lane"]) and now["gap"] < CUT_IN_GAP
    return speeds[-1], min(accel, 0.0), cut_in


def window_indices(length: int, window: int, stride: int) -> list[int]:
    """Indices of a window's frames among the ``length`` recorded so far, oldest first: the last one and the
    ``window - 1`` before it, ``stride`` frames apart; before the episode's start the first frame repeats.

    Example:
        >>> window_indices(9, 4, 5), window_indices(3, 4, 1)
        ([0, 0, 3, 8], [0, 0, 1, 2])
    """
    return [max(0, length - 1 - (window - 1 - i) * stride) for i in range(window)]


def _vehicle_ahead(env: Any) -> Any | None:
    """The vehicle nearest ahead of the ego car: its own lane first, then any lane, within :data:`STALL_SEARCH`."""
    unwrapped = env.unwrapped
    ego = unwrapped.vehicle
    leader, _ = unwrapped.road.neighbour_vehicles(ego, ego.lane_index)
    ahead = [(ego.lane_distance_to(v), v) for v in unwrapped.road.vehicles
             if v is not ego and hasattr(v, "target_speed") and 0 < ego.lane_distance_to(v) < STALL_SEARCH]
    if leader is None or not 0 < ego.lane_distance_to(leader) < STALL_SEARCH:
        leader = min(ahead, key=lambda pair: pair[0])[1] if ahead else None
    return leader


def stall_vehicle_ahead(env: Any) -> bool:
    """Make the vehicle nearest ahead of the ego car (:func:`_vehicle_ahead`) brake to a standstill and stay in
    its lane; False when there is none.

    highway-env's IDM driver brakes towards its target speed (:data:`STALL_SPEED`, at most 6 m/s²) and crawls
    there, a stopped obstacle for the labels; the traffic behind it brakes or changes lanes around it as for any
    slow leader.
    """
    leader = _vehicle_ahead(env)
    if leader is None:
        return False
    leader.target_speed = STALL_SPEED
    leader.enable_lane_change = False
    return True


def crash_vehicle_ahead(env: Any) -> bool:
    """Mark the vehicle nearest ahead of the ego car (:func:`_vehicle_ahead`) as crashed; False when there is none.

    highway-env then does with it what it does with any crashed vehicle: brakes it to a stop where it is and draws
    it red, a ``crashed_car`` box (:data:`zoo.envs.driving.OBJECT_CLASSES`). Without this, a crashed car is in a
    frame only when the episode ends (the ego car's own crash), or after the rare crash between two other cars:
    too few for a detector to learn the class a gate must not miss.
    """
    vehicle = _vehicle_ahead(env)
    if vehicle is None:
        return False
    vehicle.crashed = True
    return True


def _row(env: Any, obs: dict, frames: list[np.ndarray], scenes: list[dict[str, Any]], step: int, window: int,
         dt: float, stride: int = 1) -> dict[str, Any]:
    _, gap, ttc = _leader_state(env)
    state = obs["vehicle_state"]
    # the dynamics read the window's scenes without the repeats of the first one: evenly spaced, stride apart
    spaced = list(range(len(frames) - 1, -1, -stride))[:window][::-1]
    leader_speed, leader_accel, cut_in = _window_dynamics([scenes[i] for i in spaced], dt * stride)
    crashed = bool(state["crashed"][0] > 0.5)
    row = {"image": frames[-1], "window": [frames[i] for i in window_indices(len(frames), window, stride)],
           "step": step, "gap_to_leader": gap, "time_to_collision": ttc, "speed": float(state["speed"][0]),
           "lateral_offset": float(state["lateral_offset"][0]), "off_road": bool(state["on_road"][0] < 0.5),
           "crashed": crashed, "leader_accel": leader_accel, "cut_in": cut_in,
           "dynamic_risk": dynamic_risk_category(crashed, gap, leader_speed, leader_accel, cut_in, ttc)}
    if "objects" in obs:
        row["objects"] = obs["objects"]
    return row


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse to write a dataset over a non-empty folder unless ``overwrite``."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ZooError(f"{out} exists and is not empty: nothing was written (pass overwrite to replace it)")


def encode_frames(rows: list[dict[str, Any]]) -> None:
    """Replace an episode's frames (``image``, and ``window`` if present) by PNG bytes, each encoded once.

    Handing numpy frames to ``datasets`` would turn every pixel into a Python int first (gigabytes for a
    few thousand rows); PNG bytes are what its ``Image`` feature stores anyway.
    """
    encoded: dict[int, dict[str, Any]] = {}

    def png(frame: np.ndarray) -> dict[str, Any]:
        if id(frame) not in encoded:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="PNG")
            encoded[id(frame)] = {"bytes": buffer.getvalue(), "path": None}
        return encoded[id(frame)]

    for row in rows:
        row["image"] = png(row["image"])
        if "window" in row:
            row["window"] = [png(frame) for frame in row["window"]]


def _policy_actions(env: Any, policy: str) -> tuple[list[int], list[float], int]:
    """``policy``'s meta-actions as ``env``'s action indices, their weights, and the index of IDLE (highway-env's
    meta-action that keeps the target lane and speed)."""
    indexes = env.unwrapped.action_type.actions_indexes
    pairs = [(indexes[name], weight) for name, weight in zip(_META_ACTIONS, _ACTION_PROBS[policy]) if name in indexes]
    return [index for index, _ in pairs], [weight for _, weight in pairs], indexes["IDLE"]


def _recording_rates(preset: Any, frame_rate_hz: float | None) -> tuple[dict[str, Any], int]:
    """(highway-env config override, frames per policy decision) to record ``preset`` at ``frame_rate_hz``.

    The policies decide at the scenario's own meta-action rhythm (highway-env's ``policy_frequency``, 1 Hz on
    highway-fast and merge) and hold IDLE on the frames in between, so a faster recording sees the same
    driving, sampled more densely.
    """
    import gymnasium as gym  # lazy: gymnasium is slow to import
    import highway_env  # noqa: F401  (registers the gymnasium ids); lazy: highway_env is slow to import
    from gymnasium.envs.registration import load_env_creator  # lazy: gymnasium is slow to import

    spec = gym.spec(preset.gym_id)
    defaults = {**load_env_creator(spec.entry_point).default_config(), **spec.kwargs.get("config", {}),
                **preset.config}
    own_hz, simulation_hz = defaults["policy_frequency"], defaults["simulation_frequency"]
    if frame_rate_hz is None or frame_rate_hz == own_hz:
        return {}, 1
    per_decision = frame_rate_hz / own_hz
    if frame_rate_hz > simulation_hz or simulation_hz % frame_rate_hz or per_decision != int(per_decision):
        raise ZooError(f"frame_rate_hz {frame_rate_hz} does not fit scenario {preset.name!r}: it must divide its "
                       f"simulation frequency ({simulation_hz} Hz) and be a multiple of its policy frequency "
                       f"({own_hz} Hz)")
    return {"policy_frequency": frame_rate_hz}, int(per_decision)


def record_episode(scenario: str, seed: int, policy: str, *, window: int = 4, horizon_s: float = 1.0,
                   bev_size: int = 96, max_steps: int = 200, objects: bool = False,
                   frame_rate_hz: float | None = None, decision_windows: bool = False,
                   stall_probability: float = 0.0, crash_probability: float = 0.0) -> list[dict[str, Any]]:
    """Drive one episode with ``policy`` and return its rows (without captions).

    ``objects``: also keep each frame's boxes of the other road users (``objects`` column, see
    :meth:`zoo.envs.driving.DrivingEnv.objects`). ``frame_rate_hz``: frames recorded per simulated second
    (``None``: one per policy decision, the scenario's own rate); ``max_steps`` counts frames.
    ``decision_windows``: a window's frames are one policy decision apart (the rate the env renders windows at
    in training, and the risk describer's), not consecutive recorded frames; its dynamic risk is read over the
    same frames. The same unless ``frame_rate_hz`` is faster than the scenario's policy frequency.
    ``stall_probability``: the chance that the episode stops the vehicle nearest ahead (:func:`stall_vehicle_ahead`)
    at a policy decision drawn from :data:`STALL_STEPS`; drawn from its own generator, so the driving of an
    episode that does not stall is the same as without it.
    ``crash_probability``: the same for :func:`crash_vehicle_ahead` (its own generator and step), column
    ``crash_ahead``: a crashed car stands on the road ahead from that step on.
    """
    from zoo.envs.config import EnvConfig  # lazy: would load gymnasium
    from zoo.envs.driving import DrivingEnv  # lazy: would load highway_env, matplotlib, gymnasium
    from zoo.envs.presets import SCENARIOS  # lazy: would load gymnasium

    preset = SCENARIOS.get(scenario)
    config, per_decision = _recording_rates(preset, frame_rate_hz)
    env = DrivingEnv(EnvConfig(scenario, action="discrete", obs="bev", bev_size=bev_size, objects=objects,
                               config=config))
    rng = random.Random(seed)
    obs, _ = env.reset(seed=seed)
    actions, weights, idle = _policy_actions(env, policy)
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    frames = [obs["pixels"].transpose(1, 2, 0)]
    scenes = [_scene(env)]
    stride = per_decision if decision_windows else 1
    stall_rng = random.Random(f"stall:{seed}")
    stall_at = stall_rng.randint(*STALL_STEPS) * per_decision if stall_rng.random() < stall_probability else None
    crash_rng = random.Random(f"crash:{seed}")
    crash_at = crash_rng.randint(*STALL_STEPS) * per_decision if crash_rng.random() < crash_probability else None
    stalled = crash_ahead = False
    rows = [_row(env, obs, frames, scenes, 0, window, dt, stride) | {"stalled": False, "crash_ahead": False}]
    for step in range(1, max_steps):
        decides = (step - 1) % per_decision == 0
        if step == stall_at:
            stalled = stall_vehicle_ahead(env)
        if step == crash_at:
            crash_ahead = crash_vehicle_ahead(env)
        action = rng.choices(actions, weights=weights)[0] if decides else idle
        obs, _, terminated, truncated, _ = env.step(action)
        frames.append(obs["pixels"].transpose(1, 2, 0))
        scenes.append(_scene(env))
        rows.append(_row(env, obs, frames, scenes, step, window, dt, stride)
                    | {"stalled": stalled, "crash_ahead": crash_ahead})
        if terminated or truncated:
            break
    env.close()
    crash_steps = [r["step"] for r in rows if r["crashed"]]
    first_crash = crash_steps[0] if crash_steps else None
    for row in rows:
        row["collision_within_horizon"] = first_crash is not None and 0 <= (first_crash - row["step"]) * dt <= horizon_s
    return rows


def recorded_episodes(scenarios: list[str], frames: int, rng: random.Random, *, seed: int = 0,
                      validation_every: int = 5, progress: bool = True,
                      **episode: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Drive episodes until about ``frames`` rows are recorded; yield each as ``(split, rows)``.

    Episode ``i`` uses seed ``seed + i`` and the scenarios in turn; its policy is drawn from :data:`POLICIES`
    with ``rng``. Its rows (:func:`record_episode`, which ``episode`` configures) carry ``scenario``,
    ``policy`` and ``episode_seed``; ``split`` is ``"validation"`` when the seed is a multiple of
    ``validation_every``, else ``"train"``.

    Raises:
        ZooError: a scenario without discrete meta-actions, ``frames < 1`` or ``validation_every < 2``.
    """
    from zoo.envs.presets import SCENARIOS  # lazy: would load gymnasium

    for name in scenarios:
        if "discrete" not in SCENARIOS.get(name).action_modes:
            raise ZooError(f"scenario {name!r} has no discrete meta-actions to drive it with")
    if frames < 1 or validation_every < 2:
        raise ZooError(f"need frames >= 1 and validation_every >= 2; got {frames}, {validation_every}")
    recorded = 0
    episode_seed = seed
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("recording BEV frames", total=frames)
        while recorded < frames:
            scenario = scenarios[(episode_seed - seed) % len(scenarios)]
            policy = rng.choice(POLICIES)
            rows = record_episode(scenario, episode_seed, policy, **episode)
            for row in rows:
                row.update(scenario=scenario, policy=policy, episode_seed=episode_seed)
            recorded += len(rows)
            bar.update(task, completed=min(frames, recorded))
            yield "validation" if episode_seed % validation_every == 0 else "train", rows
            episode_seed += 1


def make_bev_captions(scenarios: list[str], frames: int, out: str | Path, *, seed: int = 0, window: int = 4,
                      horizon_s: float = 1.0, bev_size: int = 96, frame_rate_hz: float | None = None,
                      decision_windows: bool = False, objects: bool = False, stall_probability: float = 0.0,
                      validation_every: int = 5, overwrite: bool = False, progress: bool = True):
    """Record about ``frames`` captioned BEV frames over ``scenarios`` and save a ``datasets.DatasetDict``.

    Args:
        scenarios: scenario names (discrete meta-actions drive them).
        frames: total number of rows to record (whole episodes, so slightly more).
        out: folder to save to (``datasets.load_from_disk`` reads it back).
        seed: first episode seed; episode ``i`` uses ``seed + i``.
        window: frames per window (the current one and those before it).
        horizon_s: seconds ahead within which a collision labels a frame as ``collision_within_horizon``.
        bev_size: frame side in pixels.
        frame_rate_hz: frames per simulated second (``None``: one per policy decision, 1 Hz on highway-fast
            and merge); the policies still decide at the scenario's own rate and hold IDLE in between.
        decision_windows: space a window's frames one policy decision apart (see :func:`record_episode`).
        objects: add the ``objects`` column, the simulator's boxes of the other road users in each frame (what
            the oracle attention gate reads).
        stall_probability: the fraction of episodes in which a vehicle ahead brakes to a standstill (column
            ``stalled``; see :func:`record_episode`): the ``stopped_obstacle`` windows a risk describer needs.
        validation_every: episodes whose seed is a multiple of this go to ``validation``.
        overwrite: replace an existing non-empty ``out``.
        progress: show a progress bar.

    Returns:
        The ``DatasetDict`` with ``train`` and ``validation`` splits (those that got episodes).
    """
    import datasets  # lazy: datasets is slow to import

    from zoo.envs.driving import (  # lazy: would load highway_env, matplotlib, gymnasium
        MAX_OBJECTS,
        OBJECT_FIELDS,
    )

    if window < 1:
        raise ZooError(f"need window >= 1, got {window}")
    if not 0.0 <= stall_probability <= 1.0:
        raise ZooError(f"stall_probability must be within [0, 1], got {stall_probability}")
    out = Path(out)
    check_output_folder(out, overwrite)
    rng = random.Random(seed)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    for split, rows in recorded_episodes(scenarios, frames, rng, seed=seed, validation_every=validation_every,
                                         progress=progress, window=window, horizon_s=horizon_s, bev_size=bev_size,
                                         frame_rate_hz=frame_rate_hz, decision_windows=decision_windows,
                                         objects=objects, stall_probability=stall_probability):
        encode_frames(rows)
        for row in rows:
            row["risk"] = risk_category(row["crashed"], row["collision_within_horizon"],
                                        row["time_to_collision"], row["off_road"])
            row["caption"] = rng.choice(CAPTIONS[row["risk"]])
            row["dynamic_caption"] = rng.choice(DYNAMIC_CAPTIONS[row["dynamic_risk"]])
        splits[split].extend(rows)
    features = datasets.Features({
        "image": datasets.Image(), "window": datasets.Sequence(datasets.Image()), "caption": datasets.Value("string"),
        "risk": datasets.ClassLabel(names=list(CAPTIONS)), "crashed": datasets.Value("bool"),
        "collision_within_horizon": datasets.Value("bool"), "time_to_collision": datasets.Value("float32"),
        "gap_to_leader": datasets.Value("float32"), "lateral_offset": datasets.Value("float32"),
        "off_road": datasets.Value("bool"), "speed": datasets.Value("float32"), "step": datasets.Value("int32"),
        "episode_seed": datasets.Value("int64"), "scenario": datasets.Value("string"),
        "policy": datasets.Value("string"), "leader_accel": datasets.Value("float32"),
        "cut_in": datasets.Value("bool"), "dynamic_risk": datasets.ClassLabel(names=list(DYNAMIC_CAPTIONS)),
        "dynamic_caption": datasets.Value("string"), "stalled": datasets.Value("bool"),
        "crash_ahead": datasets.Value("bool"),
        **({"objects": datasets.Array2D((MAX_OBJECTS, len(OBJECT_FIELDS)), "float32")} if objects else {}),
    })
    dataset = datasets.DatasetDict({  # a split no episode went to is left out (a short held-out recording)
        name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items() if rows})
    dataset.save_to_disk(str(out))
    return dataset


def record_bev_captions(*, scenarios: tuple[str, ...] = ("highway-fast",), frames: int, out: str, seed: int = 0,
                        window: int = 4, horizon: float = 1.0, bev_size: int = 96, frame_rate: float | None = None,
                        decision_windows: bool = False, objects: bool = False, stall: float = 0.0,
                        validation_every: int = 5, overwrite: bool = False) -> None:
    """BEV frames and windows with ground truth and captions.

    Drive scenarios with a mix of policies (collisions are common) and save a Hugging Face dataset of BEV frames,
    frame windows, simulator ground truth and templated captions, split train/validation by episode seed.

    Args:
        scenarios: scenarios driven
        frames: rows to record (whole episodes)
        out: folder for the dataset (datasets.load_from_disk)
        seed: first episode seed
        window: frames per window
        horizon: seconds ahead for collision_within_horizon
        bev_size: BEV frame size, pixels
        frame_rate: frames per simulated second (default: one per policy decision, 1 Hz on highway-fast and
            merge); the policies still decide at that rate and hold IDLE in between
        decision_windows: space a window's frames one policy decision apart (the rate the env renders windows at
            in training) rather than one recorded frame apart
        objects: add the simulator's boxes of the other road users (column objects: the oracle gate's input)
        stall: fraction of episodes in which a vehicle ahead brakes to a standstill (stopped obstacles; column
            stalled)
        validation_every: episodes whose seed is a multiple of this go to validation
        overwrite: replace a non-empty --out folder
    """
    dataset = make_bev_captions(list(scenarios), frames, out, seed=seed, window=window, horizon_s=horizon,
                                bev_size=bev_size, frame_rate_hz=frame_rate, decision_windows=decision_windows,
                                objects=objects, stall_probability=stall, validation_every=validation_every,
                                overwrite=overwrite)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in dataset.items())
    Console(stderr=True).print(f"wrote {out}: {sizes} rows")
