"""Fixtures for the browser tests: Debian's chromium driven by Python playwright.

The tests skip when /usr/bin/chromium is missing, unless COORDD_REQUIRE_BROWSER is set (CI
sets it, and installs chromium with scripts/chromium.sh first), so that CI fails instead.
Each test saves a screenshot in .artifacts/console/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("COORDD_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (scripts/chromium.sh installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    why = _missing()
    if why is not None:
        if os.environ.get("COORDD_REQUIRE_BROWSER"):
            pytest.fail(f"COORDD_REQUIRE_BROWSER is set but {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A page with what went wrong in it: page errors and CSP violations."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def problems(self) -> list[str]:
        """Page errors and console messages that are not the expected 404 of a route this
        daemon does not have yet."""
        csp = [m for m in self.console if "Content Security Policy" in m]
        return self.errors + csp

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """`new_page(width=1280, height=800, dark=False)` -> Page; closed after the test, with a
    screenshot named after it."""
    contexts: list[Any] = []
    pages: list[Page] = []

    def make(width: int = 1280, height: int = 800, dark: bool = False) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      color_scheme="dark" if dark else "light",
                                      timezone_id="Asia/Seoul", locale="ko-KR")
        contexts.append(context)
        page = Page(context.new_page())
        page.page.set_default_timeout(15000)
        pages.append(page)
        return page

    yield make
    for i, page in enumerate(pages):
        try:
            page.shot(f"{request.node.name}-{i}")
        except Exception:
            pass
    for context in contexts:
        context.close()
