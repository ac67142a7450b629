"""The route table: the one list of what the daemon serves over HTTP and WebSocket.

Each `Route` says its path pattern (`:id` is one raw, still percent-encoded path
segment), the methods it answers, its handler, whether it writes, and its OpenAPI
summary and operation. Everything else is derived from `ROUTES`:

* the dispatcher (`coordd.web.app`) matches a path with `match` (exact paths first, so
  `/api/work-sessions/search` is never read as an id) and allows a route's methods only;
* the index page (`GET /`, `GET /api`) lists `"<METHOD> <pattern>"` of every listed route;
* the request-latency metric is labelled by the pattern (`route_template`), `other` when
  no route matches, so the label stays bounded;
* `/openapi.json` documents every route that has an operation (`coordd.web.openapi`).

A handler gets the `AppContext` and the `Call` (parameters, path ids, body, clock) and
returns the status and the body bytes, a `Stream` (a 200 sent chunk by chunk: the
export), or None when the route is not served here (404).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from coordd import __version__
from coordd.backend import QueryBackend, Stream
from coordd.core.params import Params
from coordd.core.queries import Response
from coordd.web import openapi
from coordd.web.guard import Guard
from coordd.web.static import ConsoleFiles

__all__ = ["INDEX", "ROUTES", "AppContext", "Call", "Route", "iso_now", "match",
           "route_template"]


def iso_now(now_ms: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds, as JavaScript's `toISOString()`."""
    ms = time.time() * 1000 if now_ms is None else now_ms
    d = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


@dataclass(slots=True)
class AppContext:
    """What the routes and the dispatcher read. `backend` answers every route over work
    sessions and events; `health` returns (ok, checks) for /api/health."""

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
    #: `GET /api/attention`'s answer for (params, now_ms); None: not served (404).
    attention: Callable[[Params, float], Response] | None = None
    #: The console's files (`/ui/`) and `[web] base_path`.
    console: ConsoleFiles = field(default_factory=ConsoleFiles)
    #: HTTP requests being answered right now (the shutdown drains them).
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a handler sees it: the decoded query parameters (repeats and order
    kept), the path's `:id` segments (raw), the body (of a writing route) and the clock."""

    params: Params
    ids: tuple[str, ...]
    now_ms: float
    body: bytes = b""


Handler = Callable[[AppContext, Call], Awaitable[Response | Stream | None]]


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the table; see the module docstring. `methods[0]` is the one the
    index page and OpenAPI name; `WS` is the WebSocket upgrade (served by Quart)."""

    pattern: str
    methods: tuple[str, ...]
    handler: Handler | None
    summary: str = ""
    #: The OpenAPI operation (without the summary), from the document's shared parts.
    doc: Callable[[openapi.Parts], dict[str, Any]] | None = None
    writes: bool = False
    #: Listed on the index page.
    listed: bool = True
    #: The content type of a 200 answer; None: JSON, with the CORS headers (a `Stream`
    #: says its own: this is the default one's).
    content_type: bytes | None = None

    @property
    def label(self) -> str:
        """The request-latency metric's `route` label."""
        return self.pattern


# ---------------------------------------------------------------------------- handlers


async def _health(ctx: AppContext, call: Call) -> Response:
    ok, checks = ctx.health()
    body = {"status": "ok" if ok else "fail", "timestamp": iso_now(call.now_ms),
            "checks": checks}
    return 200 if ok else 503, orjson.dumps(body)


async def _events(ctx: AppContext, call: Call) -> Response:
    return await ctx.backend.get_events(call.params, call.now_ms)


async def _search_events(ctx: AppContext, call: Call) -> Response:
    return await ctx.backend.search_events(call.params, call.now_ms)


async def _work_sessions(ctx: AppContext, call: Call) -> Response:
    return await ctx.backend.get_work_sessions(call.params, call.now_ms)


async def _search_work_sessions(ctx: AppContext, call: Call) -> Response:
    return await ctx.backend.search_work_sessions(call.params, call.now_ms)


async def _work_session(ctx: AppContext, call: Call) -> Response:
    return await ctx.backend.get_work_session(call.ids[0], call.params, call.now_ms)


async def _category(ctx: AppContext, call: Call) -> Response:
    return await ctx.backend.patch_category(call.ids[0], call.body, call.params, call.now_ms)


async def _stats(ctx: AppContext, call: Call) -> Response:
    return await ctx.backend.get_stats(call.params, call.now_ms)


async def _attention(ctx: AppContext, call: Call) -> Response | None:
    return ctx.attention(call.params, call.now_ms) if ctx.attention is not None else None


