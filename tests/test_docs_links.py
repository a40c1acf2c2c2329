"""The project carries its own docs: nothing points outside the repository, and relative links resolve.

* No tracked text file names the planning documents that lived beside the repository (its summary of the
  papers, its design page) or a path into the folder above it: a user who clones the repository has neither.
  The method is on docs/method.md, the design on docs/design-notes.md.
* Every relative link in README.md and docs/*.md points at a file (or folder) of the repository, and a link
  with an anchor into a markdown page names a heading of that page (GitHub's heading slugs).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".ipynb", ".json", ".txt"}
#: built from parts so that this file does not match itself
OUTSIDE = [re.escape(name) for name in ("PAPER" + ".md", "DESIGN" + ".md", "../" + "shared")]
OUTSIDE_PATTERN = re.compile("|".join(OUTSIDE))
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, …


def tracked_text_files() -> list[Path]:
    """The repository's tracked text files (every file under it but ignored folders when git is missing)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, text=True).stdout
        files = [REPO / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "runs", "mlruns", "mlartifacts", "data", "__pycache__", "node_modules"}
        files = [p for p in REPO.rglob("*") if not skip.intersection(p.relative_to(REPO).parts)]
    return sorted(p for p in files if p.suffix in TEXT_SUFFIXES and p.is_file())


def prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (their brackets are code, not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a markdown page: heading slugs (repeats numbered as GitHub does) and HTML anchors."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set(HTML_ANCHOR.findall(text))
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        out.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return out


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text(encoding="utf-8")))
            if not EXTERNAL.match(target)]


def test_slug_follows_github():
    assert slug("Metrics (`zoo/evaluation/metrics.py`)") == "metrics-zooevaluationmetricspy"
    assert slug("A benchmark grid on many cores (`zoo benchmark --workers`)") == \
        "a-benchmark-grid-on-many-cores-zoo-benchmark---workers"
    assert slug("DriveVLM-RL's dual pathway") == "drivevlm-rls-dual-pathway"


def test_no_tracked_file_points_outside_the_repository():
    hits = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE_PATTERN.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not hits, "references to files outside the repository (use docs/method.md or docs/design-notes.md):\n" \
        + "\n".join(hits)


def test_method_page_exists_with_its_sections():
    page = REPO / "docs" / "method.md"
    assert page.is_file()
    for anchor in ("clg-reward", "normalisation-window", "dual-pathway", "attention-gate", "risk-describer",
                   "hierarchical-reward-synthesis", "reward-pipeline", "rl-setup", "baselines", "prompts",
                   "constants", "metrics", "reported-results", "where-the-zoo-departs-from-the-papers",
                   "references"):
        assert anchor in anchors(page), anchor


def test_method_page_states_the_code_constants():
    """The prompts and default constants the page quotes are the ones the code uses."""
    from zoo.evaluation.metrics import SUMMARY_METRICS
    from zoo.rewards.dynamic import DYNAMIC_POSITIVE
    from zoo.rewards.synthesis import VIT_BIGG_WINDOW
    from zoo.rewards.vlm import CLG_NEGATIVE, CLG_POSITIVE, CLIP_SR_THRESHOLD, SAFE_DRIVING_GOAL
    from zoo.vlm.describer import DEFAULT_PROMPT

    text = (REPO / "docs" / "method.md").read_text(encoding="utf-8")
    for prompt in (CLG_POSITIVE, CLG_NEGATIVE, SAFE_DRIVING_GOAL, DYNAMIC_POSITIVE, DEFAULT_PROMPT):
        assert f'"{prompt}"' in text, prompt
    assert str(CLIP_SR_THRESHOLD) in text
    assert f"[−{abs(VIT_BIGG_WINDOW[0])}, {VIT_BIGG_WINDOW[1]:g}]" in text
    for metric in SUMMARY_METRICS[:7]:
        assert f"**{metric}**" in text, metric


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page: Path):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
        elif REPO not in dest.parents and dest != REPO:
            broken.append(f"{target}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"broken links in {page.relative_to(REPO)}:\n" + "\n".join(broken)
