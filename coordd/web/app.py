"""The ASGI application hypercorn serves: one dispatcher over the route table.

Every request passes the guard first (`coordd.web.guard`: a misdirected `Host` is 421, a
cross-origin write 403), the WebSocket handshake included. Then:

* HTTP: plain ASGI over `coordd.web.routes`, so that a request costs no framework
  objects (Quart's request and response cost about 0.7 ms per request on our machines:
  half the budget of a detail page). `OPTIONS` is the CORS preflight for any path; a
  method no route answers is 405, an over-long query string 414; then the route: 404
  when none matches, 405 for a method it does not answer, 401 for a write not allowed
  (the token when one is configured, else a loopback peer), 413 for a body over
  `max_body_bytes`. Answers are JSON with the CORS headers (reads keep
  `Access-Control-Allow-Origin: *`), an unexpected exception a 500. A handler's `Stream`
  (the export) is sent as ASGI body parts with `more_body` as its chunks come (chunked
  transfer, no `Content-Length`; the server's send waits for the client, so a slow
  reader holds one chunk, not the answer); an exception mid-stream ends the connection
  without the last chunk, so the client sees a truncated transfer, never a complete one.
  Each routed request is counted in `in_flight` (the shutdown drains them, streams
  included) and observed under its route's label.
* WebSocket and lifespan: Quart-Trio, which serves `/ws` with the handler given to
  `create_app`.
* The console: `/ui` and what is under it are the console's files (`coordd.web.static`),
  outside the route table (its paths are not API routes: not listed, not documented);
  `GET /` from a browser (`Accept: text/html`) is a redirect there, any other client gets
  the index. With `[web] base_path` a path that still carries the prefix (a proxy that does
  not strip it) is served as the path without it, the WebSocket included.

The path is matched raw (still percent-encoded, without the query string), so that
trailing-slash variants are 404s (not redirects) and the id segment reaches the backend as
the client sent it.
"""

from __future__ import annotations

import hmac
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any, Final

import orjson
from quart import websocket as quart_websocket
from quart_trio import QuartTrio

from coordd.backend import Stream
from coordd.live.subscription import parse_subscription
from coordd.web.guard import Guard, peer_is_loopback
from coordd.web.routes import HTTP_METHODS, AppContext, Call, Route, match
from coordd.web.static import PREFIX, StaticAnswer, wants_html

__all__ = ["WebApp", "create_app", "peer_is_loopback", "token_matches"]

log = logging.getLogger(__name__)

_TOKEN_HEADER: Final = "X-Task-Monitor-Token"
_CORS: Final = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, PATCH, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, X-Task-Monitor-Token, Cookie"),
]
#: Preflights that may not write (an origin not in `[server] allowed_origins`): reads only.
_READ_CORS: Final = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, OPTIONS"),
    _CORS[2],
    (b"vary", b"Origin"),
]
#: An empty preflight answer's type: Quart's default, kept so that answers stay the same.
_EMPTY: Final = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"0")]
_INTERNAL_ERROR: Final = b'{"error":"Internal server error"}'

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def token_matches(expected: str, given: str | None) -> bool:
    """Both sides trimmed, compared in constant time; an empty header never matches."""
    given = (given or "").strip()
    return bool(given) and hmac.compare_digest(given.encode(), expected.strip().encode())


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case) in an ASGI scope."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def _discard_body(receive: Receive) -> None:
    """Take the request body off the connection, or hypercorn will not keep it alive for
    the next request."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


class _TooLarge(Exception):
    pass


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body; `_TooLarge` when its `Content-Length`, or what arrives, is over
    `limit` bytes."""
    declared = _header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes,
                headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await _send(send, status, body, [(b"content-type", b"application/json"),
                                     (b"content-length", b"%d" % len(body)), *_CORS])


