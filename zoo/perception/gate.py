"""``AttentionGate``: the dynamic pathway's switch (docs/method.md#attention-gate).

``g_t = 1`` when the detector finds an object of a critical class with a score of at least ``min_score``
whose box overlaps the region of interest (the whole frame when ``roi`` is ``None``); else 0, and the
dynamic pathway's large model does not run for that frame.

The region of interest is given in fractions of the frame, ``(x1, y1, x2, y2)`` with x to the right and y
down. highway-env draws the ego car at 30 % of the frame's width and 50 % of its height; the frame keeps the
world's orientation, so on the highway and merge scenarios (traffic to the right) "ahead" is to the right
of the ego car. The default region, ``(0.3, 0.455, 0.7, 0.545)``, is the ego lane ahead: from the ego car's
centre 40 % of the frame forward (24 m of the default 60 m frame) and ±4.5 % of it sideways (±2.7 m, the
ego lane plus a little of the neighbours', so a car cutting in counts).

The ego lane ahead misses danger: on held-out highway-fast episodes the gate on it is closed on a fifth of the
frames within 1 s of a collision (cars from the side and from behind). :data:`REGIONS` names the regions the zoo
measured, and :data:`SCENARIO_REGIONS` the one each scenario's gate should watch, chosen by
``benchmarks/gate_roi.py`` on training-seed recordings (docs/perception.md#regions-of-interest-per-scenario).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from zoo.errors import ZooError
from zoo.perception.detector import Detections, Detector, load_detector
from zoo.registry import unknown_choice

#: the zoo's shipped BEV detector, the gate's default
DEFAULT_DETECTOR = "bev-detector-tiny.sim"
#: the ego lane ahead on highway-env's BEV frame (see the module docstring)
DEFAULT_ROI = (0.3, 0.455, 0.7, 0.545)
#: named regions of interest, ``(x1, y1, x2, y2)`` in fractions of the frame (the default 96 px frame spans 60 m,
#: so 0.1 is 6 m); ``None`` is the whole frame. highway-env draws the ego car at (0.3, 0.5) on highway-fast,
#: highway and merge, at (0.5, 0.6) on the roundabout and the intersection (their ``centering_position``)
REGIONS: dict[str, tuple[float, float, float, float] | None] = {
    "ego-lane-ahead": DEFAULT_ROI,
    "road-ahead": (0.3, 0.38, 0.7, 0.62),  # the ego lane and about a lane and a half either side, 24 m ahead
    "around-ego": (0.1, 0.3, 0.5, 0.7),  # 12 m around the ego car, any direction (ego at (0.3, 0.5))
    "around-ego-wide": (0.0, 0.2, 0.6, 0.8),  # 18 m around it (ego at (0.3, 0.5))
    "around-ego-centred": (0.3, 0.4, 0.7, 0.8),  # 12 m around the ego car drawn at (0.5, 0.6)
    "around-ego-centred-wide": (0.2, 0.3, 0.8, 0.9),  # 18 m around it
    "whole-frame": None,
}
#: the region each scenario's gate should watch: the fewest gated frames among the regions whose gate opens on
#: >= 90 % of the frames within 1 s of a collision, on training-seed recordings (benchmarks/gate_roi.py;
#: docs/perception.md#regions-of-interest-per-scenario). ``highway`` has highway-fast's layout, not measured apart.
SCENARIO_REGIONS: dict[str, str] = {
    "highway": "around-ego", "highway-fast": "around-ego", "merge": "around-ego",
    "roundabout": "around-ego-centred", "intersection": "around-ego-centred",
}


class AttentionGate:
    """Gate the dynamic pathway on detections of critical objects.

    Args:
        detector: a :class:`Detector` or a name for :func:`zoo.perception.load_detector` (``"oracle"``, a zoo
            detector name, folder or ``models:/`` URI).
        critical_classes: classes that open the gate (a subset of the detector's classes).
        roi: region of interest ``(x1, y1, x2, y2)`` in fractions of the frame, a name of :data:`REGIONS`
            (``"around-ego"``), or ``None``: the whole frame.
        min_score: detections scoring lower are ignored.

    Example:
        >>> gate = AttentionGate("oracle", critical_classes=("car", "crashed_car"))
        >>> env = zoo.make_env("highway-fast", obs="bev", objects=True)  # doctest: +SKIP
        >>> gate(env.reset())  # doctest: +SKIP
        tensor([True])
    """

    def __init__(self, detector: Detector | str = DEFAULT_DETECTOR,
                 critical_classes: tuple[str, ...] | list[str] = ("car", "crashed_car"),
                 roi: tuple[float, float, float, float] | list[float] | str | None = DEFAULT_ROI,
                 min_score: float = 0.5) -> None:
        self.detector_source = detector if isinstance(detector, str) else None
        self.detector = load_detector(detector)
        self.critical_classes = tuple(critical_classes)
        if not self.critical_classes:
            raise ZooError(f"critical_classes is empty; choose among {', '.join(self.detector.classes)}")
        for name in self.critical_classes:
            if name not in self.detector.classes:
                raise ZooError(unknown_choice("critical class", name, list(self.detector.classes)))
        if isinstance(roi, str):
            if roi not in REGIONS:
                raise ZooError(unknown_choice("region of interest", roi, list(REGIONS)))
            roi = REGIONS[roi]
        self.roi = None if roi is None else tuple(float(v) for v in roi)
        if self.roi is not None and not (len(self.roi) == 4 and 0 <= self.roi[0] < self.roi[2] <= 1
                                         and 0 <= self.roi[1] < self.roi[3] <= 1):
            raise ZooError(f"roi must be (x1, y1, x2, y2) in fractions of the frame with 0 <= x1 < x2 <= 1 and "
                           f"0 <= y1 < y2 <= 1, or None for the whole frame; got {roi}")
        if not 0 <= min_score <= 1:
            raise ZooError(f"min_score must be in [0, 1], got {min_score}")
        self.min_score = float(min_score)
        self.calls = 0
        self.opened = 0

    def __call__(self, next_state: TensorDictBase) -> torch.Tensor:
        """``g_t`` of each frame of ``next_state``: bool, shaped ``[*batch, 1]``."""
        detections = self.detector.detect(next_state)
        gate = torch.tensor([self.is_open(d) for d in detections], dtype=torch.bool)
        self.calls += len(gate)
        self.opened += int(gate.sum())
        return gate.reshape(*next_state.batch_size, 1)

    def is_open(self, detections: Detections) -> bool:
        """Whether one frame's detections open the gate."""
        boxes = detections.boxes
        keep = torch.tensor([label in self.critical_classes for label in detections.labels], dtype=torch.bool)
        keep &= detections.scores >= self.min_score
        if self.roi is not None and len(boxes):
            height, width = detections.image_size
            x1, y1, x2, y2 = (v * s for v, s in zip(self.roi, (width, height, width, height)))
            keep &= (boxes[:, 0] < x2) & (boxes[:, 2] > x1) & (boxes[:, 1] < y2) & (boxes[:, 3] > y1)
        return bool(keep.any())

    def stats(self) -> dict[str, float]:
        """``gate_rate`` (fraction of frames gated on so far, 0 before any) and ``gate_calls`` (frames seen)."""
        return {"gate_rate": self.opened / self.calls if self.calls else 0.0, "gate_calls": float(self.calls)}

    def reset_stats(self) -> None:
        """Start counting afresh (e.g. per logging interval)."""
        self.calls = self.opened = 0

    def config(self) -> dict[str, Any]:
        """This gate as a recipe entry: ``{"class_path": ..., "init_args": {...}}``.

        Raises:
            ZooError: the gate was built from a detector object rather than a name, which a recipe cannot spell.
        """
        if self.detector_source is None:
            raise ZooError("this AttentionGate was given a detector object; build it from a detector name "
                           "(e.g. 'oracle' or a zoo detector) to write it as a recipe entry")
        return {"class_path": "zoo.perception.AttentionGate",
                "init_args": {"detector": self.detector_source, "critical_classes": list(self.critical_classes),
                              "roi": None if self.roi is None else list(self.roi), "min_score": self.min_score}}
