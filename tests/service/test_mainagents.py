"""The main-agent set from openclaw.json (JSON or JSON5; the old monitor's first
classification test)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from coordd.service.mainagents import DEFAULT_MAIN_AGENTS, MainAgents, resolve_main_agents


def test_8_1_configured_list_agents_are_main() -> None:
    agents = resolve_main_agents(
        {"agents": {"defaults": {}, "list": [{"id": "eden"}, {"id": "seum"},
                                             {"id": "worker-quick"}]}})
    assert {"eden", "seum", "worker-quick", "main", "ruda"} <= agents
    assert "list" not in agents and "defaults" not in agents


@pytest.mark.parametrize(("config", "expected"), [
    ({"agents": {"list": [{"id": " Eden "}, {"id": ""}, {"id": 3}, "x", None]}}, {"eden"}),
    ({"agents": {"alpha": {"id": "A-ONE"}, "beta": {"model": "m"}, "gamma": {},
                 "delta": [1], "eps": "str", "zeta": {"id": "  "}}}, {"a-one", "beta"}),
    ({"agents": {" Mixed ": {"k": 1}}}, {"mixed"}),
    ({"agents": {"list": {"id": "notalist"}}}, set()),
    ({"agents": []}, set()),
    ([1, 2], set()),
    ("text", set()),
    (None, set()),
])
def test_resolution_rules(config: Any, expected: set[str]) -> None:
    assert resolve_main_agents(config) == DEFAULT_MAIN_AGENTS | expected


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_strict_json_file(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    write(path, json.dumps({"agents": {"list": [{"id": "eden"}]}}))
    agents = MainAgents(path)
    assert agents.current() == DEFAULT_MAIN_AGENTS | {"eden"}
    level, message = agents.status()
    assert level == "pass" and "3 main agents" in message


def test_json5_file_with_comments_and_trailing_commas(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    write(path, "// written by the gateway\n{agents: {list: [{id: 'eden',}, {id: \"seum\"},],},}")
    agents = MainAgents(path)
    assert agents.current() == DEFAULT_MAIN_AGENTS | {"eden", "seum"}
    assert agents.status()[0] == "pass"


def test_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"agents": {"list": [{"id": "x"}]}}).encode())
    assert "x" in MainAgents(path).current()


def test_broken_file_means_defaults_logged_and_reported(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "openclaw.json"
    write(path, "{agents: {list: [")
    agents = MainAgents(path, check_interval=0)
    with caplog.at_level(logging.WARNING, logger="coordd.service.mainagents"):
        assert agents.current() == DEFAULT_MAIN_AGENTS
        assert agents.current() == DEFAULT_MAIN_AGENTS
    level, message = agents.status()
    assert level == "warn" and str(path) in message and "defaults" in message
    # logged once per file version, not once per event
    assert len([r for r in caplog.records if str(path) in r.getMessage()]) == 1


def test_missing_file_means_defaults_and_passes(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # A fresh install has no openclaw.json: nothing to fix, said once at INFO.
    agents = MainAgents(tmp_path / "absent.json", check_interval=0)
    with caplog.at_level(logging.INFO, logger="coordd.service.mainagents"):
        for _ in range(3):
            assert agents.current() == DEFAULT_MAIN_AGENTS
    level, message = agents.status()
    assert level == "pass" and "does not exist" in message and "defaults" in message
    said = [r for r in caplog.records if "absent.json" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO"]


def test_unreadable_file_means_defaults_and_warns(tmp_path: Path) -> None:
    (tmp_path / "openclaw.json").mkdir()  # exists, cannot be read as a file
    level, message = MainAgents(tmp_path / "openclaw.json").status()
    assert level == "warn" and "defaults" in message


def test_file_without_agents_warns(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    write(path, '{"gateway": {}}')
    agents = MainAgents(path)
    assert agents.current() == DEFAULT_MAIN_AGENTS
    assert agents.status()[0] == "warn"


def test_no_path_means_defaults_and_passes() -> None:
    agents = MainAgents(None)
    assert agents.current() == DEFAULT_MAIN_AGENTS
    assert agents.status()[0] == "pass"


def test_file_is_reread_when_it_changes_and_only_then(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    write(path, '{"agents": {"list": [{"id": "aaaa"}]}}')
    agents = MainAgents(path, check_interval=0)
    assert "aaaa" in agents.current()
    stamp = os.stat(path)
    # Same size, same mtime, same inode: not re-read (the cache key did not change).
    with path.open("r+", encoding="utf-8") as f:
        f.write('{"agents": {"list": [{"id": "bbbb"}]}}')
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert "aaaa" in agents.current()
    # A new mtime: re-read.
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    assert agents.current() == DEFAULT_MAIN_AGENTS | {"bbbb"}


def test_recovery_after_the_file_appears_and_breaks(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    agents = MainAgents(path, check_interval=0)
    assert agents.current() == DEFAULT_MAIN_AGENTS
    write(path, '{"agents": {"list": [{"id": "late"}]}}')
    assert "late" in agents.current()
    assert agents.status()[0] == "pass"
    write(path, '{"agents": ')
    assert agents.current() == DEFAULT_MAIN_AGENTS
    assert agents.status()[0] == "warn"


def test_stat_is_throttled_by_check_interval(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    write(path, '{"agents": {"list": [{"id": "one"}]}}')
    now = [100.0]
    agents = MainAgents(path, check_interval=5.0, clock=lambda: now[0])
    assert "one" in agents.current()
    write(path, '{"agents": {"list": [{"id": "two", "x": "longer so the size changes"}]}}')
    now[0] += 4.9
    assert "one" in agents.current()  # within the interval: the cached set
    now[0] += 0.2
    assert "two" in agents.current()


def test_status_always_looks_at_the_file(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    write(path, '{"agents": {"list": []}}')
    agents = MainAgents(path, check_interval=3600)
    agents.current()
    write(path, "garbage!")
    assert agents.status()[0] == "warn"
