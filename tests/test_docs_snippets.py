"""Every ```python block of README.md and docs/*.md runs as written, in a fresh script, or says why not.

A block that needs a placeholder filled in (``path/to/…``, ``<run_id>``, ``windows``) or is too heavy for the
suite carries ``<!-- snippet: skip (the reason) -->`` on the line before it; it is reported as a skip with
that reason. Each block runs in its own subprocess with a timeout, so a hang (env workers never closed)
fails. The README's cheap ``zoo`` shell lines (models, register) run first, in the same working folder, so
that the snippets loading ``models:/drive-clip@champion`` find what ``zoo register`` put there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SKIP_MARK = re.compile(r"<!-- snippet: skip \((?P<reason>[^)]+)\) -->")
SNIPPET_TIMEOUT_S = 240
#: README shell commands cheap enough for every run (the others train, benchmark or need a <placeholder>)
CHEAP_COMMANDS = ("zoo --help", "zoo models list", "zoo models info", "zoo register")


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int
    code: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.line}"


def _fenced_blocks(page: Path, language: str) -> list[tuple[int, str, str]]:
    """(line of the fence, code, the line before the fence) of every ```language block of ``page``."""
    lines = page.read_text().splitlines()
    blocks, start = [], None
    for number, line in enumerate(lines):
        if start is None and line.strip() == f"```{language}":
            start = number
        elif start is not None and line.strip() == "```":
            before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
            blocks.append((start + 1, "\n".join(lines[start + 1:number]), before))
            start = None
    return blocks


def _snippets() -> list[Snippet]:
    snippets = []
    for page in PAGES:
        for line, code, before in _fenced_blocks(page, "python"):
            mark = SKIP_MARK.search(before)
            snippets.append(Snippet(page, line, code, mark and mark.group("reason")))
    return snippets


def _readme_commands(prefixes: tuple[str, ...]) -> list[str]:
    """The README's one-line shell commands that start with one of ``prefixes`` and need no <placeholder>."""
    commands = []
    for _, code, _ in _fenced_blocks(REPO / "README.md", "bash"):
        for line in code.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith(prefixes) and "<" not in command and not command.endswith("\\"):
                commands.append(command)
    return commands


def _cheap_readme_commands() -> list[str]:
    return _readme_commands(CHEAP_COMMANDS)


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("MLFLOW_TRACKING_URI", None)  # the local store in the working folder, as a new user has
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A fresh working folder in which the README's cheap shell lines have run, in their order."""
    folder = tmp_path_factory.mktemp("docs-snippets")
    zoo_command = str(Path(sys.executable).parent / "zoo")
    for command in _cheap_readme_commands():
        result = _run([zoo_command, *command.split()[1:]], folder, SNIPPET_TIMEOUT_S)
        assert result.returncode == 0, f"README line `{command}` failed:\n{result.stderr[-3000:]}"
    return folder


def test_the_readme_shell_lines_run_include_the_model_zoo_ones(workdir):
    commands = _cheap_readme_commands()
    assert "zoo models list" in commands and any(c.startswith("zoo register") for c in commands)


def test_every_skip_mark_sits_before_a_python_block():
    for page in PAGES:
        text = page.read_text()
        marks = len(SKIP_MARK.findall(text))
        assert marks == sum(1 for s in _snippets() if s.page == page and s.skip_reason), page.name


@pytest.mark.slow
@pytest.mark.parametrize("command", _readme_commands(("zoo fit ",)))
def test_every_readme_training_line_parses_as_written(command, monkeypatch, capsys):
    """Each README ``zoo fit`` line, exactly as written, with ``--print_config`` appended: LightningCLI parses the
    recipe and every override and instantiates nothing, so a renamed key or a dropped recipe fails here; the
    training itself is covered, on smaller budgets, by tests/test_cli.py and tests/test_recipes.py. In this process
    (the console script's ``main``): a fresh interpreter per line cost ~20 s of imports each."""
    from zoo.cli import main

    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split()[1:], "--print_config"])
    printed = capsys.readouterr()
    assert exit_info.value.code in (0, None), f"README line `{command}`:\n{printed.err[-3000:]}"
    assert "model:" in printed.out


@pytest.mark.parametrize("snippet", _snippets(), ids=lambda s: s.id)
def test_snippet_runs_as_written(snippet, workdir, tmp_path):
    if snippet.skip_reason:
        pytest.skip(f"{snippet.id}: {snippet.skip_reason}")
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code + "\n")
    try:
        result = _run([sys.executable, str(script)], workdir, SNIPPET_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{snippet.id} did not finish in {SNIPPET_TIMEOUT_S} s (a hang?)")
    assert result.returncode == 0, f"{snippet.id}:\n{snippet.code}\n{result.stderr[-3000:]}"
