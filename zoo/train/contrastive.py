"""``ContrastiveRewardTraining``: train or fine-tune a dual-encoder reward model on captioned BEV frames.

Two image–text losses, weighted: the caption loss is CLIP's, adapted to a small caption vocabulary (each
frame is classified among all captions, image → text, its target spread evenly over the paraphrases of its
risk category; each caption in the batch picks the frames that share its category, text → image); the goal
loss classifies each frame between the papers' two CLG prompts (docs/method.md#prompts). The model is selected
on the validation split by what the reward is for: the AUROC with which the CLG reward (the papers' exact
prompts) separates frames that precede a collision within 1 s from safe ones. At the end of the fit the
best model is scored on the held-out test episodes, next to the same architecture untrained, and — if
``export`` is set — written as a zoo model folder with its card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule

from zoo.data.bev_captions import SEVERITY
from zoo.data.datamodule import frames_tensor
from zoo.errors import ZooError
from zoo.evaluation.risk_retrieval import risk_retrieval
from zoo.hub.resolve import resolve_model
from zoo.train.cards import export_trained
from zoo.vlm import load_dual_encoder


@dataclass
class Export:
    """Where and under which name a trained reward model is written (a zoo model folder).

    Attributes:
        folder: destination (replaced only once the new folder is complete).
        name: the card's ``family.tag``.
        summary: the card's one-line summary.
        command: how to train it again (goes into the card).
    """

    folder: str
    name: str
    summary: str = ""
    command: str = ""
    notes: list[str] = field(default_factory=list)


class ContrastiveRewardTraining(LightningModule):
    """Contrastive training of a dual encoder for CLG rewards.

    Args:
        model: any source :func:`zoo.hub.resolve.resolve_model` takes (zoo name, folder, ``models:/`` URI, hub id).
        pretrained: start from the trained weights (``False``: the zoo architecture freshly initialised).
        quantization: ``{"bits": 4|8}`` for the frozen base (QLoRA with ``lora``).
        lora: train LoRA adapters (:class:`zoo.vlm.LoraSpec` fields) instead of the image tower.
        train_text: also train the text tower (otherwise only its projection is trained).
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        augment: vertical flips (the road mirrored across lanes) and shifts of up to ``max_shift_px`` pixels.
        max_shift_px: largest shift of the augmentation (0: flips only).
        ordinal_softness: how far a frame's target spreads to captions of neighbouring severity
            (:data:`zoo.data.bev_captions.SEVERITY`; weight ``exp(−Δseverity / softness)``; 0, the default:
            own category only). Meant to place imminent danger between the clear road and the collision,
            the order CLG measures along; in our runs 0.7 learned slower than 0.
        goal_loss_weight: weight of a second loss that classifies each frame between the CLG goals (the
            papers' exact l_pos and l_neg prompts): frames of severity 2 or more (imminent danger, collision,
            off-road; :data:`zoo.data.bev_captions.SEVERITY`) towards l_neg, the others towards l_pos. The contrastive
            loss alone keeps "about to collide" as far from "collided" as from "clear", while the CLG reward
            ranks frames by exactly that difference; 0 turns it off.
        caption_loss_weight: weight of the contrastive caption loss. ``drive-clip-bev-tiny`` trains with 0: on
            5 Hz highway frames the caption loss held the validation AUROC at 0.73 at best (goal weight 4),
            while the goal loss alone reached 0.95 after two epochs (docs/design-notes.md).
        export: write the best model as a zoo model folder at the end of the fit.
        seed: seed of the untrained architecture (``pretrained=False``).

    Example:
        >>> module = ContrastiveRewardTraining("drive-clip-bev-tiny", pretrained=False)  # doctest: +SKIP
        >>> lightning.Trainer(max_epochs=10).fit(module, datamodule=BEVCaptionsData(...))  # doctest: +SKIP
    """

    def __init__(self, model: str = "drive-clip-bev-tiny", pretrained: bool = False,
                 quantization: dict[str, Any] | None = None, lora: dict[str, Any] | None = None,
                 train_text: bool = False, learning_rate: float = 1e-3, weight_decay: float = 0.05,
                 augment: bool = True, max_shift_px: int = 4, ordinal_softness: float = 0.0,
                 goal_loss_weight: float = 0.0, caption_loss_weight: float = 1.0, export: Export | None = None,
                 seed: int = 0) -> None:
        super().__init__()

        self.save_hyperparameters()
        self.export = Export(**export) if isinstance(export, dict) else export
        self.source = resolve_model(model, pretrained=pretrained)
        self.encoder = load_dual_encoder(str(self.source.path), quantization=quantization, lora=lora, device="cpu")
        self.encoder.train()
        trainable = 0
        for name, param in self.encoder.model.named_parameters():
            if lora is not None:
                param.requires_grad_("lora_" in name)
            else:
                param.requires_grad_(train_text or not name.startswith("text_model."))
            trainable += param.numel() if param.requires_grad else 0
        if trainable == 0:
            raise ZooError(f"nothing to train in {model!r} with lora={lora} and train_text={train_text}")
        if goal_loss_weight <= 0 and caption_loss_weight <= 0:
            raise ZooError("no loss to train with: goal_loss_weight and caption_loss_weight are both 0")
        self.best: dict[str, Any] = {"auroc": -1.0, "state": None, "epoch": -1}
        self._val: list[torch.Tensor] = []

    def train(self, mode: bool = True):
        """Train mode, except a frozen text tower: its dropout would blur captions that differ little."""
        super().train(mode)
        if mode and self.hparams.lora is None and not self.hparams.train_text:
            self.encoder.model.text_model.eval()
        return self

    # -- the loss ----------------------------------------------------------------------------------------
    def augment(self, frames: torch.Tensor) -> torch.Tensor:
        if not self.hparams.augment:
            return frames
        flip = torch.rand(len(frames), device=frames.device) < 0.5
        frames = torch.where(flip[:, None, None, None], frames.flip(-2), frames)
        shift = self.hparams.max_shift_px
        dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,)))
        return torch.roll(frames, shifts=(dy, dx), dims=(-2, -1))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        frames, caption, risk, dangerous = batch
        data = self.trainer.datamodule
        images = self.encoder.embed_images(self.augment(frames))
        scale = self.encoder.model.logit_scale.exp().clamp(max=100)
        loss = images.new_zeros(())
        if self.hparams.caption_loss_weight > 0:
            texts = self.encoder.embed_texts(data.captions)
            affinity = self.risk_affinity(data.risk_names).to(risk.device)
            caption_risk = torch.as_tensor(data.caption_risk, device=risk.device)
            # image → text over all captions: the target is the frame's category's paraphrases, and to a lesser
            # degree the categories of neighbouring severity
            loss_image = _soft_cross_entropy(scale * images @ texts.T, affinity[risk][:, caption_risk])
            # text → image: each frame's caption against the batch's frames, weighted the same way
            loss_text = _soft_cross_entropy(scale * texts[caption] @ images.T, affinity[risk][:, risk])
            loss_caption = (loss_image + loss_text) / 2
            self.log("train/caption_loss", loss_caption)
            loss = loss + self.hparams.caption_loss_weight * loss_caption
        if self.hparams.goal_loss_weight > 0:
            goals = clg_goals(self.encoder)
            loss_goal = F.cross_entropy(scale * images @ goals.T, dangerous.long())
            self.log("train/goal_loss", loss_goal)
            loss = loss + self.hparams.goal_loss_weight * loss_goal
        self.log_dict({"train/loss": loss, "train/logit_scale": scale}, prog_bar=True)
        return loss

    def risk_affinity(self, risk_names: list[str]) -> torch.Tensor:
        """``exp(−ordinal_softness⁻¹·|severity_i − severity_j|)`` between risk categories (identity when 0)."""
        if self.hparams.ordinal_softness <= 0:
            return torch.eye(len(risk_names))
        unranked = [name for name in risk_names if name not in SEVERITY]
        if unranked:
            raise ZooError(f"ordinal_softness needs captions whose categories have a severity; {unranked} have none "
                           "(use captions: static, or ordinal_softness: 0)")
        severity = torch.tensor([float(SEVERITY[name]) for name in risk_names])
        distance = (severity[:, None] - severity[None, :]).abs()
        return torch.exp(-distance / self.hparams.ordinal_softness)

    def configure_optimizers(self):
        params = [p for p in self.encoder.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)

    # -- model selection on the validation split --------------------------------------------------------
    def validation_step(self, batch, batch_idx: int) -> None:
        self._val.append(clg_rewards(self.encoder, batch[0]).cpu())

    def on_validation_epoch_end(self) -> None:
        from zoo.evaluation.reward_quality import reward_quality  # lazy: would load torchrl

        rewards = torch.cat(self._val).numpy() if self._val else np.empty(0)
        self._val.clear()
        if self.trainer.sanity_checking:
            return
        quality = reward_quality(rewards, self.trainer.datamodule.splits["validation"])
        self.log_dict({f"val/{k}": quality[k] for k in ("auroc_collision_1s", "spearman_ttc")}, prog_bar=True)
        if quality["auroc_collision_1s"] > self.best["auroc"]:
            state = {k: p.detach().clone() for k, p in self.encoder.model.named_parameters() if p.requires_grad}
            self.best = {"auroc": quality["auroc_collision_1s"], "state": state, "epoch": self.current_epoch}

    # -- the end of the fit: the best model on held-out episodes, exported with its card ---------------
    def on_fit_end(self) -> None:
        if self.best["state"] is not None:
            self.encoder.model.load_state_dict(self.best["state"], strict=False)
        self.encoder.eval()
        if self.export is None:
            return

        from zoo.evaluation.reward_quality import reward_quality  # lazy: would load torchrl

        data = self.trainer.datamodule
        splits = ["validation", *(["test"] if "test" in data.splits else [])]
        start = load_dual_encoder(str(self.source.path), quantization=self.hparams.quantization, device="cpu")

        frames = {s: frames_tensor(data.splits[s]) for s in splits}
        # each model scores each split's frames once: the card's metrics and the gain share them
        rewards = {s: {"trained": split_rewards(self.encoder, frames[s]), "start": split_rewards(start, frames[s])}
                   for s in splits}
        final = splits[-1]
        results = {model: {s: reward_quality(rewards[s][model], data.splits[s]) for s in splits}
                   for model in ("trained", "start")}
        results["gain"] = {final: paired_gain(rewards[final]["trained"], rewards[final]["start"], data.splits[final])}
        rows = data.splits[final]
        if "dynamic_risk" in rows.column_names:  # the dual pathway's dynamic goals: does the image tower read them?
            names = rows.features["dynamic_risk"].names
            labels = [names[i] for i in rows["dynamic_risk"]]
            results["risk_retrieval"] = {final: {"trained": risk_retrieval(self.encoder, frames[final], labels),
                                                 "start": risk_retrieval(start, frames[final], labels)}}
        if self.logger is not None:
            self.logger.log_metrics({**{f"{final}/{k}": v for k, v in results["trained"][final].items()},
                                     **{f"{final}/start_{k}": v for k, v in results["start"][final].items()}})

        export_trained(self, results)


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against non-negative target weights, normalised per row."""
    targets = targets.float()
    return -(F.log_softmax(logits, dim=-1) * targets / targets.sum(1, keepdim=True)).sum(1).mean()


