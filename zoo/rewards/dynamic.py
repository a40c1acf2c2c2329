"""DriveVLM-RL's semantic reward: the static CLG pathway plus the gated dynamic pathway.

The method: docs/method.md#dual-pathway.

For the current BEV frame ``o_t`` with embedding ``x = f_I(o_t)``::

    R_static  = α · cos(x, f_L(l_pos)) − β · cos(x, f_L(l_neg))                       (CLG)
    R_dynamic = g_t · [α_d · cos(x, f_L(l_pos_dyn)) − β_d · cos(x, f_L(l_dyn))]       (dynamic)
    R         = R_static + R_dynamic                                                 (Phase I)

``g_t`` comes from an attention gate (a detector on the frame, or the simulator's objects); only when it is on
does a risk describer (any image-text-to-text chat model, or the zoo's small captioner) read the window of the
last K+1 frames and write the risk description ``l_dyn``. A description that is empty, garbled or too slow
gives ``R_dynamic = 0`` and is counted (``dynamic_fallback``). So does one that names no risk ("The road ahead is
clear", parsed by the risk keywords of ``zoo.data.bev_captions``): used as the negative goal, a clear road would be
penalised for looking clear (``dynamic_clear``). Wrap the module in :class:`~zoo.rewards.HierarchicalReward` for the
normalisation and the vehicle-state shaping (Phase I/II).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from tensordict import TensorDictBase

from zoo import keys
from zoo.cache import LRUCache
from zoo.data.bev_captions import parse_dynamic_risk
from zoo.envs.config import RenderNeeds
from zoo.errors import ZooError
from zoo.rewards.vlm import CLGReward
from zoo.vlm.describer import load_describer

if TYPE_CHECKING:  # a recipe's `gate: {class_path: …}` is checked against it; zoo.perception loads only when used
    from zoo.perception import AttentionGate

#: DriveVLM-RL's fixed positive goal of the dynamic pathway (docs/method.md#prompts)
DYNAMIC_POSITIVE = "The road ahead is clear with no obstacles"


class DualPathwayReward(CLGReward):
    """Static CLG + gated dynamic pathway (DriveVLM-RL); the raw semantic reward ``R_static + R_dynamic``.

    The env must render frame windows of ``window`` frames, and the simulator's objects for an oracle gate
    (:meth:`render_needs`).

    Args:
        model: the dual encoder ``f_I``, ``f_L`` of both pathways (zoo name, folder, ``models:/`` URI, hub id).
        gate: the attention gate (:class:`zoo.perception.AttentionGate`); default: the zoo's shipped detector.
        describer: the risk describer (zoo name, folder, ``models:/`` URI or cached hub id of a chat VLM or
            captioner), or an object with ``describe(windows)`` and ``stats()`` such as
            :class:`zoo.rewards.oracle.OracleDescriber` (the recorded ground truth, for upper bounds; a recipe cannot
            spell one).
        describer_options: keyword arguments of :func:`zoo.vlm.describer.load_describer` (``prompt``,
            ``quantization``, ``lora``, ``max_new_tokens``, ``timeout_s`` …).
        dynamic_positive: ``l_pos_dyn``.
        dynamic_alpha: weight ``α_d`` of the dynamic positive goal.
        dynamic_beta: weight ``β_d`` of the description.
        window: frames the describer reads (K+1: the current one and the K before it).
        goal_cache_size: description embeddings kept (free-form descriptions are many).
        **kwargs: see :class:`~zoo.rewards.CLGReward` (``positive``, ``negative``, ``alpha``, ``beta``, ``crop`` …).

    Terms: CLG's, plus ``static``, ``dynamic``, ``gate`` (0/1), ``cos_positive_dynamic``, ``cos_dynamic`` and
    ``dynamic_fallback`` (1 where the gate was on but the description was unusable) and ``dynamic_clear`` (1 where
    the description named no risk: no dynamic term, never a negative goal).

    Example:
        >>> reward = DualPathwayReward("drive-clip-bev-tiny", describer="risk-describer-tiny")  # doctest: +SKIP
        >>> reward = HierarchicalReward(reward, theta_min=0.0, theta_max=0.25)  # doctest: +SKIP
    """

    terms = CLGReward.terms + ("static", "dynamic", "gate", "cos_positive_dynamic", "cos_dynamic",
                               "dynamic_fallback", "dynamic_clear")
    head = "dual-pathway"

    def __init__(self, model: str, gate: AttentionGate | None = None, describer: Any = "risk-describer-tiny",
                 describer_options: dict[str, Any] | None = None, dynamic_positive: str = DYNAMIC_POSITIVE,
                 dynamic_alpha: float = 1.0, dynamic_beta: float = 1.0, window: int = 4,
                 goal_cache_size: int = 4096, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if window < 1:
            raise ZooError(f"window must be >= 1 frame, got {window}")
        named = isinstance(describer, str) and bool(describer.strip())
        if not named and not callable(getattr(describer, "describe", None)):
            raise ZooError(f"describer must name a model (zoo name, folder, models:/ URI or hub id) or have a "
                           f"describe(windows) method, got {describer!r}")
        if gate is None:
            from zoo.perception import AttentionGate  # lazy: would load highway_env, matplotlib, pandas

            gate = AttentionGate()
        self.gate = gate
        self.describer = describer
        self.describer_options = describer_options
        self.dynamic_positive = dynamic_positive
        self.dynamic_alpha, self.dynamic_beta = dynamic_alpha, dynamic_beta
        self.window = window
        self.goal_cache_size = goal_cache_size
        self.reasoner = load_describer(describer, **(describer_options or {})) if named else describer
        self._goals: LRUCache[str, torch.Tensor] = LRUCache(goal_cache_size)
        self.text_embedding(dynamic_positive)

    def render_needs(self) -> RenderNeeds:
        """Frames, windows of ``window`` frames for the describer, and the simulator's objects when the gate's
        detector reads them (the oracle)."""
        oracle = getattr(getattr(self.gate, "detector", None), "in_key", None) == keys.OBJECTS
        return RenderNeeds(frames=True, frame_window=self.window, objects=oracle)

    def goal_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Normalised embeddings ``[len(texts), D]`` of dynamic goals, each distinct text embedded once."""
        goals = {t: self._goals.get(t) for t in dict.fromkeys(texts) if t in self._goals}
        new = [t for t in dict.fromkeys(texts) if t not in goals]
        if new:
            with torch.no_grad():
                goals.update(zip(new, self.encoder.embed_texts(new).cpu()))
        for text in texts:  # the batch's last use of a text is its most recent one
            self._goals.put(text, goals[text])
        return torch.stack([goals[t] for t in texts])

    def compute(self, next_state: TensorDictBase) -> dict[str, torch.Tensor]:
        frames = next_state.get(keys.PIXELS)
        lead = frames.shape[:-3]
        embeddings = self.image_embeddings(frames)
        embeddings = embeddings.reshape(-1, embeddings.shape[-1])
        values = self.score(embeddings)
        static = values[keys.REWARD]
        gate = self.gate(next_state).reshape(-1).cpu().bool()
        dynamic, cos_pos, cos_dyn, fallback, clear = (torch.zeros_like(static) for _ in range(5))
        on = gate.nonzero().squeeze(-1)
        if on.numel():
            windows = next_state.get(keys.PIXELS_WINDOW)
            windows = windows.reshape(-1, *windows.shape[-4:])[on]
            texts = self.reasoner.describe(windows)
            usable = torch.tensor([bool(t) for t in texts], dtype=torch.bool)
            no_risk = torch.tensor([bool(t) and parse_dynamic_risk(t) == "clear" for t in texts], dtype=torch.bool)
            fallback[on[~usable]] = 1.0
            clear[on[no_risk]] = 1.0
            risky = usable & ~no_risk
            rows = on[risky]
            if rows.numel():
                x = embeddings[rows]
                cos_pos[rows] = x @ self.text_embedding(self.dynamic_positive)
                cos_dyn[rows] = (x * self.goal_embeddings([t for t, r in zip(texts, risky) if r])).sum(-1)
                dynamic[rows] = self.dynamic_alpha * cos_pos[rows] - self.dynamic_beta * cos_dyn[rows]
        values.update({keys.REWARD: static + dynamic, "static": static, "dynamic": dynamic, "gate": gate.float(),
                       "cos_positive_dynamic": cos_pos, "cos_dynamic": cos_dyn, "dynamic_fallback": fallback,
                       "dynamic_clear": clear})
        return {k: v.reshape(*lead, 1).to(frames.device) for k, v in values.items()}

    def _shared_members(self) -> list[Any]:
        return [*super()._shared_members(), self.gate, self.reasoner, self._goals]

    def stats(self) -> dict[str, float]:
        return {**super().stats(), **{f"gate_{k}" if not k.startswith("gate") else k: v
                                      for k, v in self.gate.stats().items()},
                **{f"describer_{k}": v for k, v in self.reasoner.stats().items()}}