async def _export(ctx: AppContext, call: Call) -> Response | Stream:
    return await ctx.backend.export(call.params, call.now_ms)


async def _index(ctx: AppContext, call: Call) -> Response:
    return 200, INDEX


async def _openapi(ctx: AppContext, call: Call) -> Response:
    return 200, ctx.openapi


async def _metrics(ctx: AppContext, call: Call) -> Response | None:
    return (200, ctx.metrics()) if ctx.metrics is not None else None


async def _plugins(ctx: AppContext, call: Call) -> Response:
    return 200, orjson.dumps({"plugins": ctx.plugins()})


# ---------------------------------------------------------------------------- the table

_READ: Final = ("GET", "HEAD")
#: The introspection routes answer whatever the method (the old catch-all did; kept).
_ANY: Final = ("GET", "HEAD", "POST", "PATCH")

#: In the index page's order (the old monitor's).
ROUTES: Final[tuple[Route, ...]] = (
    Route("/api/health", _READ, _health, "Health with component checks", openapi.health),
    Route("/api/events", _READ, _events, "Events in log order (the last `limit` matches)",
          openapi.events),
    Route("/api/events/search", _READ, _search_events,
          "Literal, case-insensitive search in messages, agents and types",
          openapi.search_events),
    Route("/api/work-sessions", _READ, _work_sessions, "Work sessions, most recent first",
          openapi.work_sessions),
    Route("/api/work-sessions/search", _READ, _search_work_sessions,
          "Literal search in agents, category and id", openapi.search_work_sessions),
    Route("/api/work-sessions/:id", _READ, _work_session,
          "One work session with its threads and events", openapi.work_session),
    Route("/api/work-sessions/:id/category", ("PATCH",), _category,
          "Override a work session's category", openapi.category, writes=True),
    Route("/api/stats", _READ, _stats, "Counts and figures over a time range", openapi.stats),
    Route("/api/attention", _READ, _attention,
          "Work that needs attention: unanswered sends, failures, silent sessions",
          openapi.attention),
    Route("/api/export", ("GET",), _export, "The enriched events as NDJSON or CSV, streamed",
          openapi.export, content_type=b"application/x-ndjson"),
    Route("/openapi.json", _ANY, _openapi),
    Route("/metrics", _ANY, _metrics, "Prometheus metrics", openapi.metrics,
          content_type=b"text/plain; version=0.0.4; charset=utf-8"),
    Route("/-/plugins", _ANY, _plugins, "Loaded plugins", openapi.plugins),
    Route("/ws", ("WS",), None,
          "WebSocket live push (upgrade); resume with ?since=<seq>&epoch=<epoch>",
          openapi.websocket),
    Route("/", _ANY, _index, listed=False),
    Route("/api", _ANY, _index, listed=False),
)

#: `GET /` and `/api`, shaped like the old monitor's index.
INDEX: Final = orjson.dumps({
    "name": "Task Monitor API",
    "version": "1.3.0",
    "implementation": f"coordd {__version__}",
    "endpoints": [f"{r.methods[0]} {r.pattern}" for r in ROUTES if r.listed],
    "docs": "/openapi.json",
})

#: Every HTTP method some route answers, and OPTIONS (the preflight, for any path).
HTTP_METHODS: Final = frozenset(
    {m for r in ROUTES if r.handler is not None for m in r.methods} | {"OPTIONS"})


class _Table:
    """`match` over a table: exact patterns by lookup, the `:id` ones segment by segment."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.exact = {r.pattern: r for r in routes if ":" not in r.pattern}
        self.patterns = [(r, r.pattern.split("/")) for r in routes if ":" in r.pattern]

    def match(self, path: str) -> tuple[Route | None, tuple[str, ...]]:
        route = self.exact.get(path)
        if route is not None:
            return route, ()
        segments = path.split("/")
        for route, parts in self.patterns:
            if len(parts) != len(segments):
                continue
            ids: list[str] = []
            for part, segment in zip(parts, segments, strict=True):
                if part.startswith(":"):
                    if not segment:
                        break
                    ids.append(segment)
                elif part != segment:
                    break
            else:
                return route, tuple(ids)
        return None, ()


_TABLE: Final = _Table(ROUTES)


def match(path: str) -> tuple[Route | None, tuple[str, ...]]:
    """The route for `path` (raw, without the query string) and its `:id` segments;
    (None, ()) when no route matches."""
    return _TABLE.match(path)


def route_template(path: str) -> str:
    """The metric label for `path`: its route's pattern (ids collapsed), else `other`."""
    route, _ = _TABLE.match(path)
    return route.label if route is not None else "other"
