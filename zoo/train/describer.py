"""``RiskDescriberTraining``: train the zoo's small generative risk describer on simulator frame windows.

The model (:func:`zoo.vlm.architectures.risk_describer_parts`) learns to write the templated description
of a window's dynamic risk (``zoo data bev-captions``' ``dynamic_caption``) with teacher forcing. What it
is for is saying the right risk, so it is measured by describing windows through the same
:class:`zoo.vlm.describer.RiskDescriber` users load, parsing each description back to a risk type
(:func:`zoo.data.bev_captions.parse_dynamic_risk`), and scoring the types: the epoch with the best
balanced accuracy (mean recall over the types) on the validation split is kept. Its prior over the types is
then corrected on the same split (:mod:`zoo.train.type_prior`: a bias per type in the generation config, which
beam search applies), and it is scored on the held-out test episodes next to the majority-class baseline and —
if ``export`` is set — written as a zoo model folder (card kind ``describer``).

Decoding is beam search (``num_beams``): each type has three paraphrased templates, and greedy decoding splits
a type's probability among its paraphrases' first words, so it picks the type whose first word is shared by
the most templates (on the held-out windows of the previous describer, greedy decoding said the right type on
54 % of the windows, beam search with 4 beams on 70 %).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule

from zoo.data.bev_captions import DYNAMIC_CAPTIONS, parse_dynamic_risk
from zoo.train.cards import export_describer
from zoo.train.contrastive import Export
from zoo.train.type_prior import choose_type_biases, sequence_bias, type_log_likelihoods
from zoo.vlm.architectures import risk_describer_parts
from zoo.vlm.describer import RiskDescriber
from zoo.vlm.loading import FrameTransform


def risk_type_scores(predicted: list[str | None], truth: list[str], majority: str) -> dict[str, Any]:
    """Accuracy of predicted risk types against the truth, overall and per type, next to always ``majority``.

    Example:
        >>> risk_type_scores(["clear", None], ["clear", "cut_in"], "clear")["accuracy"]
        0.5
    """
    predicted_arr, truth_arr = np.array([p or "" for p in predicted]), np.array(truth)
    per_type = {}
    for risk in sorted(set(truth)):
        rows = truth_arr == risk
        per_type[risk] = {"windows": int(rows.sum()), "accuracy": float((predicted_arr[rows] == risk).mean()),
                          "majority_baseline": float(risk == majority)}
    return {"windows": len(truth), "accuracy": float((predicted_arr == truth_arr).mean()),
            "balanced_accuracy": float(np.mean([v["accuracy"] for v in per_type.values()])),
            "majority_class": majority, "majority_baseline": float((truth_arr == majority).mean()),
            "unparsed": float(np.mean([p is None for p in predicted])), "per_type": per_type}


class RiskDescriberTraining(LightningModule):
    """Teacher-forced training of a vision-encoder-decoder risk describer on frame windows.

    Args:
        frames: frames per window (the datasets' ``window`` length, K+1).
        size: architecture size (:data:`zoo.vlm.architectures.RISK_DESCRIBER_SIZES`).
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        max_new_tokens: most tokens per generated description when scoring.
        num_beams: beams of the describer's decoding (stored in its generation config).
        type_prior: correct the prior over risk types on the validation split after the fit
            (:mod:`zoo.train.type_prior`).
        export: write the best model as a zoo model folder at the end of the fit.
        seed: initialisation seed.

    Example:
        >>> module = RiskDescriberTraining(frames=4)  # doctest: +SKIP
    """

    def __init__(self, frames: int = 4, size: str = "tiny", learning_rate: float = 1e-3, weight_decay: float = 0.01,
                 max_new_tokens: int = 16, num_beams: int = 4, type_prior: bool = True, export: Export | None = None,
                 seed: int = 0) -> None:
        super().__init__()

        self.save_hyperparameters(ignore=["export"])
        self.export = export
        captions = [c for texts in DYNAMIC_CAPTIONS.values() for c in texts]
        self.model, self.tokenizer, self.image_processor = risk_describer_parts(captions, frames, size, seed)
        self.model.generation_config.num_beams = num_beams
        self.type_biases: dict[str, float] = {}
        self.transform = FrameTransform(self.image_processor)
        self.best: dict[str, Any] = {"score": -1.0, "epoch": -1, "state": None}
        self._val: list[tuple[list[str | None], list[str]]] = []

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.hparams.learning_rate,
                                 weight_decay=self.hparams.weight_decay)

    def _loss(self, batch) -> torch.Tensor:
        windows, caption_index, *_ = batch
        captions = self.trainer.datamodule.captions
        texts = [captions[i] + " [EOS]" for i in caption_index.tolist()]
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
        labels = tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, -100)
        n, k, c, h, w = windows.shape
        pixels = self.transform(windows.reshape(n, k * c, h, w))
        return self.model(pixel_values=pixels, labels=labels).loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def describer(self):
        """The model in training as a :class:`zoo.vlm.describer.RiskDescriber` (no cache: weights change)."""
        return RiskDescriber(self.model, self.tokenizer, "captioner", prompt="", max_new_tokens=self.hparams.max_new_tokens,
                             timeout_s=None, cache_size=0, frame_transform=self.transform, source="training")

    def _types(self, windows: torch.Tensor) -> list[str | None]:
        descriptions = self.describer().describe(windows)
        self.model.train(self.training)
        return [parse_dynamic_risk(d) for d in descriptions]

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), prog_bar=True)
        names = self.trainer.datamodule.risk_names
        self._val.append((self._types(batch[0]), [names[i] for i in batch[2].tolist()]))

    def on_validation_epoch_end(self) -> None:
        predicted = [p for chunk, _ in self._val for p in chunk]
        truth = [t for _, chunk in self._val for t in chunk]
        self._val.clear()
        if self.trainer.sanity_checking or not truth:
            return
        scores = risk_type_scores(predicted, truth, "clear")  # the baseline is not logged here
        self.log_dict({"val/accuracy": scores["accuracy"], "val/balanced_accuracy": scores["balanced_accuracy"]},
                      prog_bar=True)
        if scores["balanced_accuracy"] > self.best["score"]:
            self.best = {"score": scores["balanced_accuracy"], "epoch": self.current_epoch,
                         "state": copy.deepcopy(self.model.state_dict())}

    def on_fit_end(self) -> None:
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])
        data = self.trainer.datamodule
        names = data.risk_names
        train_types = [names[i] for i in data.splits["train"][data.risk_column]]
        majority = max(set(train_types), key=train_types.count)
        if self.hparams.type_prior:
            self._correct_type_prior(majority)
        results = {}
        for split in ("validation", "test"):
            if split not in data.splits:
                continue
            windows, _, risk, _ = data.tensors(split).tensors
            predicted = [t for chunk in windows.split(256) for t in self._types(chunk.to(self.device))]
            results[split] = risk_type_scores(predicted, [names[i] for i in risk.tolist()], majority)
        self.results = results
        if self.export is not None:
            export_describer(self, results)

    @torch.no_grad()
    def _correct_type_prior(self, majority: str) -> None:
        """Choose the per-type biases on the validation split and put them in the generation config."""
        data = self.trainer.datamodule
        windows, _, risk, _ = data.tensors("validation").tensors
        _, k, c, h, w = windows.shape
        pixels = torch.cat([self.transform(chunk.to(self.device).reshape(-1, k * c, h, w))
                            for chunk in windows.split(256)])
        types = list(DYNAMIC_CAPTIONS)
        self.model.eval()
        scores = type_log_likelihoods(self.model, self.tokenizer, pixels, DYNAMIC_CAPTIONS)
        self.model.train(self.training)
        truth = np.array([types.index(data.risk_names[i]) for i in risk.tolist()])
        biases = choose_type_biases(scores, truth, types.index(majority))
        self.type_biases = {t: float(b) for t, b in zip(types, biases, strict=True)}
        self.model.generation_config.sequence_bias = sequence_bias(
            self.tokenizer, self.model.config.decoder_start_token_id, DYNAMIC_CAPTIONS, self.type_biases) or None
