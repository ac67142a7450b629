"""The lean answers and the export, in-process: `view=summary` is the full answer with each
thread summarised (same sessions, counts, order and cursors, for every filter), its preview
bound and cache, and `coordd.core.export` (NDJSON equal to `/api/events`, CSV columns,
chunking, bad parameters)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordd.core import queries
from coordd.core.event import Event
from coordd.core.export import CSV_COLUMNS, export_chunks, export_query
from coordd.core.overrides import Overrides
from coordd.core.store import Store
from coordd.core.summaries import PREVIEW_CHARS, message_preview
from coordd.errors import BadRequest
from tests.leanref import PREVIEW, lean_of
from tests.wsref import NOW, ev

P = list[tuple[str, str]]


def answer(fn: Any, store: Store, params: P) -> dict[str, Any]:
    code, body = fn(store, params, NOW)
    assert code == 200, body
    return orjson.loads(body)  # type: ignore[no-any-return]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(overrides=Overrides(tmp_path / "ov.json"), epoch="ep1")
    evs = []
    for i in range(1, 301):
        etype = ("a2a.send", "a2a.response", "task.updated", "a2a.complete")[i % 4]
        role = ("conversation.main", "delegation.subagent", "orchestration.task")[i % 3]
        extra: dict[str, Any] = {}
        if i % 4 in (1, 3) and i % 3:
            extra["outcome"] = ("no_reply", "blocked", "done")[i % 3]
        if i % 5:
            extra["message"] = f"  message {i} 코드 " + "x" * (i % 7) * 40
        evs.append(ev(i, etype, NOW - (400 - i) * 60_000 - (i % 3) * 86_400_000,
                      ws=f"ws_{i % 30}", role=role,
                      category=("engineering_build", "infra_ops")[i % 2],
                      tags=["Implement"] if i % 11 == 0 else [],
                      fromAgent=("ruda", "eden")[i % 2], toAgent="main",
                      conversationId=f"c{i % 6}" if i % 9 else None, **extra))
    s.extend(evs)
    return s


LIST_PARAMS: list[P] = [
    [], [("limit", "7")], [("status", "ACTIVE")], [("status", "ARCHIVED,QUIET")],
    [("role", "conversation.main")], [("type", "a2a.send,a2a.response")],
    [("viewCategory", "infra_ops")], [("subTag", "implement")], [("limit", "1000")],
]


@pytest.mark.parametrize("params", LIST_PARAMS)
def test_summary_is_the_full_list_summarised(store: Store, params: P) -> None:
    full = answer(queries.get_work_sessions, store, params)
    lean = answer(queries.get_work_sessions, store, [*params, ("view", "summary")])
    assert lean == lean_of(full)
    assert list(lean) == list(full)  # the same top-level keys, in order
    assert full["sessions"], "the fixture should give every shape some sessions"
    for s in lean["sessions"]:
        assert all("events" not in t for t in s["threads"])


def test_summary_cursors_walk_the_same_sessions(store: Store) -> None:
    def walk(extra: P) -> list[Any]:
        seen: list[Any] = []
        cursor: str | None = None
        while True:
            params = [("limit", "4"), *extra] + ([("cursor", cursor)] if cursor else [])
            body = answer(queries.get_work_sessions, store, params)
            seen.append(body["sessions"])
            cursor = body["nextCursor"]
            if cursor is None:
                return seen
    full, lean = walk([]), walk([("view", "summary")])
    assert lean == [lean_of({"sessions": page})["sessions"] for page in full]
    assert len(full) > 3


def test_view_full_is_byte_identical_and_bad_views_are_400(store: Store) -> None:
    for fn, params in ((queries.get_work_sessions, []),
                       (queries.search_work_sessions, [("q", "ruda")])):
        assert fn(store, [*params, ("view", "full")], NOW) == fn(store, params, NOW)
        for bad in ("summaries", "FULL", "lean"):
            code, body = fn(store, [*params, ("view", bad)], NOW)
            assert code == 400
            error = orjson.loads(body)["error"]
            assert repr(bad) in error and "summary" in error and "full" in error


def test_search_summary_is_the_search_summarised(store: Store) -> None:
    for params in ([("q", "ruda")], [("q", "ws_1"), ("limit", "3")], [("q", "infra")]):
        full = answer(queries.search_work_sessions, store, params)
        lean = answer(queries.search_work_sessions, store, [*params, ("view", "summary")])
        assert lean == lean_of(full) and full["sessions"]


def test_last_outcome_and_preview_come_from_the_last_event_that_has_each(tmp_path: Path) -> None:
    s = Store(overrides=Overrides(tmp_path / "ov.json"), epoch="e")
    long = "가" * 150 + "b" * 100
    s.extend([
        ev(1, "a2a.send", NOW - 5000, fromAgent="a", toAgent="b", message="first"),
        ev(2, "a2a.response", NOW - 4000, fromAgent="b", toAgent="a", outcome=" blocked ",
           message=long),
        ev(3, "a2a.send", NOW - 3000, fromAgent="a", toAgent="b", outcome="  ", message=""),
        ev(4, "task.updated", NOW - 2000, fromAgent="a", toAgent="b"),
    ])
    (t,) = answer(queries.get_work_sessions, s, [("view", "summary")])["sessions"][0]["threads"]
    assert t["lastEventType"] == "task.updated" and t["eventCount"] == 4
    assert t["lastOutcome"] == "blocked"  # the blank one at seq 3 is not an outcome
    assert t["lastMessagePreview"] == long[:PREVIEW_CHARS - 1] + "…"
    assert len(t["lastMessagePreview"]) == PREVIEW_CHARS == PREVIEW
    s.extend([ev(5, "a2a.complete", NOW - 1000, fromAgent="a", toAgent="b", message="done",
                 outcome="failed")])
    # The cached lean parts are forgotten when the session changes.
    (t,) = answer(queries.get_work_sessions, s, [("view", "summary")])["sessions"][0]["threads"]
    assert (t["lastOutcome"], t["lastMessagePreview"], t["eventCount"]) == ("failed", "done", 5)


def test_a_thread_without_outcome_or_message_has_nulls(tmp_path: Path) -> None:
    s = Store(overrides=Overrides(tmp_path / "ov.json"), epoch="e")
    s.extend([ev(1, "task.created", NOW, fromAgent="a", toAgent="b")])
    (t,) = answer(queries.get_work_sessions, s, [("view", "summary")])["sessions"][0]["threads"]
    assert t["lastOutcome"] is None and t["lastMessagePreview"] is None


def test_message_preview_bound() -> None:
    assert message_preview("a" * PREVIEW_CHARS) == "a" * PREVIEW_CHARS
    cut = message_preview("a" * (PREVIEW_CHARS + 1))
    assert len(cut) == PREVIEW_CHARS and cut.endswith("…")


_text = st.one_of(st.none(), st.just(""), st.just("  "), st.text(max_size=200),
                  st.integers(), st.just("x" * 300))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a2a.send", "a2a.response", "task.updated"]),
                          st.integers(0, 50), st.sampled_from(["w1", "w2", None]),
                          st.sampled_from(["a", "b"]), _text, _text), min_size=1, max_size=40))
def test_summary_equals_the_full_answer_summarised_for_any_events(rows: list[Any]) -> None:
    s = Store(epoch="h")
    evs = [ev(i, t, NOW - dt * 1000, ws, fromAgent=a, toAgent="m", message=m, outcome=o)
           for i, (t, dt, ws, a, m, o) in enumerate(rows, 1)]
    s.extend(evs)
    full = answer(queries.get_work_sessions, s, [])
    assert answer(queries.get_work_sessions, s, [("view", "summary")]) == lean_of(full)


# ---------------------------------------------------------------------------- export


def body(store: Store, params: P, chunk: int = 64 * 1024) -> bytes:
    q = export_query(params)
    return b"".join(export_chunks(list(store.iter_events()), q, chunk_bytes=chunk))


@pytest.mark.parametrize("params", [
    [], [("type", "a2a.send,task.updated")], [("since", str(int(NOW - 200 * 60_000)))],
    [("since", "2026-02-16T00:00:00Z"), ("until", str(int(NOW - 100 * 60_000)))],
])
def test_ndjson_is_what_api_events_carries(store: Store, params: P) -> None:
    want = answer(queries.get_events, store, [*params, ("limit", "100000")])["events"]
    lines = body(store, params).split(b"\n")
    assert lines[-1] == b""  # every line ends in a newline
    assert [orjson.loads(x) for x in lines[:-1]] == want and want


def test_ndjson_by_work_session_and_in_small_chunks(store: Store) -> None:
    q = export_query([("workSessionId", "ws_1,ws_2"), ("workSessionId", "ws_3")])
    chunks = list(export_chunks(list(store.iter_events()), q, chunk_bytes=1000))
    assert len(chunks) > 5 and all(c.endswith(b"\n") for c in chunks)
    assert all(len(c) < 1000 + 2000 for c in chunks)  # a chunk closes after its first
    got = [orjson.loads(x) for x in b"".join(chunks).splitlines()]
    assert {e["data"]["workSessionId"] for e in got} == {"ws_1", "ws_2", "ws_3"}
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    assert body(store, [("format", "ndjson"), ("workSessionId", "nope")]) == b""


def test_csv_has_the_documented_columns(store: Store) -> None:
    want = answer(queries.get_events, store, [("limit", "100000")])["events"]
    text = body(store, [("format", "csv")], chunk=500).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == len(want)
    for row, e in zip(rows, want, strict=True):
        data = e["data"]
        assert row["seq"] == str(e["seq"]) and row["type"] == e["type"]
        assert row["tsMs"] == str(e["ts"]) and row["ts"].endswith("Z")
        assert row["workSessionId"] == data["workSessionId"]
        assert row["role"] == e["eventRole"] and row["collabCategory"] == e["collabCategory"]
        assert row["fromAgent"] == data["fromAgent"] and row["toAgent"] == data["toAgent"]
        assert row["message"] == data.get("message", "")
        assert row["outcome"] == data.get("outcome", "")
        assert row["collabSubTags"] == ";".join(e["collabSubTags"])
        assert row["threadId"].startswith(("conv:", "pair:"))


def test_csv_quotes_what_needs_it_and_has_one_header(tmp_path: Path) -> None:
    s = Store(epoch="e")
    tricky = 'a "quoted", multi\nline\r\nmessage'
    s.extend([ev(1, "a2a.send", NOW, message=tricky), ev(2, "a2a.send", NOW + 1)])
    q = export_query([("format", "csv")])
    first = b"".join(export_chunks(list(s.iter_events())[:1], q))
    rest = b"".join(export_chunks(list(s.iter_events())[1:], q, header=False))
    rows = list(csv.reader(io.StringIO((first + rest).decode(), newline="")))
    assert rows[0] == list(CSV_COLUMNS) and len(rows) == 3
    assert rows[1][CSV_COLUMNS.index("message")] == tricky
    assert body(s, [("format", "csv"), ("type", "none")]).decode().count("\r\n") == 1


@pytest.mark.parametrize("params,needle", [
    ([("format", "xml")], "ndjson"),
    ([("since", "yesterday")], "since"),
    ([("until", "2026-13-45")], "until"),
    ([("since", "2000"), ("until", "1000")], "swap"),
])
def test_bad_export_parameters_say_how_to_fix_them(params: P, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        export_query(params)


def test_export_reads_a_snapshot(store: Store) -> None:
    held = list(store.iter_events())
    q = export_query([])
    chunks = export_chunks(held, q, chunk_bytes=100)
    head = next(chunks)
    store.extend([Event(1000 + i, {"type": "late", "ts": NOW}) for i in range(200_000 // 1000)])
    rest = b"".join(chunks)
    assert len((head + rest).splitlines()) == 300  # the appended batch is not seen
