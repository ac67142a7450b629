"""Black-box: `view=summary` and `/api/export` of the real daemon on a generated log — the
lean lists agree with the full ones, the export is `/api/events`' content streamed (NDJSON)
or a CSV the csv module reads, and it is a snapshot of when it began."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest

from coordd.core.export import CSV_COLUMNS
from coordd.synth.gen import write_log
from tests.daemon import Daemon, wait_for
from tests.leanref import lean_of

pytestmark = pytest.mark.slow

N = 6000


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("home")
    d = Daemon(home)
    write_log(d.log_path, N, seed=7)
    d.start()
    d.wait_events(N)
    try:
        yield d
    finally:
        d.kill()


def get(d: Daemon, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    r = d.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("params", [
    [], [("limit", "25")], [("status", "ARCHIVED")], [("role", "conversation.main")],
    [("type", "a2a.send,a2a.response"), ("limit", "10")], [("limit", "100000")],
])
def test_summary_list_is_the_full_list_summarised(daemon: Daemon,
                                                  params: list[tuple[str, str]]) -> None:
    full_r = daemon.get("/api/work-sessions", params=params)
    lean_r = daemon.get("/api/work-sessions", params=[*params, ("view", "summary")])
    full, lean = full_r.json(), lean_r.json()
    assert full["sessions"]
    assert lean == lean_of(full)
    assert len(lean_r.content) < len(full_r.content)


def test_summary_by_category(daemon: Daemon) -> None:
    counts = get(daemon, "/api/work-sessions", [])["categoryCounts"]
    for cat in counts:
        params = [("viewCategory", cat), ("limit", "10")]
        full = get(daemon, "/api/work-sessions", params)
        assert full["sessions"]
        assert get(daemon, "/api/work-sessions", [*params, ("view", "summary")]) == lean_of(full)


def test_summary_cursor_and_search(daemon: Daemon) -> None:
    full = get(daemon, "/api/work-sessions", [("limit", "5")])
    lean = get(daemon, "/api/work-sessions", [("limit", "5"), ("view", "summary")])
    assert lean["nextCursor"] == full["nextCursor"] is not None
    nxt = [("limit", "5"), ("cursor", full["nextCursor"])]
    assert get(daemon, "/api/work-sessions", [*nxt, ("view", "summary")]) == lean_of(
        get(daemon, "/api/work-sessions", nxt))
    q = [("q", full["sessions"][0]["threads"][0]["fromAgent"])]
    found = get(daemon, "/api/work-sessions/search", q)
    assert found["sessions"]
    assert get(daemon, "/api/work-sessions/search", [*q, ("view", "summary")]) == lean_of(found)


def test_bad_view_and_export_parameters_are_400(daemon: Daemon) -> None:
    for path, params in (("/api/work-sessions", {"view": "tiny"}),
                         ("/api/work-sessions/search", {"q": "a", "view": "tiny"}),
                         ("/api/export", {"format": "xlsx"}),
                         ("/api/export", {"since": "soon"}),
                         ("/api/export", {"since": "2000", "until": "1000"})):
        r = daemon.get(path, params=params)
        assert r.status_code == 400, (path, r.text)
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"error"}


def test_ndjson_export_is_the_events_answer_streamed(daemon: Daemon) -> None:
    events = daemon.events()
    with httpx.stream("GET", daemon.url + "/api/export", timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        assert r.headers["content-disposition"] == 'attachment; filename="coordd-events.ndjson"'
        assert r.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.headers
        raw = b"".join(r.iter_bytes())
    assert [json.loads(x) for x in raw.splitlines()] == events
    some = daemon.events(type="a2a.send", since=str(events[len(events) // 2]["ts"]))
    r = daemon.get("/api/export", params={"format": "ndjson", "type": "a2a.send",
                                          "since": str(events[len(events) // 2]["ts"])})
    assert [json.loads(x) for x in r.content.splitlines()] == some and some


def test_csv_export_parses(daemon: Daemon) -> None:
    events = daemon.events()
    ws = next(e["data"]["workSessionId"] for e in events if "workSessionId" in e["data"])
    r = daemon.get("/api/export", params={"format": "csv", "workSessionId": ws})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="coordd-events.csv"'
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline="")))
    want = [e for e in events if e["data"].get("workSessionId") == ws]
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [int(x["seq"]) for x in rows] == [e["seq"] for e in want]
    assert [x["type"] for x in rows] == [e["type"] for e in want]
    assert {x["workSessionId"] for x in rows} == {ws}


def test_export_is_a_snapshot_of_when_it_began(daemon: Daemon) -> None:
    before = len(daemon.events())
    with httpx.stream("GET", daemon.url + "/api/export", timeout=30) as r:
        chunks = r.iter_bytes()
        head = next(chunks)
        daemon.append(*({"type": "a2a.send", "agentId": "late", "ts": 1_800_000_000_000 + i,
                         "data": {"message": "late", "workSessionId": "ws_late"}}
                        for i in range(50)))
        wait_for(lambda: len(daemon.events()) == before + 50)
        raw = head + b"".join(chunks)
    got = [json.loads(x) for x in raw.splitlines()]
    assert len(got) == before and all(e["agentId"] != "late" for e in got)
