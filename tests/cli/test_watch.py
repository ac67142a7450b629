"""`coordd watch`: line format, filters, URL, and following a real in-test server
through drops and resyncs (the server harness is the one test_hub uses)."""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import websocket
from quart_trio import QuartTrio

from coordd.cli.watch import (
    EventFilter,
    fit,
    follow,
    format_line,
    split_csv,
    text_cols,
    watch_main,
    watch_url,
)
from coordd.live.hub import Hub
from tests.live.helpers import GUARD, T0, events, make_event, start_server

# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set the local time zone for one test."""

    def set_tz(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


class Sink(io.StringIO):
    """Captures output; `wait_lines(n)` wakes when n lines were written."""

    def __init__(self) -> None:
        super().__init__()
        self._wrote = trio.Event()

    def write(self, s: str) -> int:
        n = super().write(s)
        self._wrote.set()
        self._wrote = trio.Event()
        return n

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()

    async def wait_lines(self, n: int) -> None:
        with trio.fail_after(GUARD):
            while len(self.lines()) < n:
                await self._wrote.wait()

    async def wait_text(self, text: str) -> None:
        with trio.fail_after(GUARD):
            while text not in self.getvalue():
                await self._wrote.wait()


def enriched(etype: str = "a2a.send", **kw: Any) -> dict[str, Any]:
    data = {"fromAgent": "main", "toAgent": "ruda", "message": "코드 구현 진행 상황 공유",
            "workSessionId": "ws_1", "eventRole": "conversation.main"}
    data.update(kw.pop("data", {}))
    return {"type": etype, "agentId": "main", "ts": T0, "data": data,
            "eventRole": "conversation.main", "collabCategory": "engineering_build", **kw}


def seq_of(line: str) -> int:
    return int(line.rsplit("message ", 1)[1].split("x")[0])


class Result(list[int]):
    """follow()'s return value, and `wait()` for it."""

    def __init__(self) -> None:
        super().__init__()
        self.done = trio.Event()

    async def wait(self) -> None:
        with trio.fail_after(GUARD):
            await self.done.wait()


async def run_follow(url: str, out: Sink, err: io.StringIO, result: Result, **kw: Any) -> None:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("max_backoff", 0.05)
    kw.setdefault("width", 200)
    result.append(await follow(url, out=out, err=err, **kw))
    result.done.set()


# ---------------------------------------------------------------------------- one line


def test_line_format_in_local_time(tz: Any) -> None:
    tz("UTC")
    line = format_line(enriched(), width=200)
    assert line == ("12:12:38  a2a.send      main → ruda     ws_1          "
                    "engineering_build  코드 구현 진행 상황 공유")
    tz("Asia/Seoul")
    assert format_line(enriched(), width=200).startswith("21:12:38  a2a.send  ")


LONG = enriched(
    "continuation.start", agentId="a-very-long-agent-name",
    data={"fromAgent": "a-very-long-agent-name", "toAgent": "another-long-one",
          "workSessionId": "ws_764f1344-0212-4b89-8a9e-a7ee9385caaf",
          "message": "코드 구현 진행 상황 공유 " * 20})


@pytest.mark.parametrize("width", [80, 100, 60, 30])
def test_lines_fit_the_terminal_width(tz: Any, width: int) -> None:
    tz("UTC")
    for event in (enriched(), LONG, enriched(data={"message": "x" * 300})):
        line = format_line(event, width=width)
        assert text_cols(line) <= width, line


def test_the_preview_takes_what_the_width_leaves(tz: Any) -> None:
    tz("UTC")
    at80 = format_line(enriched(data={"message": "코드 구현 " * 30}), width=80)
    at120 = format_line(enriched(data={"message": "코드 구현 " * 30}), width=120)
    assert at80.endswith("…") and at120.endswith("…")
    # Wide characters (2 columns) and the space before a cut may leave a column or two.
    assert 77 <= text_cols(at80) <= 80 and 117 <= text_cols(at120) <= 120
    assert at120.startswith(at80[:-1].rstrip())


def test_the_default_width_is_the_terminals(tz: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tz("UTC")
    monkeypatch.setenv("COLUMNS", "80")
    assert text_cols(format_line(LONG)) <= 80
    monkeypatch.setenv("COLUMNS", "200")
    assert text_cols(format_line(LONG)) > 80


def test_the_line_shows_the_work_session(tz: Any) -> None:
    tz("UTC")
    line = format_line(LONG, width=200)
    assert "ws_764f1344…" in line  # a long id shows its start
    assert "  ws_1  " in format_line(enriched(), width=200)
    assert "  -  " in format_line({"type": "a2a.send", "data": {}}, now_ms=T0, width=200)


def test_fit_counts_terminal_columns() -> None:
    assert text_cols("코드") == 4 and text_cols("e\u0301") == 1
    assert fit("코드 구현", 5) == "코드…"
    assert fit("abc", 3) == "abc" and fit("abcd", 3) == "ab…"


def test_line_is_one_line_with_a_bounded_clean_preview(tz: Any) -> None:
    tz("UTC")
    long = "first line\nsecond\tline \x1b[31mred\x1b[0m " + "word " * 40
    line = format_line(enriched(data={"message": long}), width=120)
    assert "\n" not in line and "\x1b" not in line and "\t" not in line
    preview = line.split("engineering_build", 1)[1].strip()
    assert preview.startswith("first line second line red word word")
    assert line.endswith("…") and text_cols(line) <= 120


def test_line_fallbacks(tz: Any) -> None:
    tz("UTC")
    ev = {"type": "task.updated", "data": {"taskId": "task_1"}, "timestamp": "bad"}
    line = format_line(ev, now_ms=T0 + 5, width=200)
    # No time in the event: the arrival time. No agents: "?". No session or category: "-".
    assert line == ("12:12:38  task.updated  ? → ?           -             -"
                    "                  task_1")
    reply = enriched(data={"message": None, "replyPreview": "the reply"})
    del reply["data"]["message"]
    assert format_line(reply, width=200).endswith("  the reply")


# ---------------------------------------------------------------------------- filters


def test_split_csv_accepts_repeats_and_commas() -> None:
    assert split_csv(["a,b", " c ", "", "d,,e"]) == ["a", "b", "c", "d", "e"]
    assert split_csv(None) == []


def test_filters() -> None:
    send = enriched()
    resp = enriched("a2a.response", data={"fromAgent": "eden", "toAgent": "main",
                                          "workSessionId": "ws_2"}, agentId="eden")
    task = {"type": "task.started", "agentId": "seum",
            "data": {"workSessionId": "ws_3"}, "eventRole": "orchestration.task"}
    every = [send, resp, task]

    def kept(**kw: Any) -> list[str]:
        f = EventFilter.from_lists(**kw)
        return [str(e["type"]) for e in every if f.matches(e)]

    assert kept() == ["a2a.send", "a2a.response", "task.started"]
    assert kept(types=["a2a.response,task.started"]) == ["a2a.response", "task.started"]
    assert kept(types=["a2a.*"]) == ["a2a.send", "a2a.response"]
    assert kept(roles=["orchestration.task"]) == ["task.started"]
    assert kept(agents=["ruda"]) == ["a2a.send"]          # a recipient
    assert kept(agents=["eden"]) == ["a2a.response"]      # a sender
    assert kept(agents=["seum"]) == ["task.started"]      # the acting agent
    assert kept(sessions=["ws_2", "ws_3"]) == ["a2a.response", "task.started"]
    assert kept(types=["a2a.*"], agents=["main"], sessions=["ws_2"]) == ["a2a.response"]
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        EventFilter.from_lists(roles=["conversation.main,boss"])


# ---------------------------------------------------------------------------- URL and CLI


def ns(**kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {"url": None, "host": None, "port": None, "config": None,
                            "type": [], "role": [], "agent": [], "session": [],
                            "max_events": None}
    base.update(kw)
    return argparse.Namespace(**base)


def test_watch_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASK_MONITOR_HOST", raising=False)
    monkeypatch.delenv("TASK_MONITOR_PORT", raising=False)
    assert watch_url(ns()) == "ws://127.0.0.1:3847/ws"
    assert watch_url(ns(url="ws://h:1/ws?x=1")) == "ws://h:1/ws?x=1"
    monkeypatch.setenv("TASK_MONITOR_HOST", "10.0.0.2")
    monkeypatch.setenv("TASK_MONITOR_PORT", "4000")
    assert watch_url(ns()) == "ws://10.0.0.2:4000/ws"
    assert watch_url(ns(port=5000)) == "ws://10.0.0.2:5000/ws"  # the flag wins
    assert watch_url(ns(host="0.0.0.0")) == "ws://127.0.0.1:4000/ws"
    assert watch_url(ns(host="::1")) == "ws://[::1]:4000/ws"


def test_watch_main_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert watch_main(ns(role=["nope"])) == 2
    assert "unknown role 'nope'" in capsys.readouterr().err
    assert watch_main(ns(url="http://127.0.0.1:1/ws")) == 2
    assert "not a WebSocket URL" in capsys.readouterr().err
    assert watch_main(ns(url="ws://127.0.0.1:1/ws", max_events=-1)) == 2
    assert watch_main(ns(url="ws://127.0.0.1:1/ws", max_events=0)) == 0


# ---------------------------------------------------------------------------- following


async def test_follow_prints_filtered_events_and_stops_after_max(
    nursery: trio.Nursery, tz: Any,
) -> None:
    tz("UTC")
    hub = Hub(epoch=lambda: "E1")
    hub.publish(events(1, 5))  # before the watcher: not shown (live only, as upstream)
    server = await start_server(nursery, hub)
    out, err, result = Sink(), io.StringIO(), Result()
    nursery.start_soon(partial(run_follow, server.url, out, err, result, max_events=3,
                               filt=EventFilter.from_lists(types=["task.*"])))
    with trio.fail_after(GUARD):
        await hub.wait_clients(1)
    batch = [make_event(6), make_event(7, "task.started"), make_event(8),
             make_event(9, "task.updated"), make_event(10, "task.completed"),
             make_event(11, "task.started")]
    hub.publish(batch)
    await result.wait()  # it leaves after the third line
    assert result == [0]
    assert [line.split()[1] for line in out.lines()] == [
        "task.started", "task.updated", "task.completed"]
    assert [seq_of(line) for line in out.lines()] == [7, 9, 10]


async def test_follow_resumes_after_the_server_drops_it(nursery: trio.Nursery) -> None:
    hub = Hub(epoch=lambda: "E1")
    server = await start_server(nursery, hub)
    out, err, result = Sink(), io.StringIO(), Result()
    nursery.start_soon(partial(run_follow, server.url, out, err, result, max_events=25))
    with trio.fail_after(GUARD):
        await hub.wait_clients(1)
    hub.publish(events(1, 10))
    await out.wait_lines(10)
    server.drop()
    with trio.fail_after(GUARD):
        await hub.wait_clients(0)
    hub.publish(events(11, 15))  # missed while away: replayed on resume
    hub.publish(events(16, 20))
    with trio.fail_after(GUARD):
        await hub.wait_clients(1)
    await out.wait_lines(20)
    hub.publish(events(21, 25))
    await result.wait()
    assert result == [0]
    assert [seq_of(line) for line in out.lines()] == list(range(1, 26))
    st = hub.statistics()
    assert (st.resumes, st.replayed_events, st.resyncs) == (1, 10, 0)
    assert "connection lost" in err.getvalue()
    assert "since=10&epoch=E1" in err.getvalue()


async def test_follow_continues_live_after_resync_required(nursery: trio.Nursery) -> None:
    current = ["E1"]
    hub = Hub(epoch=lambda: current[0])
    server = await start_server(nursery, hub)
    out, err, result = Sink(), io.StringIO(), Result()
    nursery.start_soon(partial(run_follow, server.url, out, err, result, max_events=5))
    with trio.fail_after(GUARD):
        await hub.wait_clients(1)
    hub.publish(events(1, 3))
    await out.wait_lines(3)
    server.drop()
    with trio.fail_after(GUARD):
        await hub.wait_clients(0)
    current[0] = "E2"  # e.g. the daemon restarted on a new log
    hub.publish(events(1, 2))
    with trio.fail_after(GUARD):
        await hub.wait_clients(1)
    hub.publish(events(3, 4))
    await result.wait()
    assert result == [0]
    # Live from the resync point: E2's 1 and 2 happened while away and are not invented.
    assert [seq_of(line) for line in out.lines()] == [1, 2, 3, 3, 4]
    assert "cannot replay what was missed (epoch mismatch)" in err.getvalue()
    assert hub.statistics().resyncs == 1


async def test_follow_retries_until_the_server_is_up(nursery: trio.Nursery) -> None:
    with socket.socket() as s:  # a port with nobody listening (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub = Hub(epoch=lambda: "E1")
    out, err, result = Sink(), Sink(), Result()
    url = f"ws://127.0.0.1:{port}/ws"
    nursery.start_soon(partial(run_follow, url, out, err, result, max_events=2))
    # One line saying so, before each retry.
    await err.wait_text("retrying")
    first = err.lines()[0]
    assert first.startswith(f"coordd watch: cannot reach http://127.0.0.1:{port} "
                            "(connection refused; is coordd running?), retrying in "), first
    app = QuartTrio(__name__)

    @app.websocket("/ws")
    async def ws() -> None:
        await hub.serve(websocket)

    cfg = HypercornConfig()
    cfg.bind = [f"127.0.0.1:{port}"]
    cfg.accesslog = None
    await nursery.start(partial(hypercorn_serve, app, cfg, shutdown_trigger=trio.sleep_forever))
    with trio.fail_after(GUARD):
        await hub.wait_clients(1)
    hub.publish(events(1, 2))
    await result.wait()
    assert result == [0]
    assert [seq_of(line) for line in out.lines()] == [1, 2]



async def test_json_prints_one_object_per_event(nursery: trio.Nursery) -> None:
    import json

    hub = Hub(epoch=lambda: "E1")
    server = await start_server(nursery, hub)
    out, err, result = Sink(), io.StringIO(), Result()
    nursery.start_soon(partial(run_follow, server.url, out, err, result, max_events=3,
                               json_lines=True))
    with trio.fail_after(GUARD):
        await hub.wait_clients(1)
    hub.publish(events(1, 3))
    await result.wait()
    printed = [json.loads(line) for line in out.lines()]
    assert [e["seq"] for e in printed] == [1, 2, 3]
    assert all(e["data"]["workSessionId"] == "ws_1" and e["type"] == "a2a.send"
               for e in printed)


# ---------------------------------------------------------------------------- the command


def watch_cmd(*args: str, columns: int = 80) -> subprocess.Popen[str]:
    import os
    import sys

    env = {**os.environ, "COLUMNS": str(columns), "TZ": "UTC"}
    return subprocess.Popen([sys.executable, "-m", "coordd", "watch", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8")


@pytest.mark.slow
def test_watch_command_against_the_daemon(tmp_path: Path) -> None:
    import json

    from tests.daemon import Daemon, event

    d = Daemon(tmp_path).start()
    try:
        port = d.url.rsplit(":", 1)[1]
        long = {"message": "코드 구현 진행 상황 공유 " * 10,
                "workSessionId": "ws_764f1344-0212-4b89-8a9e-a7ee9385caaf"}
        for args, columns in ((["--json"], 80), ([], 80)):
            proc = watch_cmd("--port", port, "--max-events", "2", *args, columns=columns)
            try:
                assert proc.stderr is not None
                assert "connected to" in proc.stderr.readline()
                d.append(event(1), event(2, **long))
                out, _ = proc.communicate(timeout=30)
            finally:
                proc.kill()
            assert proc.returncode == 0
            lines = out.splitlines()
            assert len(lines) == 2, out
            if args:
                assert [json.loads(line)["data"]["n"] for line in lines] == [1, 2]
            else:
                assert all(text_cols(line) <= 80 for line in lines), out
                assert "ws_0" in lines[0] and "ws_764f1344…" in lines[1]
            d.log_path.write_text("")  # the next round starts on an empty log
    finally:
        d.kill()


@pytest.mark.slow
def test_watch_command_without_a_daemon_says_so() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = watch_cmd("--port", str(port))
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait()
    assert first.startswith(f"coordd watch: cannot reach http://127.0.0.1:{port} (connection "
                            "refused; is coordd running?), retrying in "), first
