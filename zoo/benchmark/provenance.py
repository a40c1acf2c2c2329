"""What a benchmark run was made with: the code's git commit and the content digest of every model its reward
loads, recorded at the end of each cell so a results file says which weights produced its numbers (a model
name alone may resolve to other weights later)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from zoo.hub.pins import reward_model_names
from zoo.hub.resolve import model_weights_digest

_REPO = Path(__file__).resolve().parents[2]


def git_commit() -> str | None:
    """The zoo checkout's commit, ``-dirty`` appended when tracked files differ from it; ``None`` outside git.

    An installed zoo (a wheel, in site-packages) is no checkout: ``None`` too, rather than the commit of
    whatever repository the environment happens to sit in."""
    if not (_REPO / ".git").exists():  # a folder in a clone, a file in a worktree or submodule
        return None
    try:
        commit = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def reward_model_digests(entry: Any) -> dict[str, str]:
    """``{model name: SHA-256 of its safetensors}`` of every model a reward entry loads: the same digests a policy
    card pins (:func:`zoo.hub.pins.reward_model_names`, :func:`zoo.hub.resolve.model_weights_digest`)."""
    return {name: model_weights_digest(name) for name in reward_model_names(entry)}
