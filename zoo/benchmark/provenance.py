"""What a benchmark run was made with: the code's git commit and the content digest of every model its reward
loads, recorded at the end of each cell so a results file says which weights produced its numbers (a model
name alone may resolve to other weights later)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

#: the keys of a reward entry (at any depth) whose string value names a model to load
MODEL_KEYS = ("model", "describer", "detector")
_REPO = Path(__file__).resolve().parents[2]


def git_commit() -> str | None:
    """The zoo checkout's commit, ``-dirty`` appended when tracked files differ from it; ``None`` outside git."""
    try:
        commit = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def weights_digest(name: str) -> str:
    """SHA-256 of a model's weights: of its one ``*.safetensors`` file, or, for a folder with several, of the
    lines ``<file name> <file sha256>`` in name order.

    ``name`` is what a recipe gives (a zoo name, its family, a folder, a hub id). A zoo model is hashed in its
    shipped folder, not in the completed copy the resolver builds (which adds base components it names).

    Example:
        >>> weights_digest("drive-clip-bev-tiny")  # doctest: +SKIP
        '5be1…'
    """
    from zoo.registry import ZooError, resolve_model, shipped_models

    resolved = resolve_model(name)
    folder = shipped_models().get((resolved.card or {}).get("name", ""), resolved.path)
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ZooError(f"model {name!r} has no *.safetensors weights in {folder}")
    digests = [_file_sha256(f) for f in files]
    if len(files) == 1:
        return digests[0]
    return hashlib.sha256("".join(f"{f.name} {d}\n" for f, d in zip(files, digests)).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def reward_models(entry: Any) -> list[str]:
    """The model names a reward entry loads (the VLM, a risk describer, a detector), in order of appearance.

    Example:
        >>> reward_models({"init_args": {"semantic": {"init_args": {"model": "m", "describer": "d"}}}})
        ['m', 'd']
    """
    found: list[str] = []
    if isinstance(entry, dict):
        for key, value in entry.items():
            if key in MODEL_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found += [n for n in reward_models(value) if n not in found]
    elif isinstance(entry, list):
        for value in entry:
            found += [n for n in reward_models(value) if n not in found]
    return found


def reward_model_digests(entry: Any) -> dict[str, str]:
    """``{model name: weights_digest}`` of every model a reward entry loads."""
    return {name: weights_digest(name) for name in reward_models(entry)}
