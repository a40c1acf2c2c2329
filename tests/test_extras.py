"""A missing optional dependency is one line naming the pyproject extra that installs it."""

from __future__ import annotations

import sys

import pytest

from zoo.cli import main
from zoo.errors import ZooError
from zoo.export import load_exported
from zoo.extras import OPTIONAL_MODULES


def _uninstalled(monkeypatch, *modules: str) -> None:
    """Make ``import module`` fail as it does when the package is absent (``None`` in ``sys.modules``)."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_every_optional_module_names_an_extra_of_pyproject():
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for package, extra in OPTIONAL_MODULES.values():
        assert any(spec.startswith(package) for spec in extras[extra]), (package, extra)


def test_zoo_export_onnx_without_onnx_names_the_export_extra(monkeypatch, tmp_path, capsys):
    _uninstalled(monkeypatch, "onnx")
    argv = ["export", "--policy", str(tmp_path / "never-loaded.ckpt"), "--format", "onnx", "--out", "p.onnx"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == 'error: ONNX export needs the onnx package: pip install "drive-zoo[export]"'


def test_loading_an_onnx_policy_without_onnxruntime_names_the_export_extra(monkeypatch, tmp_path):
    pytest.importorskip("onnx")
    _uninstalled(monkeypatch, "onnxruntime")
    (tmp_path / "policy.onnx").write_bytes(b"")
    with pytest.raises(ZooError, match=r'onnxruntime package: pip install "drive-zoo\[export\]"'):
        load_exported(tmp_path / "policy.onnx")



def test_zoo_benchmark_on_ray_without_ray_names_the_ray_extra(monkeypatch, capsys):
    _uninstalled(monkeypatch, "ray")
    assert main(["benchmark", "--steps", "64", "--references", "none", "--backend", "ray"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == 'error: zoo benchmark --backend ray needs the ray package: pip install "drive-zoo[ray]"'