async def _send_stream(send: Send, stream: Stream) -> None:
    """A 200 whose body parts are the stream's chunks (see the module docstring)."""
    headers = [(b"content-type", stream.content_type), *_CORS]
    if stream.filename is not None:
        headers.append((b"content-disposition",
                        b'attachment; filename="%s"' % stream.filename.encode("ascii")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    async with aclosing(stream.chunks) as chunks:  # type: ignore[type-var]
        async for chunk in chunks:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


class WebApp:
    """The ASGI application; see the module docstring. The context is read per request,
    so a reload can change the write token."""

    def __init__(self, ctx: AppContext, quart: QuartTrio) -> None:
        self.ctx = ctx
        self.quart = quart

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Typed loosely: hypercorn and Quart each declare their own ASGI event types.
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.quart(scope, receive, send)  # the lifespan
            return
        scope = _without_base(scope, self.ctx.console.base_path)
        status, why = self._refusal(scope)
        if why is not None:
            log.debug("refused %s %s: %s", scope.get("method", "WS"), scope.get("path"), why)
            if kind == "websocket":
                await _refuse_websocket(scope, receive, send, status, _error(why))
            else:
                await _discard_body(receive)
                await _send_json(send, status, _error(why))
            return
        if kind == "websocket":
            bad = _bad_subscription(scope)
            if bad is not None:
                await _refuse_websocket(scope, receive, send, 400, _error(bad))
                return
            await self.quart(scope, receive, send)
            return
        await self._http(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str | None]:
        """The guard's answer to a request: (status, why), why None when it may pass."""
        guard = self.ctx.guard
        server = scope.get("server")
        why = guard.host_refusal(_header(scope, b"host"), server[0] if server else None)
        if why is not None:
            return 421, why
        if scope["type"] == "http":
            return 403, guard.write_refusal(scope["method"], _header(scope, b"origin"),
                                            _header(scope, b"host"))
        return 0, None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        method = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        if method == "OPTIONS":
            await _discard_body(receive)
            await _preflight(send, ctx.guard, _header(scope, b"origin"),
                             _header(scope, b"access-control-request-method"))
            return
        if method not in HTTP_METHODS:
            await _discard_body(receive)
            await _send_json(send, 405, _error("Method not allowed"))
            return
        qs = scope.get("query_string", b"")
        if len(qs) > ctx.max_query_bytes:
            await _discard_body(receive)
            await _send_json(send, 414, _error(f"query string longer than "
                                               f"{ctx.max_query_bytes} bytes"))
            return
        if path == PREFIX or path.startswith(PREFIX + "/") or (
                path == "/" and method in ("GET", "HEAD")
                and wants_html(_header(scope, b"accept"))):
            await _discard_body(receive)
            await self._console(send, method, path, scope)
            return
        route, ids = match(path)
        started = time.perf_counter()
        ctx.in_flight += 1
        try:
            try:
                answer = await self._answer(route, ids, method, qs, scope, receive)
            except Exception:
                log.exception("%s %s failed", method, path)
                answer = 500, _INTERNAL_ERROR, None
            if isinstance(answer, Stream):
                try:
                    await _send_stream(send, answer)
                except Exception:
                    # The status is sent: end the connection without the last chunk.
                    log.exception("%s %s failed while streaming", method, path)
                return
            status, body, content_type = answer
            if content_type is None:
                await _send_json(send, status, body)
            else:
                await _send(send, status, body, [(b"content-type", content_type),
                                                 (b"content-length", b"%d" % len(body))])
        finally:
            ctx.in_flight -= 1
            if ctx.observe is not None:
                ctx.observe(route.label if route is not None else "other", method,
                            time.perf_counter() - started)

    async def _console(self, send: Send, method: str, path: str, scope: Scope) -> None:
        """A console file, or the redirect to the console."""
        started = time.perf_counter()
        console = self.ctx.console
        answer: StaticAnswer | None
        if path == "/":
            answer = console.redirect()
        else:
            answer = console.answer(method, path, _header(scope, b"if-none-match"))
        if answer is None:
            await _send_json(send, 404, _error(f"Not found: the console has no {path!r}; "
                                               f"it starts at {PREFIX}/"))
        else:
            await _send(send, answer.status, answer.body, answer.headers)
        if self.ctx.observe is not None:
            self.ctx.observe(PREFIX + "/", method, time.perf_counter() - started)

    async def _answer(self, route: Route | None, ids: tuple[str, ...], method: str,
                      qs: bytes, scope: Scope, receive: Receive
                      ) -> tuple[int, bytes, bytes | None] | Stream:
        """(status, body, content type; None: JSON) for a routed request, or the
        handler's `Stream`."""
        ctx = self.ctx
        body = b""
        if route is None or route.handler is None:  # no such HTTP route (`/ws` is Quart's)
            await _discard_body(receive)
            return 404, _error("Not found"), None
        if method not in route.methods:
            await _discard_body(receive)
            return 405, _error("Method not allowed"), None
        if route.writes:
            refusal = _write_refusal(ctx, scope)
            if refusal is not None:
                await _discard_body(receive)
                return 401, _error(refusal), None
            try:
                body = await _read_body(scope, receive, ctx.max_body_bytes)
            except _TooLarge:
                return 413, _error(f"request body larger than {ctx.max_body_bytes} bytes"), None
        else:
            await _discard_body(receive)
        params = urllib.parse.parse_qsl(qs.decode("utf-8", "replace"), keep_blank_values=True)
        answer = await route.handler(ctx, Call(params, ids, ctx.clock(), body))
        if answer is None:
            return 404, _error("Not found"), None
        if isinstance(answer, Stream):
            return answer
        status, out = answer
        return status, out, route.content_type if status == 200 else None


def _without_base(scope: Scope, base: str) -> Scope:
    """`scope` with `base` taken off the front of its path (`/coordd/ui/` → `/ui/`), when it
    is there; unchanged otherwise."""
    base = base.rstrip("/")
    path: str = scope.get("path", "")
    if not base or not (path == base or path.startswith(base + "/")):
        return scope
    raw: bytes = scope.get("raw_path") or path.encode()
    strip = len(base.encode())
    return {**scope, "path": path[len(base):] or "/", "raw_path": raw[strip:] or b"/",
            "root_path": scope.get("root_path", "") + base}


def _write_refusal(ctx: AppContext, scope: Scope) -> str | None:
    """Why this request may not write (401), or None: the token when one is configured,
    else a loopback peer."""
    if ctx.write_token.strip():
        given = _header(scope, _TOKEN_HEADER.lower().encode())
        if not (given or "").strip():
            return (f"Unauthorized: missing the {_TOKEN_HEADER} header (a write token is "
                    "configured: send it as `X-Task-Monitor-Token: <token>`)")
        if not token_matches(ctx.write_token, given):
            return (f"Unauthorized: the {_TOKEN_HEADER} header does not match the "
                    "configured write token")
        return None
    client = scope.get("client")
    if not peer_is_loopback(client[0] if client else None):
        return ("Unauthorized: without a write token only loopback peers may write; set "
                "[server] write_token (or TASK_MONITOR_WRITE_TOKEN) and send it in the "
                f"{_TOKEN_HEADER} header")
    return None


async def _preflight(send: Send, guard: Guard, origin: str | None, wanted: str | None) -> None:
    """`OPTIONS`: the old monitor's answer without an `Origin` (not a browser); for a
    browser, writes only for an origin in `[server] allowed_origins`."""
    if origin is None:
        await _send(send, 204, b"", [*_CORS, *_EMPTY])
        return
    if guard.origin_allowed(origin):
        headers = [(b"access-control-allow-origin", origin.encode("latin-1")), *_CORS[1:],
                   (b"vary", b"Origin")]
        await _send(send, 204, b"", [*headers, *_EMPTY])
        return
    why = guard.write_refusal((wanted or "").strip().upper(), origin)
    if why is not None:
        body = _error(why)
        await _send(send, 403, body, [*_READ_CORS, (b"content-type", b"application/json"),
                                      (b"content-length", b"%d" % len(body))])
        return
    await _send(send, 204, b"", [*_READ_CORS, *_EMPTY])


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, status: int,
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


def _bad_subscription(scope: Scope) -> str | None:
    """Why a `/ws` query's subscription is malformed (`coordd.live.subscription`), or
    None: refused with a 400 before the upgrade, as a REST parameter would be."""
    query = (scope.get("query_string") or b"").decode("latin-1")
    if not query:
        return None
    args = urllib.parse.parse_qs(query, keep_blank_values=True)
    sub = parse_subscription(args)
    return sub if isinstance(sub, str) else None


def create_app(ctx: AppContext, *,
               websocket: Callable[[Any], Awaitable[None]] | None = None) -> WebApp:
    """The application over `ctx`; `websocket(ws)` serves one `/ws` connection (Quart's
    `websocket` object)."""
    quart = QuartTrio(__name__)
    if websocket is not None:
        serve = websocket

        @quart.websocket("/ws")
        async def ws() -> None:
            await serve(quart_websocket)

    return WebApp(ctx, quart)
