"""The zoo's imports (docs/architecture.md, "Imports"): every module imports on its own, and an import inside a
function, method or class body is there for a reason that it states.

An import stays in a function only when importing it at the top would cost something real: an optional extra that
may not be installed, a heavy package (or zoo module that loads one) that the module's other users do not need, or
an import cycle. Its line or the line above says so in a comment containing ``lazy`` (``# lazy: mlflow is slow to
import``), or the module says it once near its top (``# lazy imports: <reason>``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import json
import os
import pkgutil
import subprocess
import sys
import tokenize
import traceback
from pathlib import Path

import pytest

ZOO = Path(importlib.util.find_spec("zoo").origin).parent  # found without importing it
#: the third-party packages the zoo's modules load, imported once before forking so each child pays only for the zoo
HEAVY = ("numpy", "torch", "tensordict", "torchrl", "lightning", "transformers", "gymnasium", "highway_env", "mlflow",
         "datasets", "scipy.stats", "matplotlib", "rich", "jsonargparse")


def zoo_modules() -> list[str]:
    """Every module of ``zoo``, walked with :func:`pkgutil.iter_modules` package by package (unlike
    ``pkgutil.walk_packages``, it imports none of them, so each child below imports its module first)."""
    names, folders = ["zoo"], [(ZOO, "zoo.")]
    while folders:
        folder, prefix = folders.pop()
        for info in pkgutil.iter_modules([str(folder)], prefix):
            names.append(info.name)
            if info.ispkg:
                folders.append((folder / info.name.rsplit(".", 1)[1], info.name + "."))
    return sorted(names)


def import_in_child(module: str) -> str | None:
    """Import ``module`` in a forked child whose interpreter has imported no zoo module; its error, or None."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and the exit code, never return into pytest
        os.close(read)
        code = 0
        try:
            importlib.import_module(module)
        except BaseException:  # noqa: B036 (a SystemExit at import is a failure too)
            os.write(write, traceback.format_exc(limit=-8).encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        error = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return error or f"exit status {os.waitstatus_to_exitcode(status)}"
    return None


def import_each_first(modules: list[str]) -> dict[str, str]:
    """Import each of ``modules`` in its own child forked from this process; the errors by module."""
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    return {module: error for module in modules if (error := import_in_child(module)) is not None}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_module_imports_first():
    modules = zoo_modules()
    assert len(modules) > 50, modules
    # one fresh interpreter (this session has imported zoo modules already) forks a child per module
    result = subprocess.run([sys.executable, __file__, *modules], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    failures = json.loads(result.stdout.splitlines()[-1])
    assert not failures, "\n\n".join(f"{module}:\n{error}" for module, error in failures.items())


def comments(source: str) -> dict[int, str]:
    """The comments of ``source`` by line number."""
    return {token.start[0]: token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type == tokenize.COMMENT}


def nested_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements inside a function, method or class body of ``tree``."""
    found = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                if nested:
                    found.append(child)
            else:
                visit(child, nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))

    visit(tree, False)
    return found


def test_every_function_level_import_says_why():
    unexplained = []
    for path in sorted(ZOO.rglob("*.py")):
        source = path.read_text()
        notes = comments(source)
        if any(note.lstrip("# ").startswith("lazy imports:") for note in notes.values()):
            continue
        for node in nested_imports(ast.parse(source)):
            if not any("lazy" in notes.get(line, "") for line in (node.lineno, node.lineno - 1)):
                unexplained.append(f"{path.relative_to(ZOO.parent)}:{node.lineno}")
    assert not unexplained, ("imports inside functions without a reason (move them to the top of the module, or "
                             "say why they stay: a comment with 'lazy' on the line or above, or a module-level "
                             "'# lazy imports: <reason>'):\n" + "\n".join(unexplained))


if __name__ == "__main__":  # the fresh interpreter of test_every_module_imports_first
    print(json.dumps(import_each_first(sys.argv[1:])))
