"""The REST frontend: Quart-Trio, served by hypercorn inside the root nursery.

A thin adapter: paths, methods, CORS, authorisation and size limits live here; every
route's answer (the status and the body bytes) comes from one `QueryBackend`
(`coordd.web.backend`: memory, or MongoDB with a fallback to memory). Routing follows the
old monitor's order with one catch-all route, so that trailing-slash variants are 404s
(not redirects) and the raw, still percent-encoded path segment reaches the detail routes.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from quart import Response, request
from quart import websocket as quart_websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from coordd import __version__
from coordd.web.backend import QueryBackend
from coordd.web.guard import Guard, peer_is_loopback

__all__ = ["AppContext", "create_app", "peer_is_loopback", "token_matches"]

log = logging.getLogger(__name__)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-Task-Monitor-Token, Cookie",
}
#: Preflights that may not write (an origin not in `[server] allowed_origins`): reads only.
_READ_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": CORS_HEADERS["Access-Control-Allow-Headers"],
    "Vary": "Origin",
}
_TOKEN_HEADER = "X-Task-Monitor-Token"
_ALLOWED_METHODS = frozenset({"GET", "POST", "PATCH", "OPTIONS", "HEAD"})
_READ_ONLY_ROUTES = frozenset(
    {"/api/health", "/api/events", "/api/events/search", "/api/work-sessions/search",
     "/api/stats"}
)
_WS_PREFIX = "/api/work-sessions/"
#: `GET /` and `/api`, shaped like the old monitor's index.
_INDEX = orjson.dumps({
    "name": "Task Monitor API",
    "version": "1.3.0",
    "implementation": f"coordd {__version__}",
    "endpoints": [
        "GET /api/health", "GET /api/events", "GET /api/events/search",
        "GET /api/work-sessions", "GET /api/work-sessions/search",
        "GET /api/work-sessions/:id", "PATCH /api/work-sessions/:id/category",
        "GET /api/stats", "GET /openapi.json", "GET /metrics", "GET /-/plugins", "WS /ws",
    ],
    "docs": "/openapi.json",
})


def iso_now(now_ms: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds, as JavaScript's `toISOString()`."""
    ms = time.time() * 1000 if now_ms is None else now_ms
    d = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


@dataclass(slots=True)
class AppContext:
    """What the routes read. `backend` answers every route over work sessions and
    events; `health` returns (ok, checks) for /api/health."""

    backend: QueryBackend
    write_token: str = ""
    #: Origins that may write, names the server answers to on loopback (`coordd.web.guard`).
    guard: Guard = field(default_factory=Guard)
    max_body_bytes: int = 65536
    max_query_bytes: int = 8192
    clock: Callable[[], float] = lambda: time.time() * 1000
    health: Callable[[], tuple[bool, dict[str, Any]]] = lambda: (True, {})
    plugins: Callable[[], list[dict[str, Any]]] = list
    metrics: Callable[[], bytes] | None = None
    openapi: bytes = b"{}"
    observe: Callable[[str, str, float], None] | None = None
    #: HTTP requests being answered right now (the shutdown drains them).
    in_flight: int = 0


def _json(status: int, body: bytes) -> Response:
    return Response(body, status=status, headers=CORS_HEADERS, content_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json(status, orjson.dumps({"error": message}))


def token_matches(expected: str, given: str | None) -> bool:
    """Both sides trimmed, compared in constant time; an empty header never matches."""
    given = (given or "").strip()
    return bool(given) and hmac.compare_digest(given.encode(), expected.strip().encode())


def _is_fast_read(route: str) -> bool:
    """Health, events, the session list and one session (not `search`, which routes first)."""
    if route in ("/api/health", "/api/events", "/api/work-sessions"):
        return True
    if route.startswith(_WS_PREFIX):
        rest = route[len(_WS_PREFIX):]
        return bool(rest) and "/" not in rest and rest != "search"
    return False


_RAW_CORS = [(k.lower().encode(), v.encode()) for k, v in CORS_HEADERS.items()]


def _header(scope: Any, name: bytes) -> str | None:
    """The first value of header `name` (lower case) in an ASGI scope."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _discard_body(receive: Any) -> None:
    """Take the request body off the connection, or hypercorn will not keep it alive for
    the next request."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _send_json(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"),
               (b"content-length", b"%d" % len(body)), *_RAW_CORS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Guarded:
    """ASGI middleware in front of everything (Quart's routes, the fast reads and the
    WebSocket): refuses a misdirected `Host` (421) and cross-origin writes (403), see
    `coordd.web.guard`. The guard is read per request, so a reload can replace it."""

    def __init__(self, inner: Any, ctx: AppContext) -> None:
        self.inner = inner
        self.ctx = ctx

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.inner(scope, receive, send)  # type: ignore[no-any-return]
        status, why = self._refusal(scope)
        if why is None:
            return await self.inner(scope, receive, send)  # type: ignore[no-any-return]
        log.debug("refused %s %s: %s", scope.get("method", "WS"), scope.get("path"), why)
        body = orjson.dumps({"error": why})
        if kind == "websocket":
            await _refuse_websocket(scope, receive, send, status, body)
        else:
            await _discard_body(receive)
            await _send_json(send, status, body)
        return None

    def _refusal(self, scope: Any) -> tuple[int, str | None]:
        guard = self.ctx.guard
        server = scope.get("server")
        why = guard.host_refusal(_header(scope, b"host"), server[0] if server else None)
        if why is not None:
            return 421, why
        if scope["type"] == "http":
            return 403, guard.write_refusal(scope["method"], _header(scope, b"origin"))
        return 0, None


