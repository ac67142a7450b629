"""The repository's text speaks for itself: no citation of a specification document
("spec §…") that is not in the repository; the behaviour is described instead."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Everything a reader of the repository reads: docs, configuration, code and its comments.
GLOBS = ("*.md", "config.example.toml", "pyproject.toml", "Makefile", "docs/**/*.md",
         "systemd/*", "coordd/**/*.py", "plugins/**/*.py", "plugins/**/*.md",
         "plugins/**/*.toml", "bench/*.py", "tests/*.py")
#: This file names what it looks for.
EXEMPT = {Path(__file__).resolve()}


def test_no_citations_of_a_spec_outside_the_repository() -> None:
    files = sorted({p for pattern in GLOBS for p in ROOT.glob(pattern)
                    if p.is_file() and p.resolve() not in EXEMPT})
    assert len(files) > 40
    cited = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in files for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
             if "§" in line]
    assert not cited, "\n".join(cited)
