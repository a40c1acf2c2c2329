"""Hierarchical reward synthesis (VLM-RL): semantic reward → desired speed → shaping.

The method: docs/method.md#hierarchical-reward-synthesis.

Phase I: ``R_norm = (clip(R, θ_min, θ_max) − θ_min) / (θ_max − θ_min)`` of the semantic reward ``R``
(CLG, or static + dynamic pathways). Phase II, with the vehicle state::

    v_des       = R_norm · v_target
    r_speed     = 1 − |v − v_des| / v_target
    f_center    = max(1 − d_center / d_max, 0)
    f_angle     = max(1 − |Δheading| / (π/2), 0)
    f_stability = max(1 − std(d_center over the last ~2 s) / σ_max, 0)
    R_shaping   = r_speed · f_center · f_angle · f_stability

Final: ``R_penalty`` on a catastrophic event (collision; optionally off-road or over ``over_speed`` m/s),
else ``R_shaping``. ``collision_penalty=0`` is the paper's no-reward-after-collision setting.

Constants adapted to highway-env (the paper's are CARLA's, in brackets; see docs/method.md#constants):
``v_target`` 30 m/s [25 km/h] — the top of highway-env's rewarded speed range, so a clear road asks for
its fastest rewarded speed; ``d_max`` 2 m [3 m] — half of highway-env's 4 m lane; ``σ_max`` 0.4 m
[0.4 m] over 2 s [30 steps at 15 fps]; ``θ`` window: the semantic head's calibrated window from its model's
card (``zoo reward calibrate --write-card``), else VLM-RL's [−0.03, 0], which is ViT-bigG's.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase

from zoo import keys
from zoo.errors import ZooError
from zoo.rewards.base import RewardModule

#: VLM-RL's normalisation window for OpenCLIP ViT-bigG (docs/method.md#normalisation-window): used when no
#: calibrated window is known
VIT_BIGG_WINDOW = (-0.03, 0.0)


class HierarchicalReward(RewardModule):
    """VLM-RL's reward: a semantic reward module shaped by the vehicle state.

    Args:
        semantic: reward module whose ``reward`` is the raw semantic score ``R`` (e.g. :class:`CLGReward`).
        theta_min: lower end of the normalisation window (default: the lower end of the semantic head's
            calibrated window, from its model's card; without one VLM-RL's ViT-bigG value −0.03).
        theta_max: upper end of the normalisation window (default: likewise; without one 0).
        v_target: speed (m/s) asked for when ``R_norm = 1``.
        d_max: lateral offset (m) at which the centring factor reaches 0.
        heading_max: heading error (rad) at which the angle factor reaches 0.
        sigma_max: std of the lateral offset (m) at which the stability factor reaches 0.
        collision_penalty: reward on collision (``0``: no reward after collision).
        off_road_penalty: penalise leaving the road like a collision.
        over_speed: speed (m/s) above which the step is penalised like a collision (``None``: never).

    Example:
        >>> reward = HierarchicalReward(CLGReward("path/to/clip"), theta_min=-0.05, theta_max=0.05)  # doctest: +SKIP
    """

    terms = ("semantic", "semantic_norm", "desired_speed", "r_speed", "f_center", "f_angle", "f_stability",
             "shaping", "catastrophic")

    def __init__(self, semantic: RewardModule, theta_min: float | None = None, theta_max: float | None = None,
                 v_target: float = 30.0, d_max: float = 2.0, heading_max: float = math.pi / 2,
                 sigma_max: float = 0.4, collision_penalty: float = -10.0, off_road_penalty: bool = True,
                 over_speed: float | None = None) -> None:
        super().__init__()
        calibrated_min, calibrated_max = calibrated_window(semantic)
        theta_min = calibrated_min if theta_min is None else theta_min
        theta_max = calibrated_max if theta_max is None else theta_max
        if not theta_max > theta_min:
            raise ZooError(f"theta_max ({theta_max}) must be greater than theta_min ({theta_min})")
        for name, value in (("v_target", v_target), ("d_max", d_max), ("heading_max", heading_max),
                            ("sigma_max", sigma_max)):
            if value <= 0:
                raise ZooError(f"{name} must be positive, got {value}")
        self.semantic = semantic
        self.needs_pixels = semantic.needs_pixels
        self.frame_window = semantic.frame_window
        self.needs_objects = semantic.needs_objects
        self.terms = HierarchicalReward.terms + tuple(f"semantic_{t}" for t in semantic.terms)
        self.theta_min, self.theta_max = theta_min, theta_max
        self.v_target, self.d_max, self.heading_max, self.sigma_max = v_target, d_max, heading_max, sigma_max
        self.collision_penalty, self.off_road_penalty, self.over_speed = collision_penalty, off_road_penalty, over_speed

    def normalize(self, semantic: torch.Tensor) -> torch.Tensor:
        """Phase I: clip to [θ_min, θ_max] and scale to [0, 1]."""
        return (semantic.clamp(self.theta_min, self.theta_max) - self.theta_min) / (self.theta_max - self.theta_min)

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        semantic_values = self.semantic.compute(next_state)
        semantic = semantic_values.pop(keys.REWARD)
        r_norm = self.normalize(semantic)
        speed = next_state.get(keys.SPEED)
        desired = r_norm * self.v_target
        r_speed = 1 - (speed - desired).abs() / self.v_target
        f_center = (1 - next_state.get(keys.LATERAL_OFFSET).abs() / self.d_max).clamp(min=0)
        f_angle = (1 - next_state.get(keys.HEADING_ERROR).abs() / self.heading_max).clamp(min=0)
        f_stability = (1 - next_state.get(keys.LATERAL_OFFSET_STD) / self.sigma_max).clamp(min=0)
        shaping = r_speed * f_center * f_angle * f_stability
        catastrophic = next_state.get(keys.CRASHED) > 0.5
        if self.off_road_penalty:
            catastrophic = catastrophic | (next_state.get(keys.ON_ROAD) < 0.5)
        if self.over_speed is not None:
            catastrophic = catastrophic | (speed > self.over_speed)
        reward = torch.where(catastrophic, torch.full_like(shaping, self.collision_penalty), shaping)
        return {keys.REWARD: reward, "semantic": semantic, "semantic_norm": r_norm, "desired_speed": desired,
                "r_speed": r_speed, "f_center": f_center, "f_angle": f_angle, "f_stability": f_stability,
                "shaping": shaping, "catastrophic": catastrophic.float(),
                **{f"semantic_{k}": v for k, v in semantic_values.items()}}

    def _shared_members(self) -> list:
        return self.semantic._shared_members()

    def stats(self) -> dict[str, float]:
        return self.semantic.stats()


def calibrated_window(semantic: RewardModule) -> tuple[float, float]:
    """The window measured for ``semantic``'s head and backbone (its model card's ``calibration``), else
    :data:`VIT_BIGG_WINDOW`."""
    window = (getattr(semantic, "calibration", None) or {}).get("window")
    return (float(window[0]), float(window[1])) if window else VIT_BIGG_WINDOW
