"""Black-box: a web page in the operator's browser cannot write, and a rebound DNS name cannot
reach the daemon on loopback (the real daemon on 127.0.0.1)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest

from tests.daemon import Daemon, event

pytestmark = pytest.mark.slow

PATCH = "/api/work-sessions/ws_0/category"
BODY = {"collabCategory": "qa_validation"}
EVIL = "http://evil.example"
WS_UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}


def start(home: Path, config: str = "") -> Daemon:
    (home / ".openclaw" / "logs").mkdir(parents=True)
    args: list[str] = []
    if config:
        (home / "coordd.toml").write_text(config)
        args = ["--config", str(home / "coordd.toml")]
    d = Daemon(home, *args)
    d.append(event(1))
    d.start()
    d.wait_events(1)
    return d


def category(d: Daemon) -> str:
    return d.get("/api/work-sessions/ws_0").json()["session"]["categorySource"]  # type: ignore[no-any-return]


def test_a_web_page_cannot_write_but_can_read(tmp_path: Path) -> None:
    d = start(tmp_path)
    try:
        # The page's preflight for the PATCH fails, and so does a write sent without one.
        r = d.request("OPTIONS", PATCH, headers={
            "Origin": EVIL, "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "content-type"})
        assert r.status_code == 403
        assert "PATCH" not in r.headers.get("Access-Control-Allow-Methods", "")
        for method in ("PATCH", "POST"):
            r = d.request(method, PATCH, json=BODY, headers={"Origin": EVIL})
            assert r.status_code == 403, method
            assert "allowed_origins" in r.json()["error"]
        assert category(d) != "manual_override"
        # Reads stay open to every page.
        r = d.get("/api/events", headers={"Origin": EVIL})
        assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        # A client that is not a browser (no Origin) on loopback still writes.
        assert d.request("PATCH", PATCH, json=BODY).status_code == 200
        assert category(d) == "manual_override"
    finally:
        d.kill()


def test_a_rebound_host_name_is_misdirected_everywhere(tmp_path: Path) -> None:
    d = start(tmp_path)
    try:
        evil = {"Host": "evil.example:3847"}
        # Hot reads, the other routes, a write and the WebSocket alike.
        for method, path in (("GET", "/api/events"), ("GET", "/api/work-sessions/ws_0"),
                             ("GET", "/api/stats"), ("PATCH", PATCH)):
            r = d.request(method, path, headers=evil, json=BODY if method == "PATCH" else None)
            assert r.status_code == 421, path
            assert "allowed_hosts" in r.json()["error"], path
        r = d.get("/ws", headers={**evil, **WS_UPGRADE})
        assert r.status_code == 421
        assert "DNS rebinding" in r.json()["error"]
        assert category(d) != "manual_override"
        for host in ("localhost:3847", "127.0.0.1", "[::1]:3847"):
            assert d.get("/api/events", headers={"Host": host}).status_code == 200, host
    finally:
        d.kill()


def test_configured_origins_and_hosts_are_served(tmp_path: Path) -> None:
    d = start(tmp_path, '[server]\nallowed_origins = ["http://localhost:3102"]\n'
                        'allowed_hosts = ["coordd.example.org"]\n')
    try:
        hub = {"Origin": "http://localhost:3102"}
        r = d.request("OPTIONS", PATCH, headers={**hub, "Access-Control-Request-Method": "PATCH"})
        assert r.status_code == 204
        assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3102"
        assert d.request("PATCH", PATCH, json=BODY, headers=hub).status_code == 200
        r = d.get("/api/events", headers={"Host": "coordd.example.org"})
        assert r.status_code == 200
        with httpx.Client() as client:
            r = client.get(d.url + "/api/events", headers={"Host": "other.example.org"})
            assert r.status_code == 421
    finally:
        d.kill()
