"""In-process HTTP and WebSocket calls through the ASGI application, for the web tests."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from coordd.backend import MemoryQueries
from coordd.core.event import Event
from coordd.core.overrides import Overrides
from coordd.core.store import Store
from coordd.web.app import WebApp, create_app
from coordd.web.routes import AppContext

PATCH = "/api/work-sessions/ws_1/category"
GOOD = json.dumps({"collabCategory": "qa_validation", "updatedBy": "me"}).encode()


def make_app(token: str = "", *, websocket: Any = None, **kw: Any) -> WebApp:
    """The application over a store holding one event of work session `ws_1`; `kw` are
    `AppContext` fields."""
    store = Store(overrides=Overrides(None))
    store.extend([Event(1, {"type": "a2a.send", "agentId": "ruda", "ts": 5,
                            "data": {"workSessionId": "ws_1"}})])
    return create_app(AppContext(backend=MemoryQueries(lambda: store), write_token=token,
                                 openapi=b'{"openapi":"3.1.0"}', **kw), websocket=websocket)


@dataclass
class Answer:
    status_code: int
    headers: httpx.Headers
    body: bytes

    async def get_data(self) -> bytes:
        return self.body


async def request(app: Any, method: str, path: str, *, peer: str | None = "127.0.0.1",
                  headers: dict[str, str] | None = None, body: bytes = b"",
                  server: str | None = None) -> Answer:
    """One HTTP request through the ASGI application. `peer` is the client's address
    (None: no peer, as over a Unix socket); `server` the local address the request
    arrived on (None: unknown)."""
    raw_path, _, query = path.partition("?")
    sent = {"Host": "localhost", **(headers or {})}
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": urllib.parse.unquote(raw_path), "raw_path": raw_path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
        "client": (peer, 40000) if peer is not None else None,
        "server": (server, 3847) if server is not None else None,
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop() if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    await app(scope, receive, send)
    start, *rest = out
    return Answer(start["status"], httpx.Headers(start["headers"]),
                  b"".join(m.get("body", b"") for m in rest))




async def handshake(app: Any, path: str, *, host: str = "127.0.0.1",
                    query: bytes = b"") -> list[dict[str, Any]]:
    """A WebSocket handshake through the ASGI application: what it sent back."""
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "ws", "path": path, "raw_path": path.encode(), "query_string": query,
             "root_path": "", "headers": [(b"host", host.encode())],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 3847),
             "subprotocols": [], "extensions": {"websocket.http.response": {}}}
    incoming = [{"type": "websocket.connect"}]
    out: list[dict[str, Any]] = []
    done = trio.Event()

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop()
        await done.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)
        if message["type"] in ("websocket.close", "websocket.http.response.body"):
            done.set()

    with trio.fail_after(5):
        await app(scope, receive, send)
    return out
