"""VLM rewards on the BEV frame: CLG (VLM-RL's static pathway) and the baselines (docs/method.md#baselines).

Every class here embeds ``pixels`` with a Hugging Face dual encoder (:func:`zoo.vlm.load_dual_encoder`),
in batches, through a content-addressed cache, and turns cosine similarities with text goals into a
reward. The formulas are in each class's docstring, as docs/method.md states them.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from zoo import keys
from zoo.cache import frame_key
from zoo.envs.config import RenderNeeds
from zoo.errors import ZooError
from zoo.hub.resolve import resolve_model
from zoo.registry import check_choice
from zoo.rewards.base import RewardModule
from zoo.rewards.cache import EmbeddingCache
from zoo.vlm import load_dual_encoder
from zoo.vlm.encoder import check_frames

#: VLM-RL's contrasting language goals (docs/method.md#prompts)
CLG_POSITIVE = "The road is clear with no car accidents"
CLG_NEGATIVE = "Two cars have collided with each other on the road"
#: goal of VLM-SR, VLM-RM and RoboCLIP in the VLM-RL code (docs/method.md#prompts)
SAFE_DRIVING_GOAL = "A car is driving safely"
#: VLM-SR's threshold for CLIP (docs/method.md#baselines): used when the model's card has no calibrated one
CLIP_SR_THRESHOLD = 0.32
CROPS = ("none", "right_half")


def card_calibration(model: str, head: str, crop: str) -> dict[str, Any]:
    """The calibration of ``head`` stored in the card of ``model`` (``zoo reward calibrate --write-card``).

    Empty when the model has no card (a hub id, ``random:…``), the card has no entry for the head, or the entry
    was measured on another crop (the scores of another crop are another distribution).
    """
    entry = ((resolve_model(model).card or {}).get("calibration") or {}).get(head) or {}
    return dict(entry) if entry.get("crop", "none") == crop else {}


class VLMReward(RewardModule):
    """Base of the frame-scoring rewards: backbone, crop, batching and cache.

    The env must render frames (``obs="bev"`` or ``"both"``; agents switch ``"kinematics"`` to ``"both"``).

    Args:
        model: Hugging Face dual encoder, hub id (cached locally) or folder.
        quantization: ``{"bits": 4|8}`` (bitsandbytes).
        adapter: folder of saved LoRA adapters to apply on the base.
        lora: fresh LoRA adapters (:class:`zoo.vlm.LoraSpec` fields) to fine-tune; only they train.
        crop: ``"none"`` or ``"right_half"`` (VLM-RL fed CLIP the right half of the BEV width; in the
            zoo's BEV the ego car faces right, so that is the road ahead).
        batch_size: frames per forward pass of the image tower.
        cache_size: embeddings kept in the cache (0 disables it).
        device: where the backbone runs (default CUDA if available).
        trust_remote_code: allow model code from the checkpoint.
    """

    #: the head name (``zoo.create_reward_model(head=...)``) and its entry in a card's ``calibration``
    head = ""
    #: what ``zoo reward calibrate`` measures for this head (see :mod:`zoo.rewards.calibrate`)
    calibration_fields: tuple[str, ...] = ("window",)

    def __init__(self, model: str, quantization: dict[str, Any] | None = None, adapter: str | None = None,
                 lora: dict[str, Any] | None = None, crop: str = "none", batch_size: int = 64, cache_size: int = 100_000, device: str | None = None,
                 trust_remote_code: bool = False) -> None:
        super().__init__()

        check_choice("crop", crop, CROPS)
        if batch_size < 1:
            raise ZooError(f"batch_size must be >= 1, got {batch_size}")
        if cache_size < 0:
            raise ZooError(f"cache_size must be >= 0 (0 disables the cache), got {cache_size}")
        self.model = model
        self.quantization = quantization
        self.adapter = adapter
        self.lora = lora
        self.crop = crop
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.device = device
        self.trust_remote_code = trust_remote_code
        self.encoder = load_dual_encoder(model, quantization=quantization, adapter=adapter, lora=lora,
                                         device=device, trust_remote_code=trust_remote_code)
        for name, param in self.encoder.named_parameters():
            param.requires_grad_(lora is not None and "lora_" in name)
        self.cache = EmbeddingCache(cache_size)
        # an explicit adapter changes the scores: the named model's calibration no longer describes them
        self.calibration = card_calibration(model, self.head, crop) if adapter is None else {}
        self.fingerprint = f"{self.encoder.source}|{quantization}|{adapter}|{lora}|{crop}"
        self._texts: dict[str, torch.Tensor] = {}

    # -- shared machinery -------------------------------------------------------------------------
    def render_needs(self) -> RenderNeeds:
        """The BEV frame, which this reward scores."""
        return RenderNeeds(frames=True)

    def text_embedding(self, text: str) -> torch.Tensor:
        """Normalised embedding of one prompt (computed once)."""
        if text not in self._texts:
            with torch.no_grad():
                self._texts[text] = self.encoder.embed_texts([text])[0].cpu()
        return self._texts[text]

    def crop_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if self.crop == "right_half":
            return frames[..., frames.shape[-1] // 2:]
        return frames

    @torch.no_grad()
    def image_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised embeddings ``[..., D]`` of uint8 frames ``[..., 3, H, W]``.

        Frames already in the cache, or repeated within ``frames``, are embedded once.
        """
        frames = self.crop_frames(check_frames(frames))
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        digests = [frame_key(f) for f in flat]
        known = {d: self.cache.get(self.fingerprint, d) for d in dict.fromkeys(digests)}
        first_index = {d: i for i, d in reversed(list(enumerate(digests)))}
        missing = [d for d, e in known.items() if e is None]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            embeddings = self.encoder.embed_images(flat[[first_index[d] for d in chunk]]).cpu()
            for digest, emb in zip(chunk, embeddings):
                known[digest] = emb
                self.cache.put(self.fingerprint, digest, emb)
        if not digests:
            return torch.empty(*lead, 0)
        return torch.stack([known[d] for d in digests]).reshape(*lead, -1)

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        frames = next_state.get(keys.PIXELS)
        embeddings = self.image_embeddings(frames)
        values = self.score(embeddings.reshape(-1, embeddings.shape[-1]))
        return {k: v.reshape(*frames.shape[:-3], 1).to(frames.device) for k, v in values.items()}

    def score(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"reward": [N], term: [N], ...}`` from normalised image embeddings ``[N, D]``."""
        raise NotImplementedError

    def _shared_members(self) -> list[Any]:
        return [self.encoder, self.cache]

    def stats(self) -> dict[str, float]:
        return {"cache_hits": float(self.cache.hits), "cache_misses": float(self.cache.misses),
                "cache_hit_rate": self.cache.hit_rate}

    def resume_state(self) -> dict[str, Any]:
        return {**super().resume_state(), "cache": self.cache.state_dict()}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        super().load_resume_state(state)
        if "cache" in state:
            self.cache.load_state_dict(state["cache"])


class CLGReward(VLMReward):
    """Contrasting language goals (VLM-RL): ``α·cos(x, l_pos) − β·cos(x, l_neg)``.

    The method: docs/method.md#clg-reward. Embeddings L2-normalised; no softmax, no temperature.
    Terms: ``clg``, ``cos_positive``, ``cos_negative``.

    Args:
        positive: ``l_pos``.
        negative: ``l_neg``.
        alpha: weight of the positive goal.
        beta: weight of the negative goal.
        **kwargs: see :class:`VLMReward`.

    Example:
        >>> reward = CLGReward("path/to/clip", crop="right_half")  # doctest: +SKIP
        >>> env = zoo.make_env("highway-fast", obs="both", reward=reward)  # doctest: +SKIP
    """

    terms = ("clg", "cos_positive", "cos_negative")
    head = "clg"

    def __init__(self, model: str, positive: str = CLG_POSITIVE, negative: str = CLG_NEGATIVE, alpha: float = 1.0,
                 beta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.positive, self.negative, self.alpha, self.beta = positive, negative, alpha, beta
        self.text_embedding(positive), self.text_embedding(negative)  # fail early on bad prompts

    def score(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        cos_pos = embeddings @ self.text_embedding(self.positive)
        cos_neg = embeddings @ self.text_embedding(self.negative)
        clg = self.alpha * cos_pos - self.beta * cos_neg
        return {keys.REWARD: clg, "clg": clg, "cos_positive": cos_pos, "cos_negative": cos_neg}


class VLMSRReward(VLMReward):
    """VLM-SR (docs/method.md#baselines): ``+1`` if ``cos(x, goal) > threshold`` else ``−1``.

    Terms: ``cos_goal``.

    Args:
        goal: the goal text.
        threshold: default: the model card's calibrated threshold (``zoo reward calibrate``), else CLIP's 0.32,
            which a backbone with another cosine scale may never exceed (a constant reward).
        **kwargs: see :class:`VLMReward`.
    """

    terms = ("cos_goal",)
    head = "vlm-sr"
    calibration_fields = ("threshold",)

    def __init__(self, model: str, goal: str = SAFE_DRIVING_GOAL, threshold: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.goal = goal
        self.threshold = threshold if threshold is not None else self.calibration.get("threshold", CLIP_SR_THRESHOLD)
        self.text_embedding(goal)

    def score(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        cos = embeddings @ self.text_embedding(self.goal)
        return {keys.REWARD: torch.where(cos > self.threshold, 1.0, -1.0), "cos_goal": cos}


class VLMRMReward(VLMReward):
    """VLM-RM (docs/method.md#baselines): goal-baseline projection.

    With ``g``, ``b`` the normalised goal and baseline embeddings, ``d = g − b`` and
    ``P = α·ddᵀ/‖d‖² + (1 − α)·I``: ``reward = 1 − ½‖(x − g)P‖²``. Terms: ``cos_goal``.
    """

    terms = ("cos_goal",)
    head = "vlm-rm"

    def __init__(self, model: str, goal: str = SAFE_DRIVING_GOAL, baseline: str = "A car", alpha: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.goal, self.baseline, self.alpha = goal, baseline, alpha
        self.text_embedding(goal), self.text_embedding(baseline)

    def projection(self) -> torch.Tensor:
        g, b = self.text_embedding(self.goal), self.text_embedding(self.baseline)
        d = g - b
        eye = torch.eye(d.numel())
        if d.norm() == 0:  # goal and baseline embed identically: the projection is the identity
            return eye
        return self.alpha * torch.outer(d, d) / d.dot(d) + (1 - self.alpha) * eye

    def score(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        g = self.text_embedding(self.goal)
        reward = 1 - 0.5 * ((embeddings - g) @ self.projection()).pow(2).sum(-1)
        return {keys.REWARD: reward, "cos_goal": embeddings @ g}


class LORDReward(VLMReward):
    """LORD (docs/method.md#baselines): ``1 − cos(x, l_neg)``, the negative goal only.

    Terms: ``cos_negative``.
    """

    terms = ("cos_negative",)
    head = "lord"

    def __init__(self, model: str, negative: str = CLG_NEGATIVE, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.negative = negative
        self.text_embedding(negative)

    def score(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        cos = embeddings @ self.text_embedding(self.negative)
        return {keys.REWARD: 1 - cos, "cos_negative": cos}


class RoboCLIPReward(VLMReward):
    """RoboCLIP (docs/method.md#baselines), in two variants.

    * ``mode="step"`` (as in the VLM-RL code): ``cos(x_t, goal)`` at every step.
    * ``mode="episode"`` (the original's sparse form): 0 at every step but the last, where the reward is
      ``cos(mean_t x_t / ‖mean_t x_t‖, goal)`` over the episode's frames. The original compares the
      episode video with a video-language model (S3D); with an image-text dual encoder the video
      embedding is the normalised mean of the frame embeddings. This variant keeps per-env episode
      state, so it works on an environment, not on shuffled replay data.

    Terms: ``cos_goal`` (per-step cosine, in both modes).
    """

    terms = ("cos_goal",)
    head = "roboclip"
    MODES = ("step", "episode")

    def __init__(self, model: str, goal: str = SAFE_DRIVING_GOAL, mode: str = "step", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.goal, self.mode = goal, check_choice("RoboCLIP mode", mode, self.MODES)
        self.text_embedding(goal)
        self._episode_sum: torch.Tensor | None = None

    def score(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        cos = embeddings @ self.text_embedding(self.goal)
        return {keys.REWARD: cos, "cos_goal": cos}

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        if self.mode == "step":
            return super().compute(next_state)
        if self.parent is None:
            raise ZooError("RoboCLIP mode='episode' needs whole episodes in order: use it on an environment")
        frames = next_state.get(keys.PIXELS)
        batch = frames.shape[:-3]
        embeddings = self.image_embeddings(frames).reshape(-1, self.text_embedding(self.goal).numel())
        if self._episode_sum is None or self._episode_sum.shape != embeddings.shape:
            self._episode_sum = torch.zeros_like(embeddings)
        self._episode_sum += embeddings
        done = next_state.get(keys.DONE).reshape(-1).cpu()
        video = torch.nn.functional.normalize(self._episode_sum, dim=-1)
        goal = self.text_embedding(self.goal)
        reward = torch.where(done, video @ goal, torch.zeros(()))
        self._episode_sum[done] = 0
        return {keys.REWARD: reward.reshape(*batch, 1).to(frames.device),
                "cos_goal": (embeddings @ goal).reshape(*batch, 1).to(frames.device)}

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        if self._episode_sum is not None:
            reset = tensordict.get("_reset", None) if tensordict is not None else None
            if reset is None:
                self._episode_sum.zero_()
            else:
                self._episode_sum[reset.reshape(-1).cpu()] = 0
        return super()._reset(tensordict, tensordict_reset)
