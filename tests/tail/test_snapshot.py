"""The shutdown snapshot: written for one checkpoint, loaded only for that checkpoint and the
same enrichment, refused (a start from the log) on anything else."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coordd.core.event import RECORD_FIELDS, Event
from coordd.synth.gen import generate
from coordd.tail import snapshot
from coordd.tail.checkpoint import Checkpoint, FileId
from coordd.tail.snapshot import SNAPSHOT_NAME, read_snapshot, snapshot_fingerprint, write_snapshot
from tests.daemon import Daemon, event, wait_for
from tests.mongo.helpers import ENRICHER

FID = FileId(1, 2, 1024, "a" * 64)
FP = snapshot_fingerprint([("keywords", "0.1.0")], {"main", "ruda"})


def stored(n: int, first_seq: int = 1) -> list[Event]:
    out = []
    for raw in generate(n, seed=5):
        ev = ENRICHER.enrich_event(raw, first_seq + len(out))
        assert ev is not None
        out.append(ev)
    return out


def cp_for(events: list[Event], epoch: str = "E1") -> Checkpoint:
    return Checkpoint(FID, 123_456, events[-1].seq, epoch)


def same(a: list[Event], b: list[Event]) -> bool:
    return [[getattr(e, f) for f in RECORD_FIELDS] for e in a] == [
        [getattr(e, f) for f in RECORD_FIELDS] for e in b]


def test_round_trip_field_for_field(tmp_path: Path) -> None:
    events = stored(300)
    cp = cp_for(events)
    size = write_snapshot(tmp_path, events, cp, FP)
    assert (tmp_path / SNAPSHOT_NAME).stat().st_size == size
    back = read_snapshot(tmp_path, cp, FP, max_events=1000)
    assert back is not None and same(back, events)
    assert all(ev.source is None for ev in back)
    # Interned fields come back interned (one object per distinct value, as parsed).
    seen: dict[str, str] = {}
    for e in back:
        for value in (e.type, e.thread, e.from_agent, e.to_agent):
            assert seen.setdefault(value, value) is value


def test_a_temporary_file_left_by_a_killed_write_is_removed(tmp_path: Path) -> None:
    events = stored(5)
    left = tmp_path / f".{SNAPSHOT_NAME}.abc123.tmp"
    left.write_bytes(b"half a snapshot")
    write_snapshot(tmp_path, events, cp_for(events), FP)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SNAPSHOT_NAME]


def test_a_smaller_store_takes_the_newest(tmp_path: Path) -> None:
    events = stored(300)
    cp = cp_for(events)
    write_snapshot(tmp_path, events, cp, FP)
    back = read_snapshot(tmp_path, cp, FP, max_events=100)
    assert back is not None and same(back, events[-100:])


@pytest.mark.parametrize("case", ["other checkpoint", "other epoch", "other fingerprint",
                                  "larger window", "damaged", "truncated", "not a snapshot",
                                  "missing"])
def test_refused_means_a_start_from_the_log(tmp_path: Path, case: str,
                                            caplog: Any) -> None:
    events = stored(200, first_seq=101)  # seqs 101..300: the first 100 are not held
    cp = cp_for(events)
    write_snapshot(tmp_path, events, cp, FP)
    path = tmp_path / SNAPSHOT_NAME
    want_cp, want_fp, max_events = cp, FP, 200
    if case == "other checkpoint":
        want_cp = Checkpoint(FID, cp.offset + 10, cp.seq + 1, cp.epoch)
    elif case == "other epoch":
        want_cp = Checkpoint(FID, cp.offset, cp.seq, "E2")
    elif case == "other fingerprint":
        want_fp = snapshot_fingerprint([("keywords", "0.1.0"), ("rules", "1.0")], {"main"})
    elif case == "larger window":
        max_events = 250  # a cold start would read seqs 51..300
    elif case == "damaged":
        raw = bytearray(path.read_bytes())
        raw[-50] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:-1000])
    elif case == "not a snapshot":
        path.write_bytes(b'{"checkpoint": true}\n')
    elif case == "missing":
        path.unlink()
    with caplog.at_level(logging.INFO, logger="coordd.tail.snapshot"):
        assert read_snapshot(tmp_path, want_cp, want_fp, max_events=max_events) is None
    if case != "missing":
        assert "reading the log" in caplog.text
    # The right request still gets it (the file itself is left alone) where it is intact.
    if case in ("other checkpoint", "other epoch", "other fingerprint", "larger window"):
        assert read_snapshot(tmp_path, cp, FP, max_events=200) is not None


def test_the_events_must_end_at_the_checkpoint(tmp_path: Path) -> None:
    events = stored(10)
    with pytest.raises(ValueError, match="checkpoint"):
        write_snapshot(tmp_path, events, Checkpoint(FID, 1, 99, "E1"), FP)


def test_fingerprint_depends_on_plugins_and_main_agents_not_their_order() -> None:
    a = snapshot_fingerprint([("keywords", "1"), ("rules", "2")], ["b", "a"])
    assert a == snapshot_fingerprint([("rules", "2"), ("keywords", "1")], ["a", "b"])
    assert a != snapshot_fingerprint([("keywords", "1"), ("rules", "3")], ["a", "b"])
    assert a != snapshot_fingerprint([("keywords", "1"), ("rules", "2")], ["a"])


def test_fingerprint_depends_on_the_category_vocabulary() -> None:
    # The same plugin, configured with other categories, classifies differently.
    a = snapshot_fingerprint([("rules", "1")], ["a"], ["engineering_build", "billing"])
    assert a != snapshot_fingerprint([("rules", "1")], ["a"], ["engineering_build", "finance"])


def test_fingerprint_depends_on_the_line_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    # Events parsed under other rules (invalid UTF-8 once skipped, now repaired) are not
    # what a cold start would store.
    a = snapshot_fingerprint([("keywords", "1")], ["a"])
    monkeypatch.setattr(snapshot, "LINE_RULES_VERSION", 1)
    assert a != snapshot_fingerprint([("keywords", "1")], ["a"])


# ---------------------------------------------------------------------------- the daemon


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    return tmp_path


def answers(d: Daemon) -> tuple[Any, Any]:
    sessions = d.get("/api/work-sessions", params={"limit": "1000"}).json()
    return d.events(), [(s["workSessionId"], s["eventCount"], s["threadCount"],
                         s["collabCategory"]) for s in sessions["sessions"]]


def test_a_clean_restart_loads_the_snapshot_and_answers_the_same(home: Path) -> None:
    d = Daemon(home, "--log-level", "INFO").start()
    d.append(*(event(n) for n in range(1, 301)))
    d.wait_events(300)
    before = answers(d)
    assert d.stop() == 0
    assert (d.state_dir / SNAPSHOT_NAME).exists()
    assert "snapshot: 300 events" in d.output()
    d2 = Daemon(home, "--log-level", "INFO").start()
    try:
        assert "snapshot: 300 events of epoch" in d2.output()
        assert "history: 300 events loaded from the snapshot, 300 log lines skipped" in (
            d2.output())
        assert answers(d2) == before
        d2.append(event(301))  # and it goes on tailing from the checkpoint
        evs = d2.wait_events(301)
        assert [e["data"]["n"] for e in evs] == list(range(1, 302))
        assert evs[-1]["seq"] == 301
    finally:
        d2.stop()


def test_a_stale_snapshot_after_a_crash_is_not_used(home: Path) -> None:
    d = Daemon(home, "--log-level", "INFO").start()
    d.append(*(event(n) for n in range(1, 101)))
    d.wait_events(100)
    assert d.stop() == 0  # snapshot for seq 100
    d2 = Daemon(home, "--log-level", "INFO").start()
    d2.append(*(event(n) for n in range(101, 151)))
    d2.wait_events(150)
    wait_for(lambda: '"seq":150' in (d2.state_dir / "checkpoint.json").read_text())
    d2.kill()  # no new snapshot: the old one is for seq 100
    d3 = Daemon(home, "--log-level", "INFO").start()
    try:
        assert "snapshot: written for seq 100" in d3.output()
        assert [e["data"]["n"] for e in d3.events()] == list(range(1, 151))
    finally:
        d3.stop()


def test_other_plugins_or_snapshot_off_mean_a_start_from_the_log(home: Path) -> None:
    d = Daemon(home, "--log-level", "INFO", env={"COORDD_PLUGINS": "keywords"}).start()
    d.append(*(event(n) for n in range(1, 51)))
    d.wait_events(50)
    assert d.stop(signal.SIGINT) == 0
    d2 = Daemon(home, "--log-level", "INFO", env={"COORDD_PLUGINS": ""}).start()
    try:
        assert "the plugins or the main agents changed" in d2.output()
        assert len(d2.events()) == 50
    finally:
        d2.stop()
    (home / "off.toml").write_text("[state]\nsnapshot = false\n")
    d3 = Daemon(home, "--log-level", "INFO", "--config", str(home / "off.toml")).start()
    try:
        assert "snapshot:" not in d3.output()
        assert len(d3.events()) == 50
    finally:
        d3.stop()
    assert "snapshot:" not in d3.output()


def test_check_says_whether_the_next_start_loads_the_snapshot(home: Path) -> None:
    def check() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-m", "coordd", "--check", "--offline", "--json", "--state-dir",
             str(home / "state")], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60)
        return [c["output"] for c in json.loads(out.stdout)["checks"]["state"]]

    d = Daemon(home).start()
    d.append(*(event(n) for n in range(1, 21)))
    d.wait_events(20)
    assert d.stop() == 0
    assert any("snapshot of 20 events for the checkpoint" in m for m in check())
    d2 = Daemon(home).start()
    d2.append(event(21))
    d2.wait_events(21)
    wait_for(lambda: '"seq":21' in (d2.state_dir / "checkpoint.json").read_text())
    d2.kill()
    assert any("snapshot is for seq 20, the checkpoint is at 21" in m for m in check())
    (home / "state" / SNAPSHOT_NAME).write_bytes(b"junk")
    assert any("not a usable snapshot" in m for m in check())
