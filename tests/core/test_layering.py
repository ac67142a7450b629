"""The pure core's layer: `coordd.core` imports nothing of coordd but itself, the errors
and the plugin API's types, and none of the I/O frameworks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "coordd" / "core"
ALLOWED_COORDD = ("coordd.core", "coordd.errors", "coordd.hookspecs")
FORBIDDEN = ("trio", "pymongo", "quart", "quart_trio", "hypercorn")


def imported(path: Path) -> list[str]:
    """Every module `path` imports, anywhere in it (function-local imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_stays_in_its_layer(path: Path) -> None:
    names = imported(path)
    assert [n for n in names if within(n, "coordd")
            and not any(within(n, ok) for ok in ALLOWED_COORDD)] == []
    assert [n for n in names if any(within(n, bad) for bad in FORBIDDEN)] == []