def clg_goals(encoder) -> torch.Tensor:
    """The CLG goal embeddings ``[l_pos, l_neg]`` of the papers' exact prompts, through the text projection."""
    from zoo.rewards.vlm import CLG_NEGATIVE, CLG_POSITIVE  # lazy: would load torchrl

    # one prompt per call, as CLGReward embeds them: an 8-bit text tower's outputs depend on the batch
    return torch.cat([encoder.embed_texts([text]) for text in (CLG_POSITIVE, CLG_NEGATIVE)])


@torch.no_grad()
def clg_rewards(encoder, frames: torch.Tensor) -> torch.Tensor:
    """CLG rewards with the papers' exact prompts (α = β = 1) of uint8 frames ``[N, 3, H, W]``."""
    cos = encoder.embed_images(frames) @ clg_goals(encoder).T
    return cos[:, 0] - cos[:, 1]


def split_rewards(encoder, frames: torch.Tensor) -> np.ndarray:
    """:func:`clg_rewards` of a split's decoded frames (:func:`zoo.data.datamodule.frames_tensor`), in chunks."""
    return torch.cat([clg_rewards(encoder, chunk) for chunk in frames.split(256)]).numpy()


def paired_gain(trained: np.ndarray, start: np.ndarray, rows, replicates: int = 2000,
                confidence: float = 0.95) -> dict[str, dict[str, float | None]]:
    """What training changed on the same frames: AUROC and Spearman (:func:`split_quality`) of the ``trained``
    rewards minus the ``start`` rewards (one per frame of ``rows``, :func:`split_rewards`), each with a paired
    episode-bootstrap interval (whole episodes resampled, both models on every draw).

    Returns:
        ``{"auroc_collision_1s": {"value", "low", "high"}, "spearman_ttc": {…}, "episodes": n, "confidence": c}``
    """
    from zoo.evaluation.reward_evaluation import episodes_of, measure  # lazy: would load torchrl

    scores = {"start": {"reward": start}, "trained": {"reward": trained}}
    strata = [episodes_of(np.asarray(rows["episode_seed"]), np.arange(len(rows)))]
    measured = measure(scores, rows, strata, replicates, confidence, seed=0, reference="start")
    return {**measured["differences"]["trained - start"], "episodes": measured["episodes"], "confidence": confidence}


def split_quality(encoder, rows, frames: torch.Tensor | None = None) -> dict[str, float]:
    """:func:`zoo.evaluation.reward_quality.reward_quality` of the CLG reward on a dataset split.

    ``frames``: the split's frames already decoded (:func:`zoo.data.datamodule.frames_tensor`), to score
    several models without decoding them again.
    """
    from zoo.evaluation.reward_quality import reward_quality  # lazy: would load torchrl

    return reward_quality(split_rewards(encoder, frames_tensor(rows) if frames is None else frames), rows)
