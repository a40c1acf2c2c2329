"""How well a detector and its gate match the simulator: box precision/recall at an IoU, gate agreement."""

from __future__ import annotations

import torch

from zoo.perception.detector import Detections
from zoo.perception.gate import AttentionGate


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of boxes ``a [N, 4]`` and ``b [M, 4]`` (x1, y1, x2, y2): ``[N, M]``."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def detection_quality(predicted: list[Detections], truth: list[Detections], classes: tuple[str, ...], *,
                      iou: float = 0.5, min_score: float = 0.5) -> dict[str, float]:
    """Precision, recall and F1 of ``predicted`` against ``truth``, overall and per class.

    A prediction (score >= ``min_score``) is a true positive when it overlaps a not yet matched true box of
    its class with an IoU of at least ``iou``; predictions are matched greedily, highest score first.

    Returns:
        ``precision``, ``recall``, ``f1``, ``objects`` (true boxes), and ``precision/<class>``,
        ``recall/<class>``, ``objects/<class>`` for each class (NaN where undefined).
    """
    counts = {name: [0, 0, 0] for name in classes}  # true positives, predictions, true boxes
    for pred, true in zip(predicted, truth, strict=True):
        for name in classes:
            keep = torch.tensor([label == name for label in pred.labels], dtype=torch.bool)
            keep &= pred.scores >= min_score
            boxes = pred.boxes[keep][pred.scores[keep].argsort(descending=True)]
            targets = true.boxes[torch.tensor([label == name for label in true.labels], dtype=torch.bool)]
            matched = torch.zeros(len(targets), dtype=torch.bool)
            overlaps = box_iou(boxes, targets)
            for row in overlaps:
                row = row.masked_fill(matched, -1.0)
                if len(row) and row.max() >= iou:
                    matched[row.argmax()] = True
            counts[name][0] += int(matched.sum())
            counts[name][1] += len(boxes)
            counts[name][2] += len(targets)

    def ratios(tp: int, predictions: int, objects: int) -> tuple[float, float]:
        return (tp / predictions if predictions else float("nan"), tp / objects if objects else float("nan"))

    tp, predictions, objects = (sum(c[i] for c in counts.values()) for i in range(3))
    precision, recall = ratios(tp, predictions, objects)
    out = {"precision": precision, "recall": recall, "objects": float(objects),
           "f1": 2 * tp / (predictions + objects) if predictions + objects else float("nan")}
    for name, (tp, predictions, objects) in counts.items():
        out[f"precision/{name}"], out[f"recall/{name}"] = ratios(tp, predictions, objects)
        out[f"objects/{name}"] = float(objects)
    return out


def gate_agreement(gate: AttentionGate, predicted: list[Detections], truth: list[Detections]) -> dict[str, float]:
    """How often ``gate`` on ``predicted`` decides as the same gate on the simulator's boxes ``truth`` does.

    Returns:
        ``gate_agreement`` (fraction of frames with the same decision), ``gate_rate`` and ``oracle_gate_rate``
        (fractions gated on), ``gate_precision`` and ``gate_recall`` (of the oracle's "on" frames).
    """
    ours = torch.tensor([gate.is_open(d) for d in predicted])
    oracle = torch.tensor([gate.is_open(d) for d in truth])
    both = float((ours & oracle).sum())
    return {"gate_agreement": float((ours == oracle).float().mean()), "gate_rate": float(ours.float().mean()),
            "oracle_gate_rate": float(oracle.float().mean()),
            "gate_precision": both / float(ours.sum()) if ours.any() else float("nan"),
            "gate_recall": both / float(oracle.sum()) if oracle.any() else float("nan")}
