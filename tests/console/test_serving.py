"""The console's files at /ui/ in-process: types, caching, the CSP, the redirects, the base
path, and that the package ships every file the page loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coordd.config import load_config
from coordd.errors import ConfigError
from coordd.web.guard import Guard, same_origin
from coordd.web.static import ConsoleFiles, wants_html
from tests.web.helpers import GOOD, PATCH, make_app, request

CONSOLE = Path(__file__).resolve().parents[2] / "coordd" / "web" / "console"


async def test_index_and_assets_have_their_types_caching_and_the_csp() -> None:
    app = make_app()
    r = await request(app, "GET", "/ui/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "connect-src 'self' ws: wss:" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert b'<script type="module" src="app.js"></script>' in r.body
    for path, kind in (("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css"),
                       ("/ui/views/sessions.js", "text/javascript"),
                       ("/ui/icon.svg", "image/svg+xml")):
        r = await request(app, "GET", path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith(kind), path
        assert r.headers["cache-control"] == "public, max-age=0, must-revalidate"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert int(r.headers["content-length"]) == len(r.body) > 0


async def test_an_etag_revalidates_to_304_and_head_has_no_body() -> None:
    app = make_app()
    first = await request(app, "GET", "/ui/app.js")
    etag = first.headers["etag"]
    r = await request(app, "GET", "/ui/app.js", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.body == b"" and r.headers["etag"] == etag
    r = await request(app, "GET", "/ui/app.js", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200 and r.body == first.body
    r = await request(app, "HEAD", "/ui/app.js")
    assert r.status_code == 200 and r.body == b""
    assert int(r.headers["content-length"]) == len(first.body)


async def test_unknown_files_and_other_methods() -> None:
    app = make_app()
    for path in ("/ui/nope.js", "/ui/../coordd/config.py", "/ui/views", "/uix"):
        r = await request(app, "GET", path)
        assert r.status_code == 404, path
    r = await request(app, "GET", "/ui/nope.js")
    assert "/ui/" in r.body.decode()
    r = await request(app, "POST", "/ui/app.js")
    assert r.status_code == 405 and "GET and HEAD" in r.body.decode()


async def test_a_browser_is_sent_to_the_console_and_json_clients_get_the_index() -> None:
    app = make_app()
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    r = await request(app, "GET", "/", headers={"Accept": accept})
    assert r.status_code == 302 and r.headers["location"] == "/ui/"
    for headers in ({}, {"Accept": "application/json"}, {"Accept": "*/*"},
                    {"Accept": "application/json, text/html;q=0.5"}):
        r = await request(app, "GET", "/", headers=headers)
        assert r.status_code == 200, headers
        assert r.headers["content-type"] == "application/json"
    r = await request(app, "GET", "/ui")
    assert r.status_code == 302 and r.headers["location"] == "/ui/"


def test_wants_html() -> None:
    assert wants_html("text/html")
    assert not wants_html(None) and not wants_html("") and not wants_html("*/*")
    assert not wants_html("text/html;q=0, application/json")
    assert not wants_html("text/html;q=0.2, application/json;q=0.9")


async def test_the_base_path_prefixes_the_redirect_and_is_stripped_when_the_proxy_keeps_it(
) -> None:
    app = make_app(console=ConsoleFiles(base_path="/coordd"))
    r = await request(app, "GET", "/", headers={"Accept": "text/html"})
    assert r.headers["location"] == "/coordd/ui/"
    r = await request(app, "GET", "/coordd/", headers={"Accept": "text/html"})
    assert r.headers["location"] == "/coordd/ui/"
    r = await request(app, "GET", "/coordd/ui/app.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    r = await request(app, "GET", "/coordd/api/work-sessions")
    assert r.status_code == 200 and b'"sessions"' in r.body
    # A proxy that strips the prefix: the same answers without it.
    assert (await request(app, "GET", "/api/work-sessions")).status_code == 200
    assert (await request(app, "GET", "/coordd-x/ui/")).status_code == 404


@pytest.mark.parametrize(("value", "ok"), [("", True), ("/coordd", True), ("/a/b-c", True),
                                           ("coordd", False), ("/coordd/", False),
                                           ("/x?y", False), ("/a b", False)])
def test_the_base_path_is_validated(tmp_path: Path, value: str, ok: bool) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[web]\nbase_path = "{value}"\n')
    if ok:
        assert load_config(path).web.base_path == value
    else:
        with pytest.raises(ConfigError, match=r"\[web\].*base_path.*path prefix"):
            load_config(path)


async def test_the_console_writes_from_its_own_origin_only() -> None:
    app = make_app()
    host = {"Host": "127.0.0.1:3847"}
    r = await request(app, "PATCH", PATCH, body=GOOD,
                      headers={**host, "Origin": "http://127.0.0.1:3847"})
    assert r.status_code == 200
    for origin in ("http://127.0.0.1:3848", "http://evil.example", "http://localhost:3847"):
        r = await request(app, "PATCH", PATCH, body=GOOD, headers={**host, "Origin": origin})
        assert r.status_code == 403, origin
    assert same_origin("https://coordd.example.org", "coordd.example.org:443")
    assert same_origin("http://localhost", "localhost:80")
    assert not same_origin("null", "localhost")
    assert Guard().write_refusal("PATCH", "http://a:1", "a:1") is None
    assert Guard().write_refusal("PATCH", "http://a:1", "b:1") is not None


def test_the_package_ships_every_file_the_page_loads() -> None:
    names = set(ConsoleFiles().names())
    assert {"index.html", "app.js", "style.css"} <= names
    # Every module import and every file index.html names is served.
    wanted = set(re.findall(r'(?:src|href)="([^"#:]+)"', (CONSOLE / "index.html").read_text()))
    for js in CONSOLE.rglob("*.js"):
        base = js.parent.relative_to(CONSOLE)
        for target in re.findall(r'from "(\.[^"]+)"', js.read_text()):
            wanted.add(str(base / target).replace("\\", "/"))
    normalised = {str(Path(w)).replace("\\", "/") for w in wanted}
    resolved = set()
    for w in normalised:
        parts: list[str] = []
        for part in w.split("/"):
            if part == "..":
                parts.pop()
            elif part != ".":
                parts.append(part)
        resolved.add("/".join(parts))
    assert resolved <= names, resolved - names
    # No inline script or style in the page (the CSP would block them).
    html = (CONSOLE / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    assert "<style" not in html and not re.search(r"\son[a-z]+=", html)
    # The wheel takes them (package data).
    pyproject = (CONSOLE.parents[2] / "pyproject.toml").read_text()
    assert '"coordd.web" = ["console/*.html", "console/*.js"' in pyproject
