"""The REST adapter in-process (Quart's test client): CORS, methods, limits, write auth."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordd.model import Event
from coordd.overrides import Overrides
from coordd.store import Store
from coordd.web import AppContext, create_app, peer_is_loopback, token_matches


def make_app(token: str = "", **kw: Any) -> Any:
    store = Store(overrides=Overrides(None))
    store.extend([Event(1, {"type": "a2a.send", "agentId": "ruda", "ts": 5,
                            "data": {"workSessionId": "ws_1"}})])
    return create_app(AppContext(store=store, write_token=token, openapi=b'{"openapi":"3.1.0"}',
                                 **kw))


async def request(app: Any, method: str, path: str, *, peer: str = "127.0.0.1",
                  headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    client = app.test_client()
    return await client.open(path, method=method, headers=headers or {}, data=body,
                             scope_base={"client": (peer, 40000)})


PATCH = "/api/work-sessions/ws_1/category"
GOOD = json.dumps({"collabCategory": "qa_validation", "updatedBy": "me"}).encode()


async def test_cors_headers_and_options() -> None:
    app = make_app()
    r = await request(app, "GET", "/api/events")
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST, PATCH, OPTIONS"
    assert r.headers["Access-Control-Allow-Headers"] == "Content-Type, X-Task-Monitor-Token, Cookie"
    assert r.headers["Content-Type"].startswith("application/json")
    r = await request(app, "OPTIONS", "/anything/at/all")
    assert r.status_code == 204 and await r.get_data() == b""
    assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("DELETE", "/api/events", 405), ("PUT", "/api/work-sessions", 405),
    ("POST", "/api/events", 405), ("POST", "/api/work-sessions", 405),
    ("GET", PATCH, 405), ("POST", "/api/work-sessions/ws_1", 405),
    ("GET", "/api/events/", 404), ("GET", "/nope", 404), ("GET", "/ws", 404),
])
async def test_methods_and_unknown_paths(method: str, path: str, status: int) -> None:
    r = await request(make_app(), method, path)
    assert r.status_code == status
    assert "error" in json.loads(await r.get_data())


async def test_loopback_writes_without_a_token() -> None:
    app = make_app()
    for peer in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        r = await request(app, "PATCH", PATCH, peer=peer, body=GOOD)
        assert r.status_code == 200, peer
    for peer in ("10.1.2.3", "192.168.0.9", "::ffff:10.0.0.1", "2001:db8::1"):
        r = await request(app, "PATCH", PATCH, peer=peer, body=GOOD)
        assert r.status_code == 401, peer
        assert json.loads(await r.get_data()) == {"error": "Unauthorized"}


async def test_token_rules() -> None:
    app = make_app(token=" sekret ")
    r = await request(app, "PATCH", PATCH, body=GOOD)
    assert r.status_code == 401  # missing header, even from loopback
    r = await request(app, "PATCH", PATCH, body=GOOD, headers={"X-Task-Monitor-Token": "nope"})
    assert r.status_code == 401
    r = await request(app, "PATCH", PATCH, peer="10.9.9.9", body=GOOD,
                      headers={"x-task-monitor-token": "  sekret  "})
    assert r.status_code == 200
    body = json.loads(await r.get_data())
    assert body["ok"] is True and body["override"]["collabCategory"] == "qa_validation"
    r = await request(app, "GET", "/api/work-sessions/ws_1")
    session = json.loads(await r.get_data())["session"]
    assert (session["collabCategory"], session["categorySource"]) == ("qa_validation",
                                                                      "manual_override")


async def test_category_change_hook() -> None:
    seen: list[list[str]] = []
    app = make_app(on_category_change=seen.append)
    await request(app, "PATCH", PATCH, body=GOOD)
    await request(app, "PATCH", PATCH, body=b"{oops")
    assert seen == [["ws_1"]]


async def test_bodies_and_query_strings_are_bounded() -> None:
    app = make_app(max_body_bytes=1024, max_query_bytes=64)
    r = await request(app, "PATCH", PATCH, body=b"{" + b" " * (1 << 20) + b"}")
    assert r.status_code == 413 and "error" in json.loads(await r.get_data())
    r = await request(app, "GET", "/api/events?type=" + "x" * 100)
    assert r.status_code == 414
    r = await request(app, "PATCH", PATCH, body=b"null")
    assert r.status_code == 400


async def test_introspection_routes() -> None:
    app = make_app(plugins=lambda: [{"name": "keywords", "enabled": True}],
                   metrics=lambda: b"coordd_up 1\n")
    r = await request(app, "GET", "/openapi.json")
    assert json.loads(await r.get_data())["openapi"] == "3.1.0"
    r = await request(app, "GET", "/-/plugins")
    assert json.loads(await r.get_data())["plugins"][0]["name"] == "keywords"
    r = await request(app, "GET", "/metrics")
    assert r.headers["Content-Type"].startswith("text/plain") and b"coordd_up" in await r.get_data()
    r = await request(app, "GET", "/")
    assert json.loads(await r.get_data())["name"] == "Task Monitor API"


async def test_health_503_when_a_check_fails() -> None:
    app = make_app(health=lambda: (False, {"log": [{"status": "fail", "output": "x"}]}))
    r = await request(app, "GET", "/api/health")
    body = json.loads(await r.get_data())
    assert r.status_code == 503 and body["status"] == "fail" and "timestamp" in body


async def test_an_exception_is_a_500_with_the_upstream_message() -> None:
    def boom() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("bug")

    r = await request(make_app(health=boom), "GET", "/api/health")
    assert r.status_code == 500
    assert json.loads(await r.get_data()) == {"error": "Internal server error"}


def test_helpers() -> None:
    assert peer_is_loopback("127.255.0.1") and not peer_is_loopback(None)
    assert not peer_is_loopback("localhost") and not peer_is_loopback("")
    assert token_matches("a", " a ") and not token_matches("a", "") and not token_matches("a", None)


@pytest.mark.slow
def test_keep_alive_across_the_fast_path_and_quart(tmp_path: Any) -> None:
    """The hot GET routes bypass Quart's objects; connections must stay reusable across both."""
    import http.client

    from .daemon import Daemon, event

    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    d = Daemon(tmp_path)
    d.append(event(1))
    d.start()
    try:
        host, port = d.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        for path in ("/api/events", "/api/work-sessions", "/api/work-sessions/ws_0",
                     "/openapi.json", "/api/health", "/api/events?limit=abc", "/nope",
                     "/api/work-sessions/ws_0"):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.getheader("Access-Control-Allow-Origin") == "*", path
            assert resp.getheader("Content-Type").startswith("application/json"), path
            json.loads(body)
            expected = {"/api/events?limit=abc": 400, "/nope": 404}.get(path, 200)
            assert resp.status == expected, (path, body[:200])
        conn.close()
    finally:
        d.kill()
