"""Black-box WebSocket: the real daemon pushes appended events, resumes with since/epoch, and
closes clients with 1001 at shutdown instead of holding it for the grace period."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.daemon import Daemon, event

pytestmark = pytest.mark.slow


async def next_of(ws: object, kind: str) -> dict:
    while True:
        msg = json.loads(await ws.get_message())  # type: ignore[attr-defined]
        if msg["type"] == kind:
            return msg  # type: ignore[no-any-return]


async def test_push_resume_and_shutdown(tmp_path: Path) -> None:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    d = Daemon(tmp_path)
    d.append(event(1))
    d.start()
    url = d.url.replace("http://", "ws://") + "/ws"
    try:
        with trio.fail_after(20):
            async with open_websocket_url(url) as ws:
                hello = json.loads(await ws.get_message())
                assert hello["type"] == "connected"
                assert hello["data"]["message"] == "Connected to Task Monitor"
                epoch = hello["epoch"]
                d.append(event(2), {"type": "continuation.sent", "agentId": "nuri", "ts": 5,
                                    "data": {"taskId": "t1"}})
                log_msg = await next_of(ws, "event_log")
                assert log_msg["data"]["file"] == "coordination-events.ndjson"
                new = await next_of(ws, "coordination_event_new")
                events = new["data"]["events"]
                while len(events) < 2:
                    events += (await next_of(ws, "coordination_event_new"))["data"]["events"]
                assert [e["seq"] for e in events] == [2, 3]
                assert new["data"]["affectedWorkSessions"] == ["ws_0"]
                cont = await next_of(ws, "continuation_event")
                assert cont["agentId"] == "nuri"
                assert cont["data"]["eventType"] == "continuation.sent"
            # Missed while disconnected: replayed on resume, nothing twice.
            d.append(event(3), event(4))
            d.wait_events(5)
            async with open_websocket_url(f"{url}?since=3&epoch={epoch}") as ws:
                assert json.loads(await ws.get_message())["type"] == "connected"
                replay = await next_of(ws, "coordination_event_new")
                assert [e["seq"] for e in replay["data"]["events"]] == [4, 5]
            async with open_websocket_url(f"{url}?since=3&epoch=other") as ws:
                assert json.loads(await ws.get_message())["type"] == "connected"
                assert (await next_of(ws, "resync_required"))["epoch"] == epoch
            async with open_websocket_url(url) as ws:
                await ws.get_message()
                started = time.monotonic()
                d.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.get_message()
                assert closed.value.reason.code == 1001
        assert d.proc is not None and d.proc.wait(10) == 0
        assert time.monotonic() - started < 4.0  # not the whole 5 s grace period
    finally:
        d.kill()
