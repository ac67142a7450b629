"""The layers of docs/architecture.md hold, and the import-linter contracts that enforce them
in CI would catch a break: a core module that imports trio, or a lower layer that imports a
higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed "
                                "(pip install -e '.[dev]')")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts over the `coordd` package in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "coordd", tmp_path / "coordd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    r = lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_a_core_module_importing_trio_breaks_the_build(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    store = tree / "coordd" / "core" / "store.py"
    store.write_text(store.read_text(encoding="utf-8") + "\nimport trio  # noqa\n",
                     encoding="utf-8")
    r = lint(tree)
    assert r.returncode != 0
    assert "coordd.core.store -> trio" in r.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_build(tmp_path: Path) -> None:
    tree = copy_of_the_package(tmp_path)
    hub = tree / "coordd" / "live" / "hub.py"
    hub.write_text(hub.read_text(encoding="utf-8")
                   + "\nfrom coordd.service import service as _svc  # noqa\n",
                   encoding="utf-8")
    r = lint(tree)
    assert r.returncode != 0
    assert "coordd.live is not allowed to import coordd.service" in r.stdout
