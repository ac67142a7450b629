"""docs/plugins.md's examples run: the minimal classifier is a working plugin, its test
passes against it, and they import nothing of coordd but `coordd` and `coordd.testing`."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
#: The doc's Python files: a code block whose first line is `# <name>.py`.
FILES = dict(re.findall(r"```python\n# (\w+\.py)\n(.*?)```", DOC, re.DOTALL))
PUBLIC = {"coordd", "coordd.testing"}


def test_the_doc_holds_the_classifier_and_its_test() -> None:
    assert set(FILES) == {"acme_classifier.py", "test_acme.py"}


@pytest.mark.parametrize("name", sorted(FILES))
def test_doc_example_imports_only_the_public_api(name: str) -> None:
    modules = set()
    for node in ast.walk(ast.parse(FILES[name])):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    assert {m for m in modules if m.split(".")[0] == "coordd"} <= PUBLIC


def test_doc_example_test_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, code in FILES.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        example = importlib.import_module("test_acme")
        tests = [f for n, f in vars(example).items() if n.startswith("test_") and callable(f)]
        assert len(tests) == 2
        for test in tests:
            test()
    finally:
        for module in ("acme_classifier", "test_acme"):
            sys.modules.pop(module, None)
