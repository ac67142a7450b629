"""Black-box: the daemon pointed at an unreachable MongoDB serves everything from memory and
reports the outage in /api/health, /metrics and --check."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon import Daemon, event, wait_for

pytestmark = pytest.mark.slow


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_mongodb_serves_from_memory_and_reports_it(tmp_path: Path) -> None:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    uri = f"mongodb://127.0.0.1:{closed_port()}/"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mongo]\nserver_selection_timeout = 0.2\n")
    d = Daemon(tmp_path, "--config", str(cfg), env={"MONGODB_URI": uri})
    try:
        d.append(event(1), event(2))
        d.start()
        d.append(event(3))
        assert [e["data"]["n"] for e in d.wait_events(3)] == [1, 2, 3]

        def mongo_check() -> dict | None:
            body = d.get("/api/health").json()
            check = body["checks"].get("mongo", [{}])[0]
            return body if check.get("status") == "warn" and check.get("output") else None

        health = wait_for(mongo_check)
        assert health["status"] == "ok"  # degraded, not critical: the API works
        mongo = health["checks"]["mongo"][0]
        assert "MongoDB" in mongo["output"] and mongo["observedValue"]["lagEvents"] >= 3
        metrics = d.get("/metrics").text
        assert "coordd_mongo_up 0.0" in metrics
        assert "coordd_mongo_lag_events" in metrics
        env = {**os.environ, "HOME": str(tmp_path), "MONGODB_URI": uri}
        port = d.url.rsplit(":", 1)[1]
        r = subprocess.run([sys.executable, "-m", "coordd", "--check", "--json", "--config",
                            str(cfg), "--port", port, "--state-dir", str(d.state_dir)],
                           capture_output=True, text=True, env=env, timeout=60)
        body = json.loads(r.stdout)
        assert r.returncode == 1, r.stdout
        assert body["checks"]["mongo"][0]["status"] == "warn"
        assert body["checks"]["daemon"][0]["status"] == "warn"  # the daemon reports it too
    finally:
        d.kill()


def test_a_follower_without_mongodb_serves_an_empty_api_and_reports_it(tmp_path: Path) -> None:
    uri = f"mongodb://127.0.0.1:{closed_port()}/"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mongo]\nserver_selection_timeout = 0.2\noperation_timeout = 0.5\n")
    # No log at all: a follower never looks for it.
    d = Daemon(tmp_path, "--config", str(cfg), "--follower", env={"MONGODB_URI": uri})
    try:
        d.start()
        body = d.get("/api/events").json()
        assert (body["events"], body["tier"]) == ([], "memory")
        # Ready after `start_timeout` even when the first attempt has not failed yet
        # (pymongo's first import in the worker thread, on a busy machine): then it says
        # "connecting" until it does.
        health = wait_for(lambda: (lambda h: h if "unreachable" in h["checks"]["follower"][0][
            "output"] else None)(d.get("/api/health").json()))
        assert health["checks"]["follower"][0]["status"] == "warn"
        assert "log" not in health["checks"] and "mongo" not in health["checks"]
        search = d.get("/api/events/search", params={"q": "x"}).json()
        assert search["tier"] == "memory" and "MongoDB" in search["degraded"]
        assert d.stop() == 0
        assert not (d.state_dir / "checkpoint.json").exists()
    finally:
        d.kill()


def test_follower_mode_needs_a_mongodb_uri(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONGODB_")}
    r = subprocess.run([sys.executable, "-m", "coordd", "--follower", "--port", "0"],
                       capture_output=True, text=True, env={**env, "HOME": str(tmp_path)},
                       timeout=60)
    assert r.returncode == 2 and "[mode] follower" in r.stderr
