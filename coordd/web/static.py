"""The web console's files (`coordd/web/console/`), served at `/ui/`.

The files ship inside the package and are read once, at the first request: a file's
answer (type, ETag, body) is then built from memory. Only the files that exist are
served (a name is looked up, never joined to a path), so `..` and other tricks are 404s.

Headers, the same for every file:

* `Content-Type` from the extension (UTF-8 for text);
* `Cache-Control: no-cache` for `index.html` (a new release is seen at the next load),
  `public, max-age=0, must-revalidate` for the assets; both with a strong `ETag` (a hash of
  the content), so a revalidation is a `304` without a body;
* a strict `Content-Security-Policy`: everything from this origin only, no inline script
  or style, WebSocket connections to this host; `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer`, and no framing.

`/ui` (without the slash) and `GET /` from a browser (`Accept: text/html`) are redirects to
`<base_path>/ui/`; `base_path` is `[web] base_path`, the prefix a reverse proxy publishes
the daemon under.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

__all__ = ["CSP", "PREFIX", "ConsoleFiles", "StaticAnswer", "wants_html"]

#: Where the console is served.
PREFIX: Final = "/ui"
CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; "
              "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
_TYPES: Final = {
    "html": b"text/html; charset=utf-8",
    "js": b"text/javascript; charset=utf-8",
    "css": b"text/css; charset=utf-8",
    "svg": b"image/svg+xml",
    "png": b"image/png",
    "ico": b"image/x-icon",
    "json": b"application/json",
    "txt": b"text/plain; charset=utf-8",
}
_SECURITY: Final = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_INDEX_CACHE: Final = b"no-cache"
_ASSET_CACHE: Final = b"public, max-age=0, must-revalidate"

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class StaticAnswer:
    """A status, its headers and its body."""

    status: int
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: bytes
    etag: bytes
    cache: bytes


def wants_html(accept: str | None) -> bool:
    """Whether an `Accept` header asks for a page (a browser's navigation) rather than JSON:
    `text/html` is named and ranked at least as high as `application/json`."""
    if not accept:
        return False
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        ranks[media.lower()] = max(q, ranks.get(media.lower(), 0.0))
    html = ranks.get("text/html", 0.0)
    return html > 0 and html >= ranks.get("application/json", 0.0)


def _walk(root: Traversable, prefix: str = "") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for entry in root.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            out.update(_walk(entry, name + "/"))
        elif not entry.name.startswith("."):
            out[name] = entry.read_bytes()
    return out


def _build(files: dict[str, bytes]) -> dict[str, _File]:
    out: dict[str, _File] = {}
    for name, body in files.items():
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        out[name] = _File(body, _TYPES.get(ext, b"application/octet-stream"), etag,
                          _INDEX_CACHE if name == "index.html" else _ASSET_CACHE)
    return out


@dataclass(slots=True)
class ConsoleFiles:
    """The console's files by name (`index.html`, `app.js`, `views/sessions.js`, ...).
    `files` overrides the package's (tests); `base_path` is `[web] base_path`."""

    base_path: str = ""
    files: dict[str, bytes] | None = None
    _table: dict[str, _File] | None = field(default=None, repr=False)

    def _loaded(self) -> dict[str, _File]:
        if self._table is None:
            files = self.files
            if files is None:
                files = _walk(resources.files("coordd.web") / "console")
            self._table = _build(files)
        return self._table

    def names(self) -> list[str]:
        return sorted(self._loaded())

    def redirect(self) -> StaticAnswer:
        """To the console's index, under the base path."""
        location = (self.base_path.rstrip("/") + PREFIX + "/").encode()
        return StaticAnswer(302, [(b"location", location), (b"content-length", b"0"),
                                  (b"cache-control", b"no-cache")])

    def answer(self, method: str, path: str, if_none_match: str | None) -> StaticAnswer | None:
        """The answer to `method` on `path` (under `/ui`), None when it is not the
        console's (the caller's 404)."""
        if path == PREFIX:
            return self.redirect()
        name = path[len(PREFIX) + 1:] or "index.html"
        file = self._loaded().get(name)
        if file is None:
            return None
        if method not in ("GET", "HEAD"):
            body = b'{"error":"Method not allowed: the console\'s files answer GET and HEAD"}'
            return StaticAnswer(405, [(b"content-type", b"application/json"),
                                      (b"allow", b"GET, HEAD"),
                                      (b"content-length", b"%d" % len(body))], body)
        headers: Headers = [(b"etag", file.etag), (b"cache-control", file.cache), *_SECURITY]
        if if_none_match is not None and _etag_matches(if_none_match, file.etag):
            return StaticAnswer(304, headers)
        headers += [(b"content-type", file.content_type),
                    (b"content-length", b"%d" % len(file.body))]
        return StaticAnswer(200, headers, b"" if method == "HEAD" else file.body)


def _etag_matches(header: str, etag: bytes) -> bool:
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag.decode() in tags
