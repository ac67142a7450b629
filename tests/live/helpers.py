"""Helpers shared by the tests of this package (no test module imports another)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlencode

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import websocket
from quart_trio import QuartTrio

from coordd.core.event import Event
from coordd.live.hub import Hub

T0 = 1_771_330_358_110.0  # 2026-02-17T12:12:38.110Z


GUARD = 20  # seconds: only bounds how long a broken build can hang


def make_event(seq: int, etype: str = "a2a.send", ws: str | None = "ws_1", *,
               agent: str | None = "main", pad: int = 0, **extra: Any) -> Event:
    data: dict[str, Any] = {"fromAgent": agent or "x", "toAgent": "ruda",
                            "message": f"message {seq}" + "x" * pad}
    if ws is not None:
        data["workSessionId"] = ws
    data.update(extra)
    raw: dict[str, Any] = {"type": etype}
    if agent is not None:
        raw["agentId"] = agent
    raw["ts"] = 1_771_330_000_000 + seq
    raw["data"] = data
    raw["eventRole"] = "conversation.main"
    raw["collabCategory"] = "engineering_build"
    return Event(seq, raw)


def events(first: int, last: int, **kw: Any) -> list[Event]:
    return [make_event(s, **kw) for s in range(first, last + 1)]


async def start_server(nursery: trio.Nursery, hub: Hub) -> Server:
    """Serve `hub` on /ws from 127.0.0.1, port 0, inside `nursery`."""
    app = QuartTrio(__name__)
    server = Server(url="")

    @app.websocket("/ws")
    async def ws() -> None:
        with trio.CancelScope() as scope:
            server.scopes.add(scope)
            try:
                await hub.serve(websocket)
            finally:
                server.scopes.discard(scope)

    cfg = HypercornConfig()
    cfg.bind = ["127.0.0.1:0"]
    cfg.accesslog = None
    cfg.graceful_timeout = 0.1
    urls: list[str] = await nursery.start(
        partial(hypercorn_serve, app, cfg, shutdown_trigger=trio.sleep_forever)
    )
    server.url = urls[0].replace("http://", "ws://") + "/ws"
    return server


@dataclass
class Server:
    """A running in-test server: `url` of /ws and `drop()` to cut every connection."""

    url: str
    scopes: set[trio.CancelScope] = field(default_factory=set)

    def drop(self) -> None:
        for scope in list(self.scopes):
            scope.cancel()

    def ws_url(self, **params: Any) -> str:
        return self.url + ("?" + urlencode(params) if params else "")
