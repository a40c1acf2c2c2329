"""The dynamic pathway's large VLM: a short risk description of a window of K+1 frames.

Two backends, chosen by the checkpoint's architecture:

* **chat** — any Hugging Face image-text-to-text model (``AutoModelForImageTextToText``: Qwen2.5-VL,
  Qwen3-VL, SmolVLM, LLaVA …): one user message with the K+1 frames as images (oldest first) then the
  prompt, through the processor's chat template; the answer is the newly generated text.
* **captioner** — a ``VisionEncoderDecoderModel``: its encoder sees the window as one input, frames stacked
  as channels when the encoder takes ``3 × (K+1)`` channels (the zoo's ``risk-describer-tiny``), else
  tiled side by side into one RGB image. It takes no prompt.

Decoding is greedy, at most ``max_new_tokens``, within ``timeout_s`` per call (transformers' ``max_time``).
An output falls back to ``None`` — the dynamic reward is then 0 — when it is

* ``empty``: nothing but white space;
* ``garbled``: under 60 % of its non-space characters are letters, or (with 4 words or more) one word
  makes up more than half of them (a model stuck repeating a token);
* ``timeout``: the call reached ``timeout_s`` and the sequence had not ended (no end-of-sequence token)
  before ``max_new_tokens``.

Descriptions (and the empty or garbled verdicts, which greedy decoding repeats) are cached by window
content; timeouts are not cached (the next call may have time). :meth:`RiskDescriber.stats` counts calls,
cache hits and fallbacks by reason.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import torch

from zoo.cache import LRUCache, frame_key
from zoo.errors import ZooError
from zoo.vlm.loading import FrameTransform, load_backbone, pick_device, resolve_backbone

DEFAULT_PROMPT = ("These are consecutive bird's-eye-view frames of a driving scene, oldest first; the ego car "
                  "drives to the right. In one short sentence, what is the main risk ahead of the ego car?")
FALLBACK_REASONS = ("empty", "garbled", "timeout")
MIN_LETTER_FRACTION = 0.6
MAX_REPEATED_WORD_FRACTION = 0.5
_NOT_CACHED = object()  # a cached description may be None (a fallback verdict)


def fallback_reason(text: str) -> str | None:
    """``"empty"`` or ``"garbled"`` when ``text`` cannot serve as a description (rules in the module doc), else None.

    Example:
        >>> fallback_reason("The car ahead is braking hard"), fallback_reason("## 12 ##"), fallback_reason(" ")
        (None, 'garbled', 'empty')
    """
    stripped = text.strip()
    if not stripped:
        return "empty"
    characters = [c for c in stripped if not c.isspace()]
    if sum(c.isalpha() for c in characters) < MIN_LETTER_FRACTION * len(characters):
        return "garbled"
    words = stripped.lower().split()
    if len(words) >= 4 and Counter(words).most_common(1)[0][1] > MAX_REPEATED_WORD_FRACTION * len(words):
        return "garbled"
    return None


def check_windows(windows: torch.Tensor) -> torch.Tensor:
    """Validate frame windows: uint8 ``[N, K+1, 3, H, W]``, oldest frame first."""
    if not isinstance(windows, torch.Tensor) or windows.dtype != torch.uint8:
        raise ZooError(f"windows must be a uint8 torch.Tensor, got {getattr(windows, 'dtype', type(windows).__name__)}")
    if windows.ndim != 5 or windows.shape[2] != 3:
        raise ZooError(f"windows must have shape [N, K+1, 3, H, W], got {tuple(windows.shape)}")
    return windows


class RiskDescriber:
    """Writes one short risk description per frame window (``None`` where the output is unusable).

    Build it with :func:`load_describer`.

    Args:
        model: the generative model (possibly quantized, possibly peft-wrapped).
        processor: the chat model's processor, or the captioner's tokenizer.
        backend: ``"chat"`` or ``"captioner"``.
        prompt: the question asked of a chat model (a captioner takes none).
        max_new_tokens: most tokens generated per description.
        timeout_s: time limit of one generation call (``None``: none).
        cache_size: descriptions kept (least recently used dropped first); 0 disables the cache.
        frame_transform: the captioner's :class:`zoo.vlm.loading.FrameTransform`.
        source: where the model was loaded from.
    """

    def __init__(self, model: Any, processor: Any, backend: str, *, prompt: str, max_new_tokens: int,
                 timeout_s: float | None, cache_size: int, frame_transform: Any = None, source: str = "") -> None:
        if max_new_tokens < 1:
            raise ZooError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if timeout_s is not None and timeout_s <= 0:
            raise ZooError(f"timeout_s must be > 0 or None, got {timeout_s}")
        self.model = model.eval()
        self.processor = processor
        self.backend = backend
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.cache_size = cache_size
        self.frame_transform = frame_transform
        self.source = source
        self._cache: LRUCache[bytes, str | None] = LRUCache(cache_size)
        self._counts: Counter[str] = Counter()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @torch.no_grad()
    def describe(self, windows: torch.Tensor) -> list[str | None]:
        """One description per window of ``windows`` (uint8 ``[N, K+1, 3, H, W]``), ``None`` on a fallback.

        Example:
            >>> describer = load_describer("risk-describer-tiny")  # doctest: +SKIP
            >>> describer.describe(windows)  # doctest: +SKIP
            ['The car ahead is braking hard', None]
        """
        windows = check_windows(windows)
        keys = [frame_key(w) for w in windows]
        self._counts["calls"] += len(keys)
        known: dict[bytes, str | None] = {}
        todo: dict[bytes, int] = {}  # the first window of each distinct content not in the cache
        for i, key in enumerate(keys):
            if key not in known and key not in todo:
                text = self._cache.get(key, _NOT_CACHED)
                if text is _NOT_CACHED:
                    todo[key] = i
                else:
                    known[key] = text
        self._counts["cache_hits"] += len(keys) - len(todo)  # repeats within the batch are hits too
        if todo:
            texts, timed_out = self._generate(windows[list(todo.values())])
            self._counts["generated"] += len(texts)
            for key, text, late in zip(todo, texts, timed_out):
                reason = "timeout" if late else fallback_reason(text)
                known[key] = None if reason else text.strip()
                if reason:
                    self._counts[f"fallback_{reason}"] += 1
                if not late:
                    self._cache.put(key, known[key])
        return [known[k] for k in keys]

    def stats(self) -> dict[str, float]:
        """Windows asked for (``calls``), ``cache_hits`` (windows not generated), ``generated``,
        ``fallback_<reason>`` counts, ``cache_hit_rate``."""
        out = {name: float(self._counts[name]) for name in ("calls", "cache_hits", "generated")}
        out.update({f"fallback_{r}": float(self._counts[f"fallback_{r}"]) for r in FALLBACK_REASONS})
        out["cache_hit_rate"] = out["cache_hits"] / out["calls"] if out["calls"] else 0.0
        return out

    def config(self) -> dict[str, Any]:
        """What a recipe needs to build this describer again."""
        return {"source": self.source, "backend": self.backend, "prompt": self.prompt,
                "max_new_tokens": self.max_new_tokens, "timeout_s": self.timeout_s}

    def _generate(self, windows: torch.Tensor) -> tuple[list[str], list[bool]]:
        """Deterministic texts for ``windows`` (greedy, or beam search where the model's generation config sets
        ``num_beams``), and whether each ran out of time before ending."""
        inputs = self._chat_inputs(windows) if self.backend == "chat" else self._captioner_inputs(windows)
        start = time.monotonic()
        sequences = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                        max_time=self.timeout_s)
        late = self.timeout_s is not None and time.monotonic() - start >= self.timeout_s
        if self.backend == "chat":  # decoder-only: the prompt comes back first
            sequences = sequences[:, inputs["input_ids"].shape[1]:]
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        ended = [bool(eos & set(row.tolist())) or len(row) >= self.max_new_tokens for row in sequences]
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        return texts, [late and not done for done in ended]

    def _chat_inputs(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        content = [{"type": "image"} for _ in range(windows.shape[1])] + [{"type": "text", "text": self.prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                  tokenize=False)
        images = [list(window) for window in windows]
        inputs = self.processor(images=images, text=[text] * len(windows), return_tensors="pt", padding=True)
        dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        return {k: v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device) for k, v in inputs.items()}

    def _captioner_inputs(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        n, frames, _, h, w = windows.shape
        if self.model.config.encoder.num_channels == 3 * frames:  # stacked as channels, oldest first
            pixels = windows.reshape(n, frames * 3, h, w)
        else:  # tiled side by side, oldest left
            pixels = windows.permute(0, 2, 3, 1, 4).reshape(n, 3, h, frames * w)
        return {"pixel_values": self.frame_transform(pixels.to(self.device))}


def load_describer(source: str | os.PathLike, *, prompt: str | None = None, quantization: dict | None = None,
                   lora: dict | None = None, adapter: str | os.PathLike | None = None, max_new_tokens: int = 24,
                   timeout_s: float | None = None, device: str | None = None, trust_remote_code: bool = False,
                   cache_size: int = 10_000) -> RiskDescriber:
    """Load a risk describer: a chat VLM or a vision-encoder-decoder captioner (see the module doc).

    Args:
        source: any source :func:`zoo.hub.resolve.resolve_model` takes: zoo name (``risk-describer-tiny``, card
            kind ``describer``), folder, ``models:/`` URI, or hub id in the local cache. A LoRA adapter folder
            loads its base, then the adapter.
        prompt: the question for a chat model (default :data:`DEFAULT_PROMPT`); a captioner takes none.
        quantization: ``{"bits": 4|8, ...}`` for bitsandbytes (see :func:`zoo.vlm.quantization_config`).
        lora: fresh LoRA adapters (see :class:`zoo.vlm.LoraSpec`), for fine-tuning.
        adapter: a folder with saved LoRA adapters to load on top of the (possibly quantized) base.
        max_new_tokens: most tokens per description.
        timeout_s: time limit per :meth:`RiskDescriber.describe` generation call (``None``: none).
        device: ``"cpu"``, ``"cuda"`` …; default CUDA when available.
        trust_remote_code: allow model code from the checkpoint (off unless you ask for it).
        cache_size: descriptions cached by window content.

    Example:
        >>> describer = load_describer("risk-describer-tiny", timeout_s=2.0)  # doctest: +SKIP
        >>> describer.describe(torch.zeros(1, 4, 3, 96, 96, dtype=torch.uint8))  # doctest: +SKIP
        ['The road ahead is clear']
    """
    from transformers import (  # lazy: transformers is slow to import
        AutoConfig,
        AutoImageProcessor,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
        VisionEncoderDecoderModel,
    )

    backbone = resolve_backbone(source, "describer", quantization=quantization, lora=lora, adapter=adapter)
    path = str(backbone.path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    load = {"lora": lora, "device": pick_device(device), "trust_remote_code": trust_remote_code}
    options = {"prompt": prompt or DEFAULT_PROMPT, "max_new_tokens": max_new_tokens, "timeout_s": timeout_s,
               "cache_size": cache_size, "source": str(source)}
    if config.model_type == "vision-encoder-decoder":
        if prompt is not None:
            raise ZooError(f"{source!r} is a captioner (vision-encoder-decoder): it takes no prompt")
        model = load_backbone(VisionEncoderDecoderModel, backbone, **load)
        transform = FrameTransform(AutoImageProcessor.from_pretrained(path)).to(load["device"])
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        return RiskDescriber(model, tokenizer, "captioner", frame_transform=transform, **options)
    if type(config) not in AutoModelForImageTextToText._model_mapping:
        raise ZooError(f"{source!r} ({config.model_type}) is neither an image-text-to-text chat model nor a "
                       "vision-encoder-decoder captioner")
    model = load_backbone(AutoModelForImageTextToText, backbone, **load)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    processor.tokenizer.padding_side = "left"  # batched decoder-only generation continues every row at the end
    if getattr(processor, "chat_template", None) is None:
        raise ZooError(f"{source!r} has no chat template: not a chat model")
    return RiskDescriber(model, processor, "chat", **options)
