"""``DetectorTraining``: train the zoo's BEV detector on the simulator's ground-truth boxes.

The model (:class:`zoo.perception.BEVCenterNet`) is selected on the validation split by the F1 of its
boxes at IoU 0.5. At the end of the fit the best model is scored on the held-out test episodes (seeds from
``1_000_000``): box precision and recall, and how often the attention gate on its detections agrees
with the same gate on the simulator's boxes. With ``export`` set it is written as a zoo model folder
(``kind: detector``) whose card holds those numbers.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from typing import Any

import torch
from lightning.pytorch import LightningModule
from tensordict import TensorDict

from zoo import keys
from zoo.hub.packaging import write_model_folder
from zoo.perception.centernet import BEVCenterNet, CenterNetConfig
from zoo.perception.detector import Detections, OracleDetector
from zoo.perception.gate import AttentionGate
from zoo.perception.metrics import detection_quality, gate_agreement
from zoo.train.contrastive import Export


class DetectorTraining(LightningModule):
    """Train a :class:`BEVCenterNet` on BEV frames with ground-truth boxes (:class:`zoo.data.bev_boxes.BEVBoxesData`).

    Args:
        config: the architecture (:class:`CenterNetConfig` fields; default: the shipped one).
        learning_rate: AdamW learning rate (cosine decay over the fit).
        weight_decay: AdamW weight decay.
        augment: vertical flips (the road mirrored across lanes) with their boxes.
        gate: the :class:`zoo.perception.AttentionGate` arguments (``critical_classes``, ``roi``,
            ``min_score``) whose agreement with the oracle gate the card reports (default: the gate's defaults).
        export: write the best model as a zoo model folder at the end of the fit.

    Example:
        >>> module = DetectorTraining()  # doctest: +SKIP
        >>> lightning.Trainer(max_epochs=10).fit(module, datamodule=BEVBoxesData(BoxDataset("data/boxes")))  # doctest: +SKIP
    """

    def __init__(self, config: dict[str, Any] | None = None, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, augment: bool = True, gate: dict[str, Any] | None = None,
                 export: Export | dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.export = Export(**export) if isinstance(export, dict) else export
        self.detector = BEVCenterNet(CenterNetConfig(**(config or {})))
        self.gate = AttentionGate(self.detector, **(gate or {}))  # checks the gate's arguments up front
        self.best: dict[str, Any] = {"f1": -1.0, "state": None, "epoch": -1}
        self._val: list[tuple[list[Detections], torch.Tensor]] = []

    # -- the loss ----------------------------------------------------------------------------------------
    def augment(self, frames: torch.Tensor, objects: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.hparams.augment:
            return frames, objects
        flip = torch.rand(len(frames), device=frames.device) < 0.5
        height = frames.shape[-2]
        flipped = objects.clone()
        flipped[..., 1], flipped[..., 3] = height - objects[..., 3], height - objects[..., 1]
        return (torch.where(flip[:, None, None, None], frames.flip(-2), frames),
                torch.where(flip[:, None, None], flipped, objects))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        frames, objects = self.augment(*batch)
        losses = self.detector.loss(self.detector(frames), self.detector.targets(objects, tuple(frames.shape[-2:])))
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True)
        return losses["loss"]

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.detector.parameters(), lr=self.hparams.learning_rate,
                                      weight_decay=self.hparams.weight_decay)
        steps = self.trainer.estimated_stepping_batches
        return {"optimizer": optimizer, "lr_scheduler": {
            "scheduler": torch.optim.lr_scheduler.OneCycleLR(optimizer, self.hparams.learning_rate, total_steps=steps),
            "interval": "step"}}

    # -- model selection on the validation split --------------------------------------------------------
    def validation_step(self, batch, batch_idx: int) -> None:
        frames, objects = batch
        self._val.append((self.detector.detect_frames(frames), objects.cpu()))

    def on_validation_epoch_end(self) -> None:
        predicted = [d for chunk, _ in self._val for d in chunk]
        objects = torch.cat([o for _, o in self._val]) if self._val else torch.empty(0, 1, 6)
        self._val.clear()
        if self.trainer.sanity_checking or not predicted:
            return
        quality = self.quality(predicted, objects, predicted[0].image_size)
        self.log_dict({f"val/{k}": quality[k] for k in ("precision", "recall", "f1", "gate_agreement")},
                      prog_bar=True)
        if quality["f1"] > self.best["f1"]:
            self.best = {"f1": quality["f1"], "epoch": self.current_epoch,
                         "state": copy.deepcopy(self.detector.state_dict())}

    def quality(self, predicted: list[Detections], objects: torch.Tensor,
                image_size: tuple[int, int]) -> dict[str, float]:
        """Box precision/recall (IoU 0.5) and gate agreement of ``predicted`` against ground-truth ``objects``."""
        truth = OracleDetector(image_size[0]).detect(TensorDict({keys.OBJECTS: objects}, batch_size=[len(objects)]))
        return {**detection_quality(predicted, truth, self.detector.classes, min_score=self.gate.min_score),
                **gate_agreement(self.gate, predicted, truth), "frames": float(len(objects))}

    # -- the end of the fit: the best model on held-out episodes, exported with its card ---------------
    def on_fit_end(self) -> None:
        if self.best["state"] is not None:
            self.detector.load_state_dict(self.best["state"])
        self.detector.eval()
        if self.export is None:
            return
        # the frames the fit validated on (the datamodule's in-memory snapshot, not the files on disk, which
        # another process may have recorded again meanwhile), so the card's validation F1 is the selected one
        data = self.trainer.datamodule
        scored = {"validation": data.tensors("validation")}
        if "test" in data.splits:  # the held-out episodes, all together and per scenario
            scored["test"] = data.tensors("test")
            scored.update({f"test/{name}": data.tensors("test", name) for name in data.scenarios("test")})
        results = {}
        for split, rows in scored.items():
            frames, objects = rows.tensors
            results[split] = self.quality(self.detector.detect_frames(frames), objects, tuple(frames.shape[-2:]))
        if self.logger is not None:
            final = "test" if "test" in results else "validation"
            self.logger.log_metrics({f"{final}/{k.replace('/', '_')}": v for k, v in results[final].items()})
        export_detector(self, results)


def export_detector(module: DetectorTraining, results: dict[str, dict[str, float]]) -> None:
    """Write ``module``'s detector to ``module.export.folder`` with ``zoo.json`` and ``README.md``."""
    export, data = module.export, module.trainer.datamodule
    card = {
        "name": export.name, "kind": "detector", "summary": export.summary,
        "detector": {"architecture": "bev-centernet", "classes": list(module.detector.classes),
                     "parameters": sum(p.numel() for p in module.detector.parameters())},
        "gate": {"critical_classes": list(module.gate.critical_classes), "min_score": module.gate.min_score,
                 "roi": None if module.gate.roi is None else list(module.gate.roi)},
        "metrics": results,
        "training": {"command": export.command, "epochs": module.current_epoch, "best_epoch": module.best["epoch"],
                     "train_data": asdict(data.train_spec),
                     "test_data": asdict(data.test_spec) if data.test_spec else None},
    }
    write_model_folder(export.folder, module.detector.save, card, render_readme(card, export.notes))


def render_readme(card: dict[str, Any], notes: list[str]) -> str:
    """The human card: what the detector is, its box and gate quality per split (and per test scenario), how to
    train it again. The ROI is the ego lane ahead on highway-fast and merge; on the roundabout and the
    intersection the ego car sits elsewhere in the frame, so there the gate numbers only compare detections."""
    gate, training = card["gate"], card["training"]
    lines = [f"# {card['name']}", "", card["summary"], "", "## Quality", "",
             (f"Boxes matched to the simulator's at IoU >= 0.5 (score >= {gate['min_score']}); the gate "
              f"(critical classes {', '.join(gate['critical_classes'])}, roi {gate['roi']}) on the detector's boxes "
              "against the same gate on the simulator's boxes. The test split's episodes (seeds from "
              f"{(training['test_data'] or {}).get('seed', '—')}) were never used for training or model selection."),
             "", "| split | frames | objects | precision | recall | gate agreement | gate rate (oracle) |",
             "|---|---|---|---|---|---|---|"]
    for split, m in card["metrics"].items():
        lines.append(f"| {split} | {int(m['frames'])} | {int(m['objects'])} | {m['precision']:.3f} | "
                     f"{m['recall']:.3f} | {m['gate_agreement']:.3f} | {m['gate_rate']:.3f} "
                     f"({m['oracle_gate_rate']:.3f}) |")
    final_split = "test" if "test" in card["metrics"] else "validation"
    final = card["metrics"][final_split]
    per_class = ", ".join(f"{name}: precision {final[f'precision/{name}']:.3f}, recall {final[f'recall/{name}']:.3f} "
                          f"({int(final[f'objects/{name}'])} objects)" for name in card["detector"]["classes"])
    lines += ["", f"Per class ({final_split}): {per_class}.", "", "## Training", "",
              f"Train again: `{training['command']}`", "",
              (f"Best epoch {training['best_epoch']} of {training['epochs']}; data: "
               f"`{json.dumps(training['train_data'])}`."), ""]
    lines += [f"{note}\n" for note in notes]
    return "\n".join(lines)