async def _refuse_websocket(scope: Any, receive: Any, send: Any, status: int,
                            body: bytes) -> None:
    """Answer a WebSocket handshake with an HTTP error (or, without the ASGI extension
    for that, a close before accepting, which the server turns into a 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(body))]
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class _FastReads:
    """ASGI middleware in front of Quart: plain GETs of the hot read routes are answered
    straight from the pre-assembled bytes, without Quart's request and response objects
    (about 0.7 ms per request on our machines: half the budget of a detail page).
    Everything else — other methods, other routes, WebSocket, lifespan — goes to Quart,
    which applies the same semantics through the same `read` function."""

    def __init__(self, inner: Any, ctx: AppContext,
                 read: Callable[[str, list[tuple[str, str]]], Awaitable[tuple[int, bytes]]]
                 ) -> None:
        self.inner = inner
        self.ctx = ctx
        self.read = read

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.inner(scope, receive, send)  # type: ignore[no-any-return]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        route = raw_path.decode("latin-1").split("?", 1)[0]
        qs = scope.get("query_string", b"")
        if not _is_fast_read(route) or len(qs) > self.ctx.max_query_bytes:
            return await self.inner(scope, receive, send)  # type: ignore[no-any-return]
        ctx = self.ctx
        await _discard_body(receive)
        params = urllib.parse.parse_qsl(qs.decode("utf-8", "replace"), keep_blank_values=True)
        started = time.perf_counter()
        ctx.in_flight += 1
        try:
            try:
                status, body = await self.read(route, params)
            except Exception:
                log.exception("GET %s failed", route)
                status, body = 500, b'{"error":"Internal server error"}'
            await _send_json(send, status, body)
        finally:
            ctx.in_flight -= 1
            if ctx.observe is not None:
                ctx.observe(route, "GET", time.perf_counter() - started)
        return None


def _preflight(guard: Guard, origin: str | None, wanted: str | None) -> Response:
    """`OPTIONS`: the old monitor's answer without an `Origin` (not a browser); for a
    browser, writes only for an origin in `[server] allowed_origins`."""
    if origin is None:
        return Response(b"", status=204, headers=CORS_HEADERS)
    if guard.origin_allowed(origin):
        return Response(b"", status=204, headers={
            **CORS_HEADERS, "Access-Control-Allow-Origin": origin, "Vary": "Origin"})
    why = guard.write_refusal((wanted or "").strip().upper(), origin)
    if why is not None:
        return Response(orjson.dumps({"error": why}), status=403, headers=_READ_CORS,
                        content_type="application/json")
    return Response(b"", status=204, headers=_READ_CORS)


def _write_refusal(ctx: AppContext) -> str | None:
    """Why the current request may not write (401), or None: the token when one is
    configured, else a loopback peer."""
    if ctx.write_token.strip():
        given = request.headers.get(_TOKEN_HEADER)
        if not (given or "").strip():
            return (f"Unauthorized: missing the {_TOKEN_HEADER} header (a write token is "
                    "configured: send it as `X-Task-Monitor-Token: <token>`)")
        if not token_matches(ctx.write_token, given):
            return (f"Unauthorized: the {_TOKEN_HEADER} header does not match the "
                    "configured write token")
        return None
    client = request.scope.get("client")
    if not peer_is_loopback(client[0] if client else None):
        return ("Unauthorized: without a write token only loopback peers may write; set "
                "[server] write_token (or TASK_MONITOR_WRITE_TOKEN) and send it in the "
                f"{_TOKEN_HEADER} header")
    return None


def create_app(ctx: AppContext, *,
               websocket: Callable[[Any], Awaitable[None]] | None = None) -> QuartTrio:
    """Build the Quart-Trio application over `ctx`; `websocket(ws)` serves one `/ws`
    connection (Quart's `websocket` object)."""
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = ctx.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    async def dispatch(path: str = "") -> Response:
        raw_path = request.scope.get("raw_path") or request.path.encode()
        route = raw_path.decode("latin-1").split("?", 1)[0]
        method = request.method
        if method == "OPTIONS":
            return _preflight(ctx.guard, request.headers.get("Origin"),
                              request.headers.get("Access-Control-Request-Method"))
        if method not in _ALLOWED_METHODS:
            return _error(405, "Method not allowed")
        qs = request.scope.get("query_string", b"")
        if len(qs) > ctx.max_query_bytes:
            return _error(414, f"query string longer than {ctx.max_query_bytes} bytes")
        params = urllib.parse.parse_qsl(
            qs.decode("utf-8", "replace"), keep_blank_values=True
        )
        if method in ("POST", "PATCH") and route in _READ_ONLY_ROUTES:
            return _error(405, "Method not allowed")
        started = time.perf_counter()
        ctx.in_flight += 1
        try:
            return await _route(route, method, params)
        except RequestEntityTooLarge:
            return _error(413, f"request body larger than {ctx.max_body_bytes} bytes")
        except Exception:
            log.exception("%s %s failed", method, route)
            return _error(500, "Internal server error")
        finally:
            ctx.in_flight -= 1
            if ctx.observe is not None:
                ctx.observe(route, method, time.perf_counter() - started)

    async def _route(route: str, method: str, params: list[tuple[str, str]]) -> Response:
        now = ctx.clock()
        backend = ctx.backend
        if _is_fast_read(route):
            if method not in ("GET", "HEAD"):
                return _error(405, "Method not allowed")
            return _json(*await read(route, params))
        if route == "/api/events/search":
            return _json(*await backend.search_events(params, now))
        if route == "/api/work-sessions/search":
            return _json(*await backend.search_work_sessions(params, now))
        if route == "/api/stats":
            return _json(*await backend.get_stats(params, now))
        if route.startswith(_WS_PREFIX):
            parts = route[len(_WS_PREFIX):].split("/")
            if len(parts) == 2 and parts[1] == "category" and parts[0]:
                if method != "PATCH":
                    return _error(405, "Method not allowed")
                refusal = _write_refusal(ctx)
                if refusal is not None:
                    return _error(401, refusal)
                raw = await request.get_data(cache=False, as_text=False)
                assert isinstance(raw, bytes)
                return _json(*await backend.patch_category(parts[0], raw, params, now))
            return _error(404, "Not found")
        if route in ("/", "/api"):
            return _json(200, _INDEX)
        if route == "/openapi.json":
            return _json(200, ctx.openapi)
        if route == "/-/plugins":
            return _json(200, orjson.dumps({"plugins": ctx.plugins()}))
        if route == "/metrics" and ctx.metrics is not None:
            return Response(ctx.metrics(), status=200,
                            content_type="text/plain; version=0.0.4; charset=utf-8")
        return _error(404, "Not found")

    async def read(route: str, params: list[tuple[str, str]]) -> tuple[int, bytes]:
        """The hot read routes: health, events, work sessions and one session."""
        now = ctx.clock()
        if route == "/api/health":
            ok, checks = ctx.health()
            body = {"status": "ok" if ok else "fail", "timestamp": iso_now(now), "checks": checks}
            return 200 if ok else 503, orjson.dumps(body)
        if route == "/api/events":
            return await ctx.backend.get_events(params, now)
        if route == "/api/work-sessions":
            return await ctx.backend.get_work_sessions(params, now)
        return await ctx.backend.get_work_session(route[len(_WS_PREFIX):], params, now)

    app.asgi_app = _Guarded(  # type: ignore[method-assign]
        _FastReads(app.asgi_app, ctx, read), ctx)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "HEAD"]
    app.add_url_rule("/", "root", dispatch, methods=methods, defaults={"path": ""})
    app.add_url_rule("/<path:path>", "any", dispatch, methods=methods)

    if websocket is not None:
        serve = websocket

        @app.websocket("/ws")
        async def ws() -> None:
            await serve(quart_websocket)

    @app.errorhandler(413)
    async def too_large(_: Any) -> Response:
        return _error(413, f"request body larger than {ctx.max_body_bytes} bytes")

    return app
