"""The attention tracker: items open and close by events and by the clock, session status
changes are reported at the boundary, and a replayed history gives what live following gave."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coordd.core.attention import Attention, ItemChange, StatusChange, replay
from coordd.core.event import Event
from coordd.core.sessions import status_of
from coordd.core.vocabulary import ARCHIVE_AFTER_MS

T0 = 1_767_000_000_000
MIN = 60_000
REPLY, SILENT = 10 * MIN, 30 * MIN


def ev(seq: int, etype: str, ts: float, *, ws: str | None = "ws1", conv: str = "c1",
       src: str = "ruda", dst: str = "main", **data: Any) -> Event:
    payload: dict[str, Any] = {"fromAgent": src, "toAgent": dst, "conversationId": conv,
                               **data}
    if ws is not None:
        payload["workSessionId"] = ws
    return Event(seq, {"type": etype, "agentId": src, "ts": ts, "data": payload})


def tracker() -> Attention:
    return Attention(reply_timeout_ms=REPLY, silent_after_ms=SILENT)


def opened(changes: list[Any]) -> list[str]:
    return [c.item.id for c in changes if isinstance(c, ItemChange) and c.op == "open"]


def closed(changes: list[Any]) -> list[str]:
    return [c.item.id for c in changes if isinstance(c, ItemChange) and c.op == "close"]


def test_an_unanswered_send_opens_at_the_timeout_and_closes_with_the_reply() -> None:
    a = tracker()
    assert a.observe(ev(1, "a2a.send", T0), T0) == []
    assert a.next_deadline() == T0 + REPLY
    assert opened(a.tick(T0 + REPLY - 1)) == []
    changes = a.tick(T0 + REPLY)
    assert opened(changes) == ["awaiting_reply:ws1:conv:c1"]
    item = a.open_items()[0]
    assert (item.kind, item.since, item.seq, item.from_agent, item.to_agent) == (
        "awaiting_reply", T0, 1, "ruda", "main")
    assert item.as_json(T0 + REPLY + 5)["ageMs"] == REPLY + 5
    changes = a.observe(ev(2, "a2a.response", T0 + REPLY + 7, src="main", dst="ruda"),
                        T0 + REPLY + 7)
    assert closed(changes) == ["awaiting_reply:ws1:conv:c1"]
    assert a.open_items() == []
    assert a.closed_items()[0].closed_at == T0 + REPLY + 7


def test_a_reply_in_time_opens_nothing_and_the_oldest_send_counts() -> None:
    a = tracker()
    a.observe(ev(1, "a2a.send", T0), T0)
    a.observe(ev(2, "a2a.send", T0 + 5 * MIN), T0 + 5 * MIN)  # a second ask, same thread
    assert opened(a.tick(T0 + REPLY)) == ["awaiting_reply:ws1:conv:c1"]
    assert a.open_items()[0].seq == 1
    b = tracker()
    b.observe(ev(1, "a2a.send", T0), T0)
    b.observe(ev(2, "a2a.complete", T0 + MIN), T0 + MIN)
    assert [c for c in b.tick(T0 + REPLY) if isinstance(c, ItemChange)] == []


def test_a_failed_outcome_stays_open_until_the_thread_moves_on() -> None:
    a = tracker()
    a.observe(ev(1, "a2a.send", T0), T0)
    changes = a.observe(ev(2, "a2a.response", T0 + 1, outcome="blocked"), T0 + 1)
    assert opened(changes) == ["failed:ws1:conv:c1"]
    assert a.open_items()[0].detail == "a2a.response outcome blocked"
    assert opened(a.observe(ev(3, "a2a.response", T0 + 2, conv="c2"), T0 + 2)) == []
    assert closed(a.observe(ev(4, "a2a.send", T0 + 3), T0 + 3)) == ["failed:ws1:conv:c1"]


def test_a_blocked_task_opens_and_its_next_event_closes_it() -> None:
    a = tracker()
    changes = a.observe(ev(1, "task.blocked", T0, taskId="t-9", reason="needs a key"), T0)
    assert opened(changes) == ["failed:task:t-9"]
    assert a.open_items()[0].detail == "task t-9 blocked: needs a key"
    assert opened(a.observe(ev(2, "task.updated", T0 + 1, taskId="t-9", status="failed"),
                            T0 + 1)) == ["failed:task:t-9"]
    assert closed(a.observe(ev(3, "task.resumed", T0 + 2, taskId="t-9"), T0 + 2)) == [
        "failed:task:t-9"]
    assert a.open_items() == []


def test_a_silent_session_opens_after_silence_and_closes_with_its_next_event() -> None:
    a = tracker()
    a.observe(ev(1, "a2a.response", T0), T0)  # not a send: no reply is awaited
    assert opened(a.tick(T0 + SILENT - 1)) == []
    assert opened(a.tick(T0 + SILENT)) == ["silent_session:ws1"]
    assert a.statistics() == {"awaiting_reply": 0, "failed": 0, "silent_session": 1}
    assert closed(a.observe(ev(2, "a2a.response", T0 + SILENT + 1), T0 + SILENT + 1)) == [
        "silent_session:ws1"]
    b = tracker()
    b.observe(ev(1, "a2a.complete", T0), T0)  # terminal: the session is QUIET, not silent
    assert opened(b.tick(T0 + 2 * SILENT)) == []


def test_status_changes_by_event_and_by_the_clock_at_the_boundary() -> None:
    a = tracker()
    a.observe(ev(1, "a2a.response", T0), T0)
    assert a.status_of("ws1") == "ACTIVE"
    changes = a.observe(ev(2, "a2a.complete", T0 + 1), T0 + 1)
    assert [c for c in changes if isinstance(c, StatusChange)] == [
        StatusChange("ws1", "ACTIVE", "QUIET", T0 + 1)]
    boundary = T0 + 1 + ARCHIVE_AFTER_MS
    assert [c for c in a.tick(boundary) if isinstance(c, StatusChange)] == []
    assert status_of(T0 + 1, True, boundary) == "QUIET"  # the store agrees: not yet
    changes = a.tick(boundary + 1)
    assert changes == [StatusChange("ws1", "QUIET", "ARCHIVED", boundary + 1)]
    assert status_of(T0 + 1, True, boundary + 1) == "ARCHIVED"
    changes = a.observe(ev(3, "a2a.send", boundary + 5), boundary + 5)
    assert StatusChange("ws1", "ARCHIVED", "ACTIVE", boundary + 5) in changes


def test_archiving_closes_the_sessions_items() -> None:
    a = tracker()
    a.observe(ev(1, "a2a.send", T0), T0)
    a.tick(T0 + SILENT)
    assert {i.kind for i in a.open_items()} == {"awaiting_reply", "silent_session"}
    changes = a.tick(T0 + ARCHIVE_AFTER_MS + 1)
    assert sorted(closed(changes)) == ["awaiting_reply:ws1:conv:c1", "silent_session:ws1"]
    assert a.open_items() == []


def test_the_deadline_heap_stays_small_on_a_busy_session() -> None:
    a = tracker()
    for n in range(10_000):
        a.observe(ev(n + 1, "a2a.send" if n % 2 else "a2a.response", T0 + n * 1000),
                  T0 + n * 1000)
    assert len(a._heap) <= 3  # one entry per (check, key), not one per event


KINDS = ["a2a.send", "a2a.response", "a2a.complete", "task.blocked", "task.resumed"]
step = st.tuples(st.sampled_from(KINDS), st.sampled_from(["ws1", "ws2"]),
                 st.sampled_from(["c1", "c2"]), st.integers(0, 40 * MIN),
                 st.sampled_from([None, "failed", "ok"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=40), st.integers(0, 2 * ARCHIVE_AFTER_MS))
def test_a_replayed_history_gives_what_live_following_gave(
        steps: list[tuple[str, str, str, int, str | None]], tail: int) -> None:
    live, events, ts = tracker(), [], T0
    for seq, (etype, ws, conv, gap, outcome) in enumerate(steps, start=1):
        live.tick(ts + gap // 2)
        ts += gap
        extra = {"taskId": "t1"} if etype.startswith("task.") else {}
        if outcome is not None:
            extra["outcome"] = outcome
        e = ev(seq, etype, ts, ws=ws, conv=conv, **extra)
        events.append(e)
        live.observe(e, ts)
    now = ts + tail
    live.tick(now)
    again = replay(events, now, reply_timeout_ms=REPLY, silent_after_ms=SILENT)
    assert {i.id for i in live.open_items()} == {i.id for i in again.open_items()}
    for ws in ("ws1", "ws2"):
        latest = max((e for e in events if e.ws_id == ws), key=lambda e: e.order, default=None)
        if latest is not None:
            want = status_of(latest.ts, latest.terminal, now)
            assert live.status_of(ws) == again.status_of(ws) == want
