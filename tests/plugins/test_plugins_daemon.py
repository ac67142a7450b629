"""Black-box: an installed third-party classifier (plugins/coordd-rules, installed by
`make test`) changes categories in the running daemon; the allow-list turns it off."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.daemon import Daemon

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("coordd_rules") is None,
                       reason="plugins/coordd-rules is not installed"),
]

EVENT = {"type": "a2a.send", "agentId": "ruda", "ts": 1_767_000_000_000,
         "data": {"fromAgent": "ruda", "toAgent": "main", "workSessionId": "ws_sec",
                  "message": "deploy the fix for CVE-2024-1111 today"}}


def run(tmp_path: Path, env: dict[str, str]) -> dict:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    d = Daemon(tmp_path, env=env)
    try:
        d.append(EVENT)
        d.start()
        return d.events()[0]
    finally:
        d.kill()


def test_installed_rules_plugin_classifies(tmp_path: Path) -> None:
    ev = run(tmp_path, {})
    assert (ev["collabCategory"], ev["categorySource"]) == ("security", "rules")
    assert ev["data"]["collabCategory"] == "security"


def test_allow_list_leaves_the_built_in(tmp_path: Path) -> None:
    ev = run(tmp_path, {"COORDD_PLUGINS": "keywords"})
    assert (ev["collabCategory"], ev["categorySource"]) == ("infra_ops", "rule")
