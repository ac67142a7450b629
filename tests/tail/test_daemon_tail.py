"""Black-box: the real daemon as a subprocess, its log written by the test, read over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, event, wait_for

pytestmark = pytest.mark.slow

CONFIG = """
[log]
poll_interval = 0.1
[state]
checkpoint_interval = 0.1
[server]
shutdown_grace = 3.0
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    (tmp_path / "coordd.toml").write_text(CONFIG)
    return tmp_path


@pytest.fixture
def daemon(home: Path) -> Iterator[Daemon]:
    d = Daemon(home, "--config", str(home / "coordd.toml"))
    yield d
    d.kill()


def ns(events: list[dict]) -> list[int]:
    return [e["data"]["n"] for e in events]


def test_append_a_line_and_see_it(daemon: Daemon) -> None:
    daemon.append(event(1))
    daemon.start()
    assert ns(daemon.events()) == [1]
    daemon.append(event(2), event(3))
    assert ns(daemon.wait_events(3)) == [1, 2, 3]
    health = daemon.get("/api/health").json()
    assert health["status"] == "ok" and "timestamp" in health
    assert daemon.stop() == 0


def test_partial_lines_split_inside_multibyte_characters(daemon: Daemon) -> None:
    daemon.append(event(0))
    daemon.start()
    line = (
        '{"type":"a2a.send","agentId":"ruda","ts":1767000000001,'
        '"data":{"n":1,"workSessionId":"ws_0","message":"코드 구현 진행 상황 공유"}}\n'
    ).encode()
    cut = line.index("구".encode()) + 1  # inside a 3-byte character
    for piece in (line[:cut], line[cut : cut + 1], line[cut + 1 : -1], line[-1:]):
        daemon.append(piece, raw=True)
        time.sleep(0.3)  # let the daemon see each piece on its own (inotify and poll)
        assert len(daemon.events()) == (2 if piece == b"\n" else 1)
    events = daemon.events()
    assert ns(events) == [0, 1]
    assert events[1]["data"]["message"] == "코드 구현 진행 상황 공유"


def test_junk_lines_are_counted_and_skipped(daemon: Daemon) -> None:
    daemon.append(
        event(1),
        b"{not json",
        b'{"type":"a2a.send","ts":NaN}',
        b"[1,2]",
        b'{"type":""}',
        b"\xff\xfe garbage",
        b"",
        b"   ",
        b"\xef\xbb\xbf" + b'{"type":"a2a.send","agentId":"ruda","ts":1767000000002,"data":{"n":2}}',
        b'{"type":"a2a.send","agentId":"ruda","ts":1767000000003,"data":{"n":3}}\r',
    )
    daemon.start()
    assert ns(daemon.events()) == [1, 2, 3]
    health = daemon.get("/api/health").json()
    rejected = health["checks"]["pipeline"][0]["observedValue"]["rejected"]
    assert rejected.get("malformed_json") == 2  # b"\xff\xfe garbage" is not JSON once decoded
    assert rejected.get("non_finite") == 1
    assert rejected.get("not_object") == 1
    assert rejected.get("no_type") == 1


def test_rename_rotation_drains_the_old_file(daemon: Daemon) -> None:
    daemon.append(event(1))
    daemon.start()
    daemon.wait_events(1)
    rotated = daemon.log_path.with_name("coordination-events-2026-01-01T00-00-00-000Z.ndjson")
    with open(daemon.log_path, "ab") as old:
        os.rename(daemon.log_path, rotated)
        old.write(b'{"type":"a2a.send","agentId":"ruda","ts":1767000000002,"data":{"n":2}}\n')
    daemon.append(event(3))
    assert ns(daemon.wait_events(3)) == [1, 2, 3]


def test_copytruncate(daemon: Daemon) -> None:
    daemon.append(event(1), event(2))
    daemon.start()
    daemon.wait_events(2)
    copy = daemon.log_path.with_name("coordination-events-copy.ndjson")
    copy.write_bytes(daemon.log_path.read_bytes())
    with open(daemon.log_path, "r+b") as f:
        f.truncate(0)
    daemon.append(event(3))
    assert ns(daemon.wait_events(3)) == [1, 2, 3]
    daemon.append(event(4))
    assert ns(daemon.wait_events(4)) == [1, 2, 3, 4]


def test_truncation_to_a_longer_new_content(daemon: Daemon) -> None:
    daemon.append(event(1))
    daemon.start()
    daemon.wait_events(1)
    # Rewritten in place with more bytes than before: the fingerprint changed.
    with open(daemon.log_path, "wb") as f:
        for n in (2, 3, 4):
            f.write((json.dumps(event(n)) + "\n").encode())
    assert ns(daemon.wait_events(4)) == [1, 2, 3, 4]


def test_delete_and_recreate(daemon: Daemon) -> None:
    daemon.append(event(1))
    daemon.start()
    daemon.wait_events(1)
    daemon.log_path.unlink()
    daemon.append(event(2))
    assert ns(daemon.wait_events(2)) == [1, 2]


def test_missing_log_and_directory_at_start(home: Path) -> None:
    (home / ".openclaw" / "logs").rmdir()
    d = Daemon(home, "--config", str(home / "coordd.toml"))
    try:
        d.start()
        health = d.get("/api/health").json()
        assert "waiting" in health["checks"]["log"][0]["output"]
        d.append(event(1))
        assert ns(d.wait_events(1)) == [1]
    finally:
        d.kill()


def test_kill_9_with_rotation_while_stopped(home: Path) -> None:
    d = Daemon(home, "--config", str(home / "coordd.toml"))
    d.append(*[event(n) for n in range(1, 6)])
    d.start()
    first = d.wait_events(5)
    seqs = {e["data"]["n"]: e["seq"] for e in first}
    d.append(event(6))
    d.wait_events(6)
    # Give the checkpoint a chance to be written, then kill -9.
    wait_for(lambda: (d.state_dir / "checkpoint.json").exists())
    d.kill()
    # While down: more lines, a rename rotation, and a new file.
    d.append(event(7))
    rotated = d.log_path.with_name("coordination-events-2026-02-01T00-00-00-000Z.ndjson")
    os.rename(d.log_path, rotated)
    d.append(event(8), event(9))
    d2 = Daemon(home, "--config", str(home / "coordd.toml"))
    try:
        d2.start()
        events = d2.wait_events(9)
        assert ns(events) == list(range(1, 10))
        for e in events:
            if e["data"]["n"] in seqs:
                assert e["seq"] == seqs[e["data"]["n"]]  # seqs survive the restart
        assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    finally:
        d2.kill()


def test_sigterm_exits_zero_and_sighup_reloads(home: Path) -> None:
    cfg = home / "coordd.toml"
    d = Daemon(home, "--config", str(cfg))
    d.append(event(1))
    d.start()
    cfg.write_text(CONFIG + '\n[logging]\nlevel = "DEBUG"\n[store]\nmax_events = 5\n')
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in d.output())
    assert "store.max_events changed but needs a restart" in d.output()
    assert d.stop(signal.SIGTERM) == 0


def test_bad_config_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[log]\npoll = 1\n")
    r = subprocess.run([sys.executable, "-m", "coordd", "--config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "[log] poll" in r.stderr
