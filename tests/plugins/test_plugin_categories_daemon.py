"""Black-box: a category a plugin declares (`coordd_categories`) is a category everywhere:
events, threads, sessions, filters, stats, overrides (also across a restart), OpenAPI and
`coordd plugins`. The installed coordd-rules plugin declares `billing` from the TOML."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("coordd_rules") is None,
                       reason="plugins/coordd-rules is not installed"),
]

CONFIG = """
[plugins.rules.categories.billing]
patterns = ['\\binvoice\\b']
"""


def send(n: int, ws: str, message: str) -> dict[str, Any]:
    return {"type": "a2a.send", "agentId": "ruda", "ts": 1_767_000_000_000 + n,
            "data": {"fromAgent": "ruda", "toAgent": "main", "workSessionId": ws,
                     "conversationId": f"conv-{ws}", "message": message}}


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    cfg = tmp_path / "coordd.toml"
    cfg.write_text(CONFIG)
    d = Daemon(tmp_path, "--config", str(cfg), env={"COORDD_PLUGINS": "keywords,rules"})
    d.append(send(1, "ws_bill", "코드 구현 first"),  # engineering_build, then billing
             send(2, "ws_bill", "please send the invoice for March"),
             send(3, "ws_code", "코드 구현 진행 상황 공유"),
             send(4, "ws_ops", "deploy the infra"))
    d.start()
    yield d
    d.kill()


def test_a_plugin_category_is_a_category_everywhere(daemon: Daemon) -> None:
    d = daemon
    events = d.events()
    assert [e["collabCategory"] for e in events] == [
        "engineering_build", "billing", "engineering_build", "infra_ops"]

    session = d.get("/api/work-sessions/ws_bill").json()["session"]
    assert session["collabCategory"] == "billing"
    assert [th["collabCategory"] for th in session["threads"]] == ["billing"]

    listed = d.get("/api/work-sessions", params={"viewCategory": "billing"}).json()
    assert [s["workSessionId"] for s in listed["sessions"]] == ["ws_bill"]
    assert listed["categoryCounts"] == {"billing": 1}
    every = d.get("/api/work-sessions").json()
    assert every["categoryCounts"] == {"infra_ops": 1, "billing": 1, "engineering_build": 1} \
        or every["categoryCounts"] == {"engineering_build": 1, "infra_ops": 1, "billing": 1}
    assert list(every["categoryCounts"]) == ["engineering_build", "infra_ops", "billing"]

    ev = d.get("/api/events", params={"viewCategory": "billing"}).json()
    assert [e["data"]["message"] for e in ev["events"]] == ["please send the invoice for March"]
    stats = d.get("/api/stats").json()
    assert stats["byCategory"] == {"engineering_build": 2, "billing": 1, "infra_ops": 1}

    enum = (d.get("/openapi.json").json()["paths"]["/api/work-sessions"]["get"]
            ["parameters"])
    view = next(p for p in enum if p["name"] == "viewCategory")
    assert view["schema"]["enum"][-1] == "billing"


def test_an_unknown_category_is_refused_with_the_valid_ones(daemon: Daemon) -> None:
    for path in ("/api/work-sessions", "/api/events"):
        r = daemon.get(path, params={"viewCategory": "bling"})
        assert r.status_code == 400, r.text
        message = r.json()["error"]
        assert "'bling'" in message
        assert "engineering_build" in message and "biz_strategy, billing" in message
    r = daemon.request("PATCH", "/api/work-sessions/ws_code/category",
                       json={"collabCategory": "bling"})
    assert r.status_code == 400
    message = r.json()["error"]
    assert "'bling'" in message and "biz_strategy, billing" in message


def test_an_override_to_a_plugin_category_survives_a_restart(daemon: Daemon) -> None:
    d = daemon
    r = d.request("PATCH", "/api/work-sessions/ws_code/category",
                  json={"collabCategory": "billing"})
    assert r.status_code == 200, r.text
    assert d.get("/api/work-sessions/ws_code").json()["session"]["collabCategory"] == "billing"
    assert d.stop() == 0
    d.start()
    session = d.get("/api/work-sessions/ws_code").json()["session"]
    assert (session["collabCategory"], session["categorySource"]) == ("billing",
                                                                       "manual_override")
    listed = d.get("/api/work-sessions", params={"viewCategory": "billing"}).json()
    assert sorted(s["workSessionId"] for s in listed["sessions"]) == ["ws_bill", "ws_code"]



def test_a_changed_plugin_pattern_reclassifies_after_a_restart(daemon: Daemon,
                                                               tmp_path: Path) -> None:
    """The shutdown snapshot holds enriched events: it must not be reused once a plugin's
    settings changed, or the old classification outlives the new pattern."""
    d = daemon
    assert d.get("/api/work-sessions/ws_ops").json()["session"]["collabCategory"] == "infra_ops"
    assert d.stop() == 0  # a clean stop writes the snapshot
    (tmp_path / "coordd.toml").write_text(CONFIG.replace("\\binvoice\\b", "\\binfra\\b"))
    d.start()
    assert d.get("/api/work-sessions/ws_ops").json()["session"]["collabCategory"] == "billing"
    assert [e["collabCategory"] for e in d.events()] == [
        "engineering_build", "engineering_build", "engineering_build", "billing"]

def coordd(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, "HOME": str(home), **(env or {})}
    full.pop("COORDD_PLUGINS", None)
    full.update(env or {})
    r = subprocess.run([sys.executable, "-m", "coordd", *args], capture_output=True, text=True,
                       env=full, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_coordd_plugins_lists_categories_and_why_a_plugin_is_disabled(tmp_path: Path) -> None:
    cfg = tmp_path / "coordd.toml"
    cfg.write_text(CONFIG)
    rows = json.loads(coordd(tmp_path, "plugins", "--json", "--config", str(cfg)))
    rules = next(r for r in rows if r["name"] == "rules")
    assert rules["categories"] == ["billing"]
    assert next(r for r in rows if r["name"] == "keywords")["categories"] == []
    text = coordd(tmp_path, "plugins", "--config", str(cfg))
    assert "categories: billing" in text
    cfg.write_text(CONFIG + '\n[plugins]\ndisabled = ["rules"]\n')
    text = coordd(tmp_path, "plugins", "--config", str(cfg))
    line = next(x for x in text.splitlines() if x.startswith("rules"))
    assert "[disabled: disabled by [plugins] disabled]" in line
