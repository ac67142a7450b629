"""The live demo writer: pace, whole lines, live timestamps, rotation (trio, autojump clock)."""

from __future__ import annotations

import re
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from coordd.cli.demo import rotated_name, run_demo
from coordd.core.event import parse_line
from coordd.core.jsvalues import event_time

RATE = 50.0


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "a partial line was left behind"
    return data.splitlines()


def _rotated(directory: Path) -> list[Path]:
    return sorted(directory.glob("coordination-events-*.ndjson"))


async def test_started_after_the_first_write(tmp_path: Path, autojump_clock: object) -> None:
    path = tmp_path / "logs" / "coordination-events.ndjson"
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_demo, path, rate=RATE, seed=1))
        assert path.stat().st_size > 0
        nursery.cancel_scope.cancel()
    assert _lines(path)


async def test_writes_complete_lines_at_about_the_rate(tmp_path: Path,
                                                       autojump_clock: object) -> None:
    path = tmp_path / "coordination-events.ndjson"
    window = 300.0
    wall_before = time.time() * 1000
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_demo, path, rate=RATE, seed=2))
        await trio.sleep(1)  # the recent-history backlog is written at once
        backlog = len(_lines(path))
        await trio.sleep(window)
        total = len(_lines(path))
        nursery.cancel_scope.cancel()
    wall_after = time.time() * 1000
    assert backlog > 1000  # a few minutes of history before the live part
    assert 0.85 * RATE < (total - backlog) / window < 1.15 * RATE
    events = []
    for line in _lines(path):
        result = parse_line(line)
        assert result.reason is None, line
        events.append(result.value)
    stamps = [event_time(e) for e in events]
    # Live timestamps: "now" when written; the history backlog (and late writes) a little
    # earlier. The wall clock barely moves here: the trio clock is the one that jumps.
    assert all(wall_before - 30 * 60_000 <= t <= wall_after + 1 for t in stamps)
    assert max(stamps) >= wall_before
    assert sum(1 for e in events if "workSessionId" in e["data"]) > 0.9 * len(events)


async def test_same_seed_same_events(tmp_path: Path, autojump_clock: object) -> None:
    def strip_time(line: bytes) -> bytes:
        return re.sub(rb'"(ts|timestampMs|timestamp)":("[^"]*"|\d+)', b"", line)

    outputs = []
    for name in ("a", "b"):
        path = tmp_path / name / "coordination-events.ndjson"
        with trio.move_on_after(30):
            await run_demo(path, rate=RATE, seed=7)
        outputs.append([strip_time(line) for line in _lines(path)])
    assert outputs[0] == outputs[1]


async def test_rotates_by_rename_every_n_lines(tmp_path: Path, autojump_clock: object) -> None:
    path = tmp_path / "coordination-events.ndjson"
    with trio.move_on_after(120):
        await run_demo(path, rate=RATE, seed=3, rotate_every=700)
    rotated = _rotated(tmp_path)
    assert len(rotated) >= 3
    pattern = r"coordination-events-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.ndjson"
    for old in rotated:
        assert re.fullmatch(pattern, old.name), old.name
        lines = _lines(old)
        assert len(lines) == 700
        assert all(parse_line(line).reason is None for line in lines)
    assert 0 < len(_lines(path)) <= 700


def test_rotated_name_skips_a_taken_millisecond(tmp_path: Path) -> None:
    path = tmp_path / "coordination-events.ndjson"
    ms = 1_771_330_496_789  # 2026-02-17T12:14:56.789Z
    first = rotated_name(path, ms)
    assert first.name == "coordination-events-2026-02-17T12-14-56-789Z.ndjson"
    first.touch()
    assert rotated_name(path, ms).name == "coordination-events-2026-02-17T12-14-56-790Z.ndjson"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rate": 0.0}, "rate"),
    ({"rate": float("nan")}, "rate"),
    ({"rotate_every": 0}, "rotate_every"),
])
async def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, float],
                                         message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await run_demo(tmp_path / "x.ndjson", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "x.ndjson").exists()


@pytest.mark.slow
def test_demo_command_prints_where_to_look_and_cleans_up(tmp_path: Path) -> None:
    import httpx

    from tests.daemon import Daemon, wait_for

    d = Daemon(tmp_path, "demo", "--rate", "50")
    try:
        d.start()
        banner = wait_for(lambda: [line for line in d.lines if "watch --port" in line])
        port = d.url.rsplit(":", 1)[1]
        assert banner[0].endswith(f"coordd watch --port {port}")
        text = d.output()
        for path in ("/api/work-sessions", "/api/events?limit=20", "/api/stats"):
            assert f"{d.url}{path}" in text
            assert httpx.get(d.url + path, timeout=10).status_code == 200
        assert f"{d.url}/ui/ " in text  # the web console
        page = httpx.get(d.url + "/ui/", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        log_line = next(line for line in d.lines if "synthetic log at" in line)
        log = Path(log_line.split("synthetic log at ", 1)[1].split(" (", 1)[0])
        workdir = log.parent.parent
        assert workdir.name.startswith("coordd-demo-") and log.exists()
        assert d.stop() == 0
    finally:
        d.kill()
    assert not workdir.exists(), "the demo's temporary directory was left behind"
