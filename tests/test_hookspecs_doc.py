"""Every hook is documented in docs/plugins.md with its exact signature, says whether it
stops at the first result and since which version, and has a `test_hook_<name>`."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pluggy
import pytest

import coordd
from coordd import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")


def signature(name: str) -> str:
    """`name(arg: Type, ...) -> Return`, as written in the hookspec's source."""
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def spec_functions() -> list[str]:
    return sorted(n for n, f in vars(hookspecs).items()
                  if callable(f) and hasattr(f, "coordd_spec"))


def section(name: str) -> str:
    match = re.search(rf"^### {name}\n(.*?)(?=^## |^### |\Z)", DOC, re.MULTILINE | re.DOTALL)
    assert match is not None, f"docs/plugins.md has no '### {name}' section"
    return match.group(1)


def test_hook_names_list_every_hookspec() -> None:
    assert sorted(hookspecs.HOOK_NAMES) == spec_functions()
    assert all(name.startswith("coordd_") for name in hookspecs.HOOK_NAMES)


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_hook_is_documented_with_its_exact_signature(name: str) -> None:
    assert f"```python\n{signature(name)}\n```" in section(name)


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_hook_documents_firstresult_and_versionadded(name: str) -> None:
    firstresult = getattr(hookspecs, name).coordd_spec.get("firstresult", False)
    text, doc = section(name), inspect.getdoc(getattr(hookspecs, name)) or ""
    assert ("first non-None" in text) == firstresult
    assert ("Every implementation is called" in text) != firstresult
    assert ("first non-None" in doc) == firstresult
    in_doc = re.search(r"^\*versionadded (\d+\.\d+\.\d+)\*$", text, re.MULTILINE)
    in_spec = re.search(r"^\.\. versionadded:: (\d+\.\d+\.\d+)$", doc, re.MULTILINE)
    assert in_doc is not None and in_spec is not None
    assert in_doc.group(1) == in_spec.group(1)
    for param in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f":param {param}:" in doc
        assert f"`{param}`" in text


def test_every_hook_has_a_test_of_its_own() -> None:
    tree = ast.parse((ROOT / "tests" / "plugins" / "test_plugins.py").read_text(encoding="utf-8"))
    tests = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    missing = [n for n in hookspecs.HOOK_NAMES if f"test_hook_{n}" not in tests]
    assert missing == []


def test_plugin_author_exports() -> None:
    assert isinstance(coordd.hookimpl, pluggy.HookimplMarker)
    assert coordd.hookimpl.project_name == "coordd" == hookspecs.hookspec.project_name
    assert coordd.Classification is hookspecs.Classification
    assert set(coordd.__all__) == {"Classification", "__version__", "hookimpl"}
