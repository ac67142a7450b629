"""Work sessions: the upstream test cases, the verified example, the additional acceptance
cases that belong here, and incremental == from-scratch under random batches, filters and
evictions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordd.core import queries
from coordd.core.event import Event
from coordd.core.overrides import Overrides
from coordd.core.sessions import UNFILTERED, Filter, View, build_session, status_of
from coordd.core.store import Store
from coordd.core.summaries import BlobCache
from coordd.core.vocabulary import ROLES
from tests.wsref import NOW, enriched, ev, reference_sessions

DAY = 86_400_000


def sessions(store: Store, now: float = NOW, **params: str) -> list[dict[str, Any]]:
    """All sessions through the REST function (limit large enough for everything)."""
    pairs = [(k, v) for k, v in params.items()] + [("limit", "1000000")]
    status, body = queries.get_work_sessions(store, pairs, now)
    assert status == 200, body
    return orjson.loads(body)["sessions"]  # type: ignore[no-any-return]


def store_of(*events: Event, **kw: Any) -> Store:
    s = Store(**kw)
    s.extend(list(events))
    return s


# ---------------------------------------------------------------------------- upstream cases


def test_two_conversations_make_two_threads() -> None:
    t = NOW - 10_000
    s = store_of(
        ev(1, "a2a.send", t, fromAgent="ruda", toAgent="main", conversationId="conv-a"),
        ev(2, "a2a.send", t + 1, fromAgent="ruda", toAgent="main", conversationId="conv-b"),
    )
    (only,) = sessions(s)
    assert sorted(th["conversationId"] for th in only["threads"]) == ["conv-a", "conv-b"]


def test_complete_makes_quiet_then_archived() -> None:
    t = NOW - 100 * DAY
    s = store_of(ev(1, "a2a.send", t, conversationId="c"),
                 ev(2, "a2a.complete", t + 5_000, conversationId="c"))
    assert sessions(s, now=t + 60_000)[0]["status"] == "QUIET"
    assert sessions(s, now=t + DAY + 6_000)[0]["status"] == "ARCHIVED"


def test_response_keeps_active() -> None:
    t = NOW - 100 * DAY
    s = store_of(ev(1, "a2a.send", t, conversationId="c"),
                 ev(2, "a2a.response", t + 5_000, conversationId="c"))
    assert sessions(s, now=t + 30_000)[0]["status"] == "ACTIVE"


def test_manual_override_wins(tmp_path: Any) -> None:
    ov = Overrides(tmp_path / "ov.json")
    ov.set("ws_1", "qa_validation", updated_by="ops-admin", now_ms=NOW)
    s = store_of(ev(1, "a2a.send", NOW - 1000, category="infra_ops"), overrides=ov)
    (only,) = sessions(s)
    assert only["collabCategory"] == "qa_validation"
    assert only["categorySource"] == "manual_override"


def test_role_filter_applies_before_aggregation() -> None:
    s = store_of(
        ev(1, "a2a.send", NOW - 2000, role="conversation.main", conversationId="conv-main"),
        ev(2, "a2a.spawn", NOW - 1000, role="delegation.subagent", conversationId="conv-sub"),
    )
    (only,) = sessions(s, role="conversation.main")
    assert only["eventCount"] == 1
    assert [th["conversationId"] for th in only["threads"]] == ["conv-main"]
    assert only["roleCounts"]["conversation.main"] == 1
    assert only["roleCounts"]["delegation.subagent"] == 0


def test_role_and_type_filters_keep_only_the_response() -> None:
    s = store_of(
        ev(1, "a2a.send", NOW - 3000, role="conversation.main", conversationId="c"),
        ev(2, "a2a.response", NOW - 2000, role="conversation.main", conversationId="c"),
        ev(3, "a2a.complete", NOW - 1000, role="conversation.main", conversationId="c"),
    )
    (only,) = sessions(s, role="conversation.main", type="a2a.response")
    assert only["eventCount"] == 1
    (thread,) = only["threads"]
    assert [e["type"] for e in thread["events"]] == ["a2a.response"]
    # C9: the status comes from the filtered events, so the complete does not count.
    assert only["status"] == "ACTIVE"


def test_empty_and_unknown_type_filters() -> None:
    s = store_of(ev(1, "a2a.send", NOW - 2000, conversationId="c"),
                 ev(2, "a2a.response", NOW - 1000, conversationId="c"))
    (only,) = sessions(s, type=",a2a.response,unknown.event")
    assert only["eventCount"] == 1


# ---------------------------------------------------------------------------- verified example


def verified_example() -> list[Event]:
    return [
        ev(1, "task.started", NOW - 60_000, agent="ruda", role="orchestration.task",
           category="planning_decision", taskId="t"),
        ev(2, "a2a.send", NOW - 50_000, agent="ruda", role="delegation.subagent",
           category="infra_ops", tags=["deploy"], fromAgent="ruda", toAgent="eden",
           message="deploy plz"),
        ev(3, "a2a.response", NOW - 40_000, agent="eden", role="delegation.subagent",
           fromAgent="eden", toAgent="ruda", conversationId="c1"),
        ev(4, "weird", NOW - 30_000, role="system.observability", category="infra_ops"),
        ev(5, "task.completed", NOW - 20_000, agent="ruda", role="orchestration.task",
           category="planning_decision", taskId="t"),
    ]


def test_verified_example() -> None:
    (ws,) = sessions(store_of(*verified_example()))
    # Upstream says ACTIVE; coordd treats task.completed as terminal.
    assert ws["status"] == "QUIET"
    assert ws["eventCount"] == 5 and ws["threadCount"] == 4
    assert ws["collabCategory"] == "planning_decision"
    assert ws["collabSubTags"] == ["deploy"]
    assert ws["roleCounts"] == {"conversation.main": 0, "delegation.subagent": 2,
                                "orchestration.task": 2, "system.observability": 1}
    assert [(th["id"], [e["type"] for e in th["events"]]) for th in ws["threads"]] == [
        ("pair:ruda_unknown", ["task.started", "task.completed"]),
        ("event:weird:5904431", ["weird"]),
        ("conv:c1", ["a2a.response"]),
        ("pair:eden_ruda", ["a2a.send"]),
    ]
    pair = ws["threads"][3]
    assert (pair["fromAgent"], pair["toAgent"]) == ("ruda", "eden")
    assert "conversationId" not in pair
    assert list(ws) == ["id", "workSessionId", "status", "startTime", "lastTime", "durationMs",
                        "threadCount", "eventCount", "collabCategory", "collabSubTags",
                        "categorySource", "roleCounts", "threads"]
    assert list(ws["threads"][2]) == ["id", "conversationId", "fromAgent", "toAgent",
                                      "startTime", "lastTime", "eventCount", "collabCategory",
                                      "collabSubTags", "events"]
    assert ws == reference_sessions(verified_example())[0]


# ---------------------------------------------------------------------------- more cases and rules


def test_failed_task_is_terminal() -> None:
    s = store_of(ev(1, "task.started", NOW - 2000, agent="ruda"),
                 ev(2, "task.updated", NOW - 1000, agent="ruda", status="failed"))
    assert sessions(s)[0]["status"] == "QUIET"


def test_status_is_projected_at_read_time() -> None:
    s = store_of(ev(1, "a2a.send", NOW - 1000, conversationId="c"))
    assert sessions(s)[0]["status"] == "ACTIVE"
    assert sessions(s, status="ACTIVE")[0]["workSessionId"] == "ws_1"
    # No new event, a day later: the same (cached) aggregate now reads ARCHIVED (C3).
    later = NOW + DAY
    assert sessions(s, now=later)[0]["status"] == "ARCHIVED"
    assert sessions(s, now=later, status="ACTIVE") == []
    assert [x["workSessionId"] for x in sessions(s, now=later, status="ARCHIVED")] == ["ws_1"]
    # The boundary is strict: exactly 24 h is not archived yet.
    assert status_of(NOW, False, NOW + DAY) == "ACTIVE"
    assert status_of(NOW, True, NOW + DAY + 1) == "ARCHIVED"


def test_later_event_revives_a_quiet_session() -> None:
    s = store_of(ev(1, "a2a.complete", NOW - 2000, conversationId="c"))
    assert sessions(s)[0]["status"] == "QUIET"
    s.extend([ev(2, "a2a.send", NOW - 1000, conversationId="c")])
    assert sessions(s)[0]["status"] == "ACTIVE"


def test_thread_key_fallbacks() -> None:
    s = store_of(
        ev(1, "task.started", NOW - 3000, agent="ruda"),
        ev(2, "a2a.send", NOW - 2000, fromAgent="Zed", toAgent="alpha"),
        ev(3, "mystery", 600_000 * 7 + 5, ws="ws_2"),
    )
    by_ws = {x["workSessionId"]: x for x in sessions(s)}
    assert {th["id"] for th in by_ws["ws_1"]["threads"]} == {"pair:ruda_unknown",
                                                             "pair:Zed_alpha"}
    assert by_ws["ws_2"]["threads"][0]["id"] == "event:mystery:14"


def test_first_event_fixes_thread_agents_and_latest_ties_go_to_later() -> None:
    s = store_of(
        ev(1, "a2a.send", NOW - 1000, fromAgent="a", toAgent="b", conversationId="c"),
        ev(2, "a2a.response", NOW - 1000, fromAgent="b", toAgent="a", conversationId="c"),
        ev(3, "a2a.complete", NOW - 1000, fromAgent="a", toAgent="b", conversationId="c"),
        ev(4, "a2a.send", NOW - 1000, fromAgent="a", toAgent="b", conversationId="c"),
    )
    (ws,) = sessions(s)
    assert (ws["threads"][0]["fromAgent"], ws["threads"][0]["toAgent"]) == ("a", "b")
    assert ws["status"] == "ACTIVE"  # latest = seq 4 (same ts), not the complete


def test_out_of_order_arrival_re_sorts_the_walk() -> None:
    s = store_of(ev(1, "a2a.send", NOW - 1000, category="infra_ops", conversationId="c"))
    s.extend([ev(2, "a2a.send", NOW - 5000, category="qa_validation", tags=["x"],
                 fromAgent="late", conversationId="c")])
    (ws,) = sessions(s)
    assert ws["collabCategory"] == "qa_validation"  # earliest non-default category
    assert ws["collabSubTags"] == ["x"]
    assert ws["threads"][0]["fromAgent"] == "late"
    assert [e["ts"] for e in ws["threads"][0]["events"]] == [NOW - 5000, NOW - 1000]
    assert ws["startTime"] == NOW - 5000


def test_ordering_ties_keep_first_seen_order() -> None:
    s = store_of(
        ev(1, "a2a.send", NOW - 500, ws="b", conversationId="x"),
        ev(2, "a2a.send", NOW - 900, ws="a", conversationId="x"),
        ev(3, "a2a.send", NOW - 100, ws="a", conversationId="y"),
        ev(4, "a2a.send", NOW - 100, ws="b", conversationId="y"),
        ev(5, "a2a.send", NOW - 100, ws="a", conversationId="z"),
    )
    got = sessions(s)
    # Both end at NOW-100; `a` was first seen earlier in the ascending walk.
    assert [x["workSessionId"] for x in got] == ["a", "b"]
    assert [th["id"] for th in got[0]["threads"]] == ["conv:y", "conv:z", "conv:x"]
    assert got == reference_sessions(s.iter_events())


def test_events_without_work_session_are_not_in_sessions() -> None:
    s = store_of(ev(1, "a2a.send", NOW, ws=None), ev(2, "a2a.send", NOW, ws="  "))
    assert sessions(s) == []


def test_build_session_and_view_agree() -> None:
    evs = verified_example()
    view = View(UNFILTERED, BlobCache())
    view.apply(evs, ())
    one = build_session("ws_1", evs)
    assert one is not None
    assert (one.count, one.category, one.sort_key) == (
        view.sessions["ws_1"].count, view.sessions["ws_1"].category,
        view.sessions["ws_1"].sort_key)
    assert build_session("nope", evs) is None


def test_eviction_updates_the_session() -> None:
    s = Store(max_events=3)
    s.extend([ev(1, "task.started", NOW - 4000, category="infra_ops", tags=["t1"]),
              ev(2, "a2a.send", NOW - 3000, conversationId="c"),
              ev(3, "a2a.send", NOW - 2000, conversationId="c", category="qa_validation")])
    s.extend([ev(4, "a2a.complete", NOW - 1000, conversationId="c")])
    (ws,) = sessions(s)
    assert ws["eventCount"] == 3
    assert ws["collabCategory"] == "qa_validation" and ws["collabSubTags"] == []
    assert ws == reference_sessions(s.iter_events())[0]
    s.extend([ev(5, "x", NOW, ws="other"), ev(6, "x", NOW, ws="other"),
              ev(7, "x", NOW, ws="other")])
    assert [x["workSessionId"] for x in sessions(s)] == ["other"]


# ---------------------------------------------------------------------------- property

TYPES = ["a2a.send", "a2a.response", "a2a.complete", "task.started", "task.updated",
         "task.completed", "a2a.spawn_result", "weird"]
FILTERS = [
    {},
    {"role": "conversation.main"},
    {"role": "conversation.main", "type": "a2a.response"},
    {"type": "a2a.send,a2a.response,a2a.complete"},
    {"role": "delegation.subagent,orchestration.task"},
    {"type": "task.updated"},
]


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    etype = draw(st.sampled_from(TYPES))
    kw: dict[str, Any] = {
        "role": draw(st.sampled_from([*ROLES, None])),
        "category": draw(st.sampled_from(["engineering_build", "engineering_build", "infra_ops",
                                          "qa_validation", "biz_strategy"])),
        "tags": draw(st.sampled_from([[], [], ["a"], ["b", "c"]])),
        "fromAgent": draw(st.sampled_from([None, "ruda", "eden", "Main"])),
        "toAgent": draw(st.sampled_from([None, "ruda", "eden"])),
        "conversationId": draw(st.sampled_from([None, None, "c1", "c2", " c1 "])),
        "status": draw(st.sampled_from([None, None, "failed", "error", "done"])),
        "agent": draw(st.sampled_from([None, "ruda", "zed"])),
    }
    # Mostly in log order (the fast paths), sometimes late, sometimes tied.
    skew = draw(st.sampled_from([0, 0, 0, 0, -1, 1, 250_000, 4 * 250_000, DAY]))
    ws = draw(st.sampled_from(["w1", "w2", "w3", "w4", " w1 ", None]))
    return enriched(etype, skew, ws, **kw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(raw_events(), min_size=0, max_size=12), min_size=1, max_size=8),
    max_events=st.integers(3, 40),
    log_budget=st.sampled_from([0, 5, 20_000]),
    picks=st.lists(st.integers(0, len(FILTERS) - 1), min_size=8, max_size=8),
    now_shift=st.sampled_from([0, DAY, 2 * DAY]),
)
def test_incremental_equals_from_scratch(
    batches: list[list[dict[str, Any]]], max_events: int, log_budget: int, picks: list[int],
    now_shift: int,
) -> None:
    store = Store(max_events=max_events, delta_log_events=log_budget)
    seq = 0
    now = NOW + now_shift
    for i, batch in enumerate(batches):
        evs = []
        for raw in batch:
            seq += 1
            skew = raw["ts"]
            # skew -1: same time as the previous event; otherwise `skew` ms earlier
            raw["ts"] = NOW - 2 * DAY + (seq - (skew == -1)) * 200_000 - max(skew, 0)
            evs.append(Event(seq, raw))
        store.extend(evs)
        flt = FILTERS[picks[i]]
        held = list(store.iter_events())
        assert len(held) == min(max_events, seq)
        want = reference_sessions(held, now_ms=now, roles=_csv(flt.get("role")),
                                  types=_csv(flt.get("type")))
        assert sessions(store, now=now, **flt) == want
        if want:
            # the detail route, cached view or one-off build alike
            target = want[-1]["workSessionId"]
            role = flt.get("role", "")
            if "," not in role:
                params = [(k, v) for k, v in flt.items()]
                code, body = queries.get_work_session(store, target, params, now)
                assert code == 200
                assert orjson.loads(body)["session"] == want[-1]


def _csv(value: str | None) -> list[str] | None:
    return value.split(",") if value else None


def test_filtered_view_is_reused_not_rebuilt() -> None:
    store = Store()
    store.extend([ev(1, "a2a.response", NOW - 5000, role="conversation.main",
                     conversationId="c")])
    flt = Filter(frozenset({"conversation.main"}), frozenset({"a2a.response"}))
    view = store.view(flt)
    rebuilds = store.rebuilds
    for i in range(2, 50):
        store.extend([ev(i, "a2a.response", NOW - 5000 + i, role="conversation.main",
                         conversationId="c")])
        assert store.view(flt) is view
    assert store.rebuilds == rebuilds
    assert view.sessions["ws_1"].count == 49


@pytest.mark.parametrize("budget", [0, 1_000])
def test_view_far_behind_rebuilds(budget: int) -> None:
    store = Store(delta_log_events=budget)
    flt = Filter(None, frozenset({"a2a.send"}))
    store.extend([ev(1, "a2a.send", NOW - 10, conversationId="c")])
    store.view(flt)
    before = store.rebuilds
    for i in range(2, 30):
        store.extend([ev(i, "a2a.send", NOW - 10 + i, conversationId="c")])
    assert store.view(flt).sessions["ws_1"].count == 29
    assert (store.rebuilds > before) == (budget == 0)
