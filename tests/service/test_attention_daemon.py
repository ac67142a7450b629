"""Black-box attention: the real daemon on a temp log opens an item for an unanswered send
after `[attention] reply_timeout` — on /api/attention, on /ws and in /metrics — and closes
it when the reply is appended; a session's status change caused only by the clock is
pushed; a subscribed /ws gets only its session; the items survive a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.daemon import Daemon

pytestmark = pytest.mark.slow

DAY_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


def a2a(ws: str, kind: str, frm: str, to: str, ts: int | None = None,
        **data: Any) -> dict[str, Any]:
    return {"type": kind, "agentId": frm, "ts": now_ms() if ts is None else ts,
            "data": {"workSessionId": ws, "fromAgent": frm, "toAgent": to,
                     "conversationId": f"c-{ws}", "message": f"{kind} {frm}->{to}", **data}}


def start(tmp_path: Path, *lines: dict[str, Any], reply_timeout: float = 1.5) -> Daemon:
    config = tmp_path / "coordd.toml"
    config.write_text(f"[attention]\nreply_timeout = {reply_timeout}\nsilent_after = 3600\n")
    d = Daemon(tmp_path, "--config", str(config))
    d.append(*lines)
    d.start()
    d.wait_events(len(lines))
    return d


async def next_of(ws: Any, *kinds: str) -> dict[str, Any]:
    while True:
        msg = json.loads(await ws.get_message())
        if msg["type"] in kinds:
            return msg  # type: ignore[no-any-return]


def metric(d: Daemon, name: str, kind: str) -> float:
    for line in d.get("/metrics").text.splitlines():
        if line.startswith(f'{name}{{kind="{kind}"}} '):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{kind={kind}}} not in /metrics")


async def test_an_unanswered_send_opens_after_the_timeout_and_closes_with_the_reply(
        tmp_path: Path) -> None:
    d = start(tmp_path, a2a("ws_a", "a2a.send", "ruda", "grim", ts=now_ms() - 60_000))
    # The history's send is already overdue: open at start, nothing pushed for it.
    try:
        items = d.get("/api/attention").json()["items"]
        assert [(i["kind"], i["workSessionId"], i["fromAgent"], i["toAgent"], i["seq"])
                for i in items] == [("awaiting_reply", "ws_a", "ruda", "grim", 1)]
        url = d.url.replace("http://", "ws://") + "/ws"
        with trio.fail_after(30):
            async with open_websocket_url(url) as ws:
                hello = json.loads(await ws.get_message())
                assert hello["type"] == "connected"
                sent_at = now_ms()
                d.append(a2a("ws_b", "a2a.send", "eden", "nuri"))
                opened = await next_of(ws, "attention")
                waited = now_ms() - sent_at
                assert opened["data"]["op"] == "open"
                item = opened["data"]["item"]
                assert (item["kind"], item["workSessionId"], item["seq"]) == (
                    "awaiting_reply", "ws_b", 2)
                assert opened["data"]["seq"] == 2
                assert waited >= 1400  # not before reply_timeout (1.5 s) passed
                listed = d.get("/api/attention?workSessionId=ws_b").json()
                assert [i["id"] for i in listed["items"]] == [item["id"]]
                assert metric(d, "coordd_attention_open", "awaiting_reply") == 2
                assert metric(d, "coordd_attention_oldest_age_seconds", "awaiting_reply") >= 60
                d.append(a2a("ws_b", "a2a.response", "nuri", "eden"))
                closed = await next_of(ws, "attention")
                assert closed["data"]["op"] == "close"
                assert closed["data"]["item"]["id"] == item["id"]
                assert closed["data"]["notice"] == opened["data"]["notice"] + 1
        assert [i["workSessionId"] for i in d.get("/api/attention").json()["items"]] == ["ws_a"]
        recent = d.get("/api/attention?state=closed").json()["items"]
        assert [i["id"] for i in recent] == [item["id"]] and "closedAt" in recent[0]
        assert metric(d, "coordd_attention_open", "awaiting_reply") == 1
        # A restart (the snapshot) keeps what is open.
        assert d.stop() == 0
        d.start()
        assert [i["workSessionId"] for i in d.get("/api/attention").json()["items"]] == ["ws_a"]
    finally:
        d.kill()


async def test_a_status_change_by_the_clock_is_pushed_without_any_event(tmp_path: Path) -> None:
    # ACTIVE now; ARCHIVED 24 h after its last event, which is 2 s away.
    d = start(tmp_path, a2a("ws_old", "a2a.send", "ruda", "grim", ts=now_ms() - DAY_MS + 2000),
              reply_timeout=3600)
    try:
        url = d.url.replace("http://", "ws://") + "/ws"
        with trio.fail_after(20):
            async with open_websocket_url(url) as ws:
                await ws.get_message()
                change = await next_of(ws, "work_session_status", "coordination_event_new")
        assert change["type"] == "work_session_status"
        assert {k: change["data"][k] for k in ("workSessionId", "from", "to")} == {
            "workSessionId": "ws_old", "from": "ACTIVE", "to": "ARCHIVED"}
        assert len(d.events()) == 1  # no new event caused it
        body = d.get("/api/work-sessions/ws_old").json()
        assert body["session"]["status"] == "ARCHIVED"
    finally:
        d.kill()


async def test_a_subscribed_socket_gets_only_its_session(tmp_path: Path) -> None:
    d = start(tmp_path, a2a("ws_x", "a2a.send", "ruda", "grim"), reply_timeout=1.0)
    try:
        base = d.url.replace("http://", "ws://") + "/ws"
        with trio.fail_after(30):
            async with open_websocket_url(f"{base}?session=ws_mine") as ws:
                await ws.get_message()
                d.append(a2a("ws_other", "a2a.send", "eden", "nuri"),
                         a2a("ws_mine", "a2a.send", "eden", "nuri"),
                         a2a("ws_other", "a2a.send", "nuri", "eden"))
                got: list[dict[str, Any]] = []
                while len(got) < 2:
                    msg = await next_of(ws, "coordination_event_new", "attention")
                    got.append(msg)
                new, att = got
                assert [e["data"]["workSessionId"] for e in new["data"]["events"]] == ["ws_mine"]
                assert new["data"]["affectedWorkSessions"] == ["ws_mine"]
                assert att["data"]["item"]["workSessionId"] == "ws_mine"
            with pytest.raises(ConnectionRejected) as refused:
                many = ",".join(f"s{i}" for i in range(101))
                async with open_websocket_url(f"{base}?session={many}"):
                    pass
            assert refused.value.status_code == 400
            assert b"at most 100" in (refused.value.body or b"")
        # Every socket, subscribed or not, saw the same daemon: all three sessions' items.
        kinds = d.get("/api/attention?kind=awaiting_reply").json()
        assert kinds["open"]["awaiting_reply"] == 3
        assert d.get("/api/attention?kind=nope").status_code == 400
        assert "expected one of" in d.get("/api/attention?kind=nope").json()["error"]
        assert d.get("/api/attention?state=shut").status_code == 400
    finally:
        d.kill()
