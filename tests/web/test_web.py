"""The REST adapter in-process (ASGI calls): CORS, methods, limits, write auth, the guard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordd.config import load_config
from coordd.errors import ConfigError
from coordd.web.app import peer_is_loopback, token_matches
from coordd.web.guard import Guard, host_name, is_loopback_name, normalise_origin
from tests.web.helpers import GOOD, PATCH, make_app, request


async def error_of(r: Any) -> str:
    return json.loads(await r.get_data())["error"]  # type: ignore[no-any-return]


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
        message = await error_of(r)
        assert message.startswith("Unauthorized") and "write_token" in message
        assert "X-Task-Monitor-Token" in message


async def test_a_request_without_a_peer_address_is_not_loopback() -> None:
    # A Unix socket (or any server) can give no peer address: that is not loopback.
    r = await request(make_app(), "PATCH", PATCH, peer=None, body=GOOD)
    assert r.status_code == 401
    r = await request(make_app(), "GET", "/api/work-sessions/ws_1")
    assert json.loads(await r.get_data())["session"]["categorySource"] != "manual_override"


async def test_token_rules() -> None:
    app = make_app(token=" sekret ")
    r = await request(app, "PATCH", PATCH, body=GOOD)
    assert r.status_code == 401  # missing header, even from loopback
    assert "missing the X-Task-Monitor-Token header" in await error_of(r)
    r = await request(app, "PATCH", PATCH, body=GOOD, headers={"X-Task-Monitor-Token": " "})
    assert "missing the X-Task-Monitor-Token header" in await error_of(r)
    r = await request(app, "PATCH", PATCH, body=GOOD, headers={"X-Task-Monitor-Token": "nope"})
    assert r.status_code == 401
    assert "X-Task-Monitor-Token header does not match" in await error_of(r)
    r = await request(app, "PATCH", PATCH, peer="10.9.9.9", body=GOOD,
                      headers={"x-task-monitor-token": "  sekret  "})
    assert r.status_code == 200
    body = json.loads(await r.get_data())
    assert body["ok"] is True and body["override"]["collabCategory"] == "qa_validation"
    r = await request(app, "GET", "/api/work-sessions/ws_1")
    session = json.loads(await r.get_data())["session"]
    assert (session["collabCategory"], session["categorySource"]) == ("qa_validation",
                                                                      "manual_override")


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
def test_keep_alive_across_the_routes(tmp_path: Any) -> None:
    """Connections stay reusable across the routes, errors included."""
    import http.client

    from tests.daemon import Daemon, event

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


# ---------------------------------------------------------------------------- browsers

EVIL = "http://evil.example"
TASK_HUB = "http://localhost:3102"


def guarded_app(token: str = "", **kw: Any) -> Any:
    return make_app(token, guard=Guard.of(**kw))


@pytest.mark.parametrize("method", ["PATCH", "POST", "PUT", "DELETE"])
async def test_cross_origin_writes_are_refused_without_a_token(method: str) -> None:
    app = guarded_app()
    r = await request(app, method, PATCH, body=GOOD, headers={"Origin": EVIL})
    assert r.status_code == 403
    message = await error_of(r)
    assert "cross-origin write refused" in message and "'http://evil.example'" in message
    assert "allowed_origins" in message and "[server]" in message
    r = await request(app, "GET", "/api/work-sessions/ws_1")
    assert json.loads(await r.get_data())["session"]["categorySource"] != "manual_override"


async def test_cross_origin_writes_are_refused_even_with_the_token() -> None:
    app = guarded_app(token="sekret")
    r = await request(app, "PATCH", PATCH, body=GOOD,
                      headers={"Origin": EVIL, "X-Task-Monitor-Token": "sekret"})
    assert r.status_code == 403


async def test_listed_origins_may_write() -> None:
    app = guarded_app(origins=["HTTP://LOCALHOST:3102/", "https://hub.example:443"])
    for origin in (TASK_HUB, "https://hub.example"):
        r = await request(app, "PATCH", PATCH, body=GOOD, headers={"Origin": origin})
        assert r.status_code == 200, origin
    r = await request(app, "PATCH", PATCH, body=GOOD, headers={"Origin": "http://localhost:3103"})
    assert r.status_code == 403
    # "*" restores the old monitor's behaviour; no Origin (not a browser) is never refused.
    r = await request(guarded_app(origins=["*"]), "PATCH", PATCH, body=GOOD,
                      headers={"Origin": EVIL})
    assert r.status_code == 200
    r = await request(guarded_app(), "PATCH", PATCH, body=GOOD)
    assert r.status_code == 200


async def test_reads_stay_open_to_every_origin() -> None:
    app = guarded_app()
    for path in ("/api/events", "/api/stats", "/api/work-sessions/ws_1"):
        r = await request(app, "GET", path, headers={"Origin": EVIL})
        assert r.status_code == 200, path
        assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_preflights_for_writes_only_succeed_for_listed_origins() -> None:
    app = guarded_app(origins=[TASK_HUB])
    ask = {"Access-Control-Request-Method": "PATCH",
           "Access-Control-Request-Headers": "content-type"}
    r = await request(app, "OPTIONS", PATCH, headers={"Origin": EVIL, **ask})
    assert r.status_code == 403
    assert "PATCH" not in r.headers["Access-Control-Allow-Methods"]
    assert "allowed_origins" in await error_of(r)
    r = await request(app, "OPTIONS", PATCH, headers={"Origin": TASK_HUB, **ask})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == TASK_HUB
    assert "PATCH" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Vary"] == "Origin"
    # A preflight for a read (e.g. a custom header on a GET) still succeeds for anyone.
    r = await request(app, "OPTIONS", "/api/events",
                      headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", ["/api/events", "/api/work-sessions/ws_1", "/api/stats",
                                  "/openapi.json", "/nope", PATCH])
async def test_a_foreign_host_on_loopback_is_misdirected(path: str) -> None:
    # DNS rebinding: evil.example now resolves to 127.0.0.1, the browser sends its name.
    method = "PATCH" if path == PATCH else "GET"
    app = guarded_app()
    r = await request(app, method, path, body=GOOD, server="127.0.0.1",
                      headers={"Host": "evil.example:3847"})
    assert r.status_code == 421, path
    message = await error_of(r)
    assert "'evil.example:3847'" in message and "DNS rebinding" in message
    assert "allowed_hosts" in message and "'evil.example'" in message


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:3847", "app.localhost:80",
                                  "127.0.0.1:3847", "127.8.9.10", "[::1]:3847", "[::1]",
                                  "localhost.:3847", "0.0.0.0:3847"])
async def test_loopback_names_are_served(host: str) -> None:
    r = await request(guarded_app(), "GET", "/api/events", server="127.0.0.1",
                      headers={"Host": host})
    assert r.status_code == 200, host


async def test_allowed_hosts_and_non_loopback_servers() -> None:
    app = guarded_app(hosts=["Coordd.Example.Org"])
    r = await request(app, "GET", "/api/events", server="::1",
                      headers={"Host": "coordd.example.org:443"})
    assert r.status_code == 200
    r = await request(app, "GET", "/api/events", server="::1", headers={"Host": "other.org"})
    assert r.status_code == 421
    # Arriving on a public address: the operator chose to serve any name.
    r = await request(app, "GET", "/api/events", server="192.0.2.7", headers={"Host": "x.org"})
    assert r.status_code == 200
    r = await request(guarded_app(hosts=["*"]), "GET", "/api/events", server="127.0.0.1",
                      headers={"Host": "x.org"})
    assert r.status_code == 200


def test_guard_helpers() -> None:
    assert host_name("[::1]:80") == "::1" and host_name("Example.ORG.:8") == "example.org"
    assert normalise_origin("HTTPS://A.example:443/") == "https://a.example"
    assert normalise_origin("http://a.example:8080") == "http://a.example:8080"
    assert is_loopback_name("localhost") and is_loopback_name("127.0.0.2")
    assert not is_loopback_name("localhost.evil.example") and not is_loopback_name("10.0.0.1")


@pytest.mark.parametrize(("key", "value", "hint"), [
    ("allowed_origins", '["localhost:3102"]', "scheme://host[:port]"),
    ("allowed_origins", '["http://localhost:3102/ui"]', "no path"),
    ("allowed_hosts", '["http://coordd.example.org"]', "no scheme, port or path"),
    ("allowed_hosts", '"coordd.example.org"', "a list of strings"),
])
def test_bad_origins_and_hosts_are_config_errors(tmp_path: Any, key: str, value: str,
                                                 hint: str) -> None:
    cfg = tmp_path / "coordd.toml"
    cfg.write_text(f"[server]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=r"\[server\] " + key) as err:
        load_config(cfg, env={})
    assert hint in str(err.value)
