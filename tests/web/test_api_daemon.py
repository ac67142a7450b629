"""Black-box: the REST and WebSocket answers a new user stumbled on (the real daemon)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from tests.daemon import Daemon

pytestmark = pytest.mark.slow

DAY = 86_400_000


def line(ws: str, ts: float, etype: str = "a2a.send") -> dict[str, Any]:
    return {"type": etype, "agentId": "ruda", "ts": int(ts),
            "data": {"fromAgent": "ruda", "toAgent": "main", "message": "status",
                     "workSessionId": ws}}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("home")
    (home / ".openclaw" / "logs").mkdir(parents=True)
    d = Daemon(home)
    now = time.time() * 1000
    # Three live sessions and one archived session that ended in a terminal event.
    d.append(line("ws_old", now - 3 * DAY, "task.completed"), line("ws_a", now - 3000),
             line("ws_b", now - 2000), line("ws_c", now - 1000))
    d.start()
    d.wait_events(4)
    try:
        yield d
    finally:
        d.kill()


def ids(body: dict[str, Any]) -> list[str]:
    return [s["workSessionId"] for s in body["sessions"]]


def test_status_pages_count_archived_terminal_sessions_out(daemon: Daemon) -> None:
    active = daemon.get("/api/work-sessions", params={"status": "ACTIVE"}).json()
    assert ids(active) == ["ws_c", "ws_b", "ws_a"] and active["totalMatched"] == 3
    assert ids(daemon.get("/api/work-sessions", params={"status": "QUIET"}).json()) == []
    archived = daemon.get("/api/work-sessions", params={"status": "ARCHIVED"}).json()
    assert ids(archived) == ["ws_old"]


def test_the_list_id_names_the_session(daemon: Daemon) -> None:
    listed = daemon.get("/api/work-sessions").json()["sessions"]
    ws_a = next(s for s in listed if s["workSessionId"] == "ws_a")
    r = daemon.get(f"/api/work-sessions/{ws_a['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["session"]["workSessionId"] == "ws_a"
    r = daemon.request("PATCH", f"/api/work-sessions/{ws_a['id']}/category",
                       json={"collabCategory": "infra_ops"})
    assert r.status_code == 200, r.text
    assert r.json()["workSessionId"] == "ws_a"
    session = daemon.get("/api/work-sessions/ws_a").json()["session"]
    assert (session["collabCategory"], session["categorySource"]) == ("infra_ops",
                                                                      "manual_override")


def test_patch_of_an_unknown_session_is_a_404_unless_created(daemon: Daemon) -> None:
    path = "/api/work-sessions/ws_typo/category"
    r = daemon.request("PATCH", path, json={"collabCategory": "infra_ops"})
    assert r.status_code == 404
    assert "?create=1" in r.json()["error"]
    r = daemon.request("PATCH", path + "?create=1", json={"collabCategory": "infra_ops"})
    assert r.status_code == 200 and r.json()["workSessionId"] == "ws_typo"


async def test_a_since_past_the_last_seq_must_resync(daemon: Daemon) -> None:
    url = daemon.url.replace("http://", "ws://") + "/ws"
    with trio.fail_after(20):
        async with open_websocket_url(url) as ws:
            hello = json.loads(await ws.get_message())
            seq, epoch = hello["data"]["seq"], hello["epoch"]
        assert seq == 4
        async with open_websocket_url(f"{url}?since={seq + 1}&epoch={epoch}") as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            notice = json.loads(await ws.get_message())
            assert notice["type"] == "resync_required"
            assert notice["data"]["seq"] == seq
