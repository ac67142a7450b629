"""The REST semantics (the old monitor's, with its defects fixed): every parameter quirk, cursor
pagination while events arrive, the search and stats routes, and an in-process replay of
the old monitor's recorded answers on both parity corpora."""

from __future__ import annotations

import json
import sys
import tarfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordd.core import queries
from coordd.core.event import Event, parse_line
from coordd.core.overrides import Overrides
from coordd.core.store import Store
from coordd.core.vocabulary import CATEGORIES
from tests.wsref import NOW, enriched, ev

DAY = 86_400_000
PARITY = Path(__file__).resolve().parents[1] / "parity"
P = list[tuple[str, str]]


def call(fn: Any, store: Store, *args: Any, now: float = NOW) -> tuple[int, Any]:
    code, body = fn(store, *args, now)
    return code, orjson.loads(body)


def events(store: Store, params: P, now: float = NOW) -> dict[str, Any]:
    code, body = call(queries.get_events, store, params, now=now)
    assert code == 200, body
    return body  # type: ignore[no-any-return]


def work(store: Store, params: P, now: float = NOW) -> dict[str, Any]:
    code, body = call(queries.get_work_sessions, store, params, now=now)
    assert code == 200, body
    return body  # type: ignore[no-any-return]


def bad(fn: Any, store: Store, *args: Any) -> str:
    code, body = call(fn, store, *args)
    assert code == 400, body
    assert set(body) == {"error"}
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(overrides=Overrides(tmp_path / "ov.json"), epoch="ep1")
    evs = []
    for i in range(1, 251):
        role = ("conversation.main", "delegation.subagent", "orchestration.task")[i % 3]
        etype = ("a2a.send", "a2a.response", "task.updated", "a2a.spawn")[i % 4]
        cat = ("engineering_build", "infra_ops", "qa_validation")[i % 3 if i % 5 else 0]
        evs.append(ev(i, etype, NOW - (300 - i) * 60_000, ws=f"ws_{i % 25}", role=role,
                      category=cat, tags=["Implement"] if i % 7 == 0 else [],
                      fromAgent="ruda", toAgent="eden", conversationId=f"c{i % 10}"))
    s.extend(evs)
    return s


# ---------------------------------------------------------------------------- /api/events


def test_events_defaults(store: Store) -> None:
    body = events(store, [])
    assert [e["ts"] for e in body["events"]] == [NOW - (300 - i) * 60_000 for i in range(151, 251)]
    assert (body["count"], body["total"], body["totalMatched"]) == (100, 250, 250)
    assert (body["role"], body["type"], body["viewCategory"]) == (None, [], None)
    assert sum(body["categoryCounts"].values()) == 250
    assert (body["epoch"], body["seq"]) == ("ep1", 250)


@pytest.mark.parametrize(("raw", "count"), [
    ("0", 100), ("", 100), (" 7 ", 7), ("1", 1), ("250", 250), ("99999999999999999999", 250),
    ("9" * 5000, 250),
])
def test_events_limit(store: Store, raw: str, count: int) -> None:
    assert events(store, [("limit", raw)])["count"] == count


@pytest.mark.parametrize("raw", ["-3", "2.5", "abc", "0x10", "1e2", "+5", "٣"])
def test_events_limit_must_be_a_plain_integer(store: Store, raw: str) -> None:
    assert "limit" in bad(queries.get_events, store, [("limit", raw)])


def test_events_since_and_until(store: Store) -> None:
    t = NOW - 100 * 60_000  # event 200
    iso = "2026-02-17T10:20:00"  # == t in UTC
    assert t == 1771323600000
    for since in (iso + ".000Z", iso, iso + "+00:00", "2026-02-17T19:20:00+09:00", str(t),
                  f" {iso}Z "):
        body = events(store, [("since", since), ("limit", "1000")])
        assert body["totalMatched"] == 51, since
        assert body["events"][0]["ts"] == t
    assert events(store, [("since", "2026-02-17")])["totalMatched"] == 250  # UTC midnight
    body = events(store, [("since", iso), ("until", str(t + 60_000)), ("limit", "5")])
    assert [e["ts"] for e in body["events"]] == [t]  # until is exclusive
    assert events(store, [("since", "")])["totalMatched"] == 250
    assert events(store, [("since", "9" * 5000)])["totalMatched"] == 0
    assert events(store, [("until", "9" * 5000)])["totalMatched"] == 250
    assert events(store, [("since", "-" + "9" * 5000)])["totalMatched"] == 250
    for garbage in ("not-a-date", "2026-13-01", "1.5e12", "Feb 17 2026"):
        assert "since" in bad(queries.get_events, store, [("since", garbage)])
    assert "until" in bad(queries.get_events, store, [("until", "soon")])


def test_events_role(store: Store) -> None:
    body = events(store, [("role", " orchestration.task "), ("limit", "1000")])
    assert body["role"] == "orchestration.task" and body["roles"] == ["orchestration.task"]
    assert body["totalMatched"] == 83
    assert {e["eventRole"] for e in body["events"]} == {"orchestration.task"}
    union = events(store, [("role", "conversation.main"), ("role", "orchestration.task"),
                           ("limit", "1000")])
    assert union["role"] == "conversation.main"
    assert union["totalMatched"] == 83 + 83
    csv = events(store, [("role", "conversation.main,orchestration.task"), ("limit", "1000")])
    assert csv["events"] == union["events"]
    for role in ("bogus", "conversation.MAIN", "conversation.main,bogus"):
        assert "role" in bad(queries.get_events, store, [("role", role)])
    assert events(store, [("role", "")])["role"] is None


def test_events_type_and_category(store: Store) -> None:
    body = events(store, [("type", " , a2a.spawn ,, "), ("limit", "1000")])
    assert body["type"] == ["a2a.spawn"] and body["totalMatched"] == 62
    assert events(store, [("type", ",")])["totalMatched"] == 250
    assert events(store, [("type", "no.such.type")])["events"] == []
    both = events(store, [("type", "a2a.send"), ("type", "a2a.spawn,a2a.send")])
    assert both["type"] == ["a2a.send", "a2a.spawn", "a2a.send"]
    assert both["totalMatched"] == 62 + 62
    cat = events(store, [("viewCategory", " infra_ops "), ("limit", "3")])
    assert cat["viewCategory"] == "infra_ops"
    assert cat["categoryCounts"] == {"infra_ops": cat["totalMatched"]}
    assert cat["count"] == 3
    assert events(store, [("viewCategory", "all")])["totalMatched"] == 250
    assert "viewCategory" in bad(queries.get_events, store, [("viewCategory", "bogus")])
    # unknown parameters are ignored
    assert events(store, [("after", "patch"), ("x", "")])["count"] == 100


def test_events_cursor_is_stable_while_events_arrive(store: Store) -> None:
    params: P = [("role", "conversation.main"), ("limit", "30")]
    first = events(store, params)
    seen = [e["ts"] for e in first["events"]]
    cursor = first["nextCursor"]
    seq = 250
    while cursor:
        for _ in range(7):  # new events keep arriving between pages
            seq += 1
            store.extend([ev(seq, "a2a.send", NOW, role="conversation.main")])
        page = events(store, [*params, ("cursor", cursor)])
        seen = [e["ts"] for e in page["events"]] + seen
        cursor = page["nextCursor"]
    original = [NOW - (300 - i) * 60_000 for i in range(1, 251) if i % 3 == 0]
    assert seen == original
    assert "cursor" in bad(queries.get_events, store, [("cursor", "garbage!")])
    other = Store(epoch="ep2")
    other.extend([ev(1, "x", NOW), ev(2, "x", NOW)])
    foreign = events(other, [("limit", "1")])["nextCursor"]
    assert "epoch" in bad(queries.get_events, store, [("cursor", foreign)])
    assert "cursor" in bad(queries.get_events, store, [("cursor", work(store, [("limit", "1")])
                                                        ["nextCursor"])])


# ---------------------------------------------------------------------------- /api/work-sessions


def test_work_sessions_echo_and_counts(store: Store) -> None:
    body = work(store, [("limit", "3")])
    assert (body["count"], body["totalMatched"], body["totalSessions"]) == (3, 25, 25)
    assert (body["role"], body["type"], body["status"]) == ([], [], [])
    assert (body["viewCategory"], body["subTag"]) == (None, None)
    assert sum(body["categoryCounts"].values()) == 25
    assert [s["workSessionId"] for s in body["sessions"]] == ["ws_0", "ws_24", "ws_23"]
    assert work(store, [("limit", "0")])["count"] == 25
    for raw in ("-3", "2.5", "abc", "1e1"):
        assert "limit" in bad(queries.get_work_sessions, store, [("limit", raw)])


def test_work_sessions_status(store: Store) -> None:
    later = NOW + 1000
    body = work(store, [("status", " QUIET , ACTIVE "), ("status", "ACTIVE")], later)
    assert body["status"] == ["QUIET", "ACTIVE", "ACTIVE"]
    assert body["totalMatched"] == 25
    # a day later nothing changed in the log, yet what is older than 24 h is archived
    t = NOW + DAY - 60 * 60_000
    arch = work(store, [("status", "ARCHIVED"), ("limit", "1000")], t)
    act = work(store, [("status", "ACTIVE"), ("limit", "1000")], t)
    assert arch["totalMatched"] + act["totalMatched"] == 25
    assert arch["totalMatched"] == len(arch["sessions"]) > 0
    assert all(s["status"] == "ARCHIVED" for s in arch["sessions"])
    assert all(s["status"] == "ACTIVE" for s in act["sessions"])
    assert min(s["lastTime"] for s in act["sessions"]) > max(
        s["lastTime"] for s in arch["sessions"])
    for status in ("active", "FOO,ARCHIVED", "Quiet"):
        assert "status" in bad(queries.get_work_sessions, store, [("status", status)])


def test_work_sessions_role_type_category_subtag(store: Store) -> None:
    body = work(store, [("role", "conversation.main,orchestration.task"), ("type", "a2a.send")])
    assert body["role"] == ["conversation.main", "orchestration.task"]
    assert body["type"] == ["a2a.send"]
    assert all(set(t["events"][0]["type"] for t in s["threads"]) == {"a2a.send"}
               for s in body["sessions"])
    for role in ("bogus", "bogus,orchestration.task"):
        assert "role" in bad(queries.get_work_sessions, store, [("role", role)])
    assert "viewCategory" in bad(queries.get_work_sessions, store, [("viewCategory", "x")])
    assert work(store, [("type", " , ")])["totalSessions"] == 25
    assert work(store, [("type", "no.such")])["totalSessions"] == 0
    tagged = work(store, [("subTag", " IMPLEMENT "), ("limit", "2")])
    assert tagged["subTag"] == "IMPLEMENT"
    assert tagged["count"] == 2 and tagged["totalMatched"] > 2
    assert all(s["collabSubTags"] == ["Implement"] for s in tagged["sessions"])
    assert sum(tagged["categoryCounts"].values()) == tagged["totalMatched"]
    rest = work(store, [("subTag", "implement"), ("limit", "100"),
                        ("cursor", tagged["nextCursor"])])
    assert rest["totalMatched"] == tagged["totalMatched"]  # counts ignore the cursor
    assert rest["count"] == tagged["totalMatched"] - 2 and rest["nextCursor"] is None
    assert not {s["workSessionId"] for s in rest["sessions"]} & {
        s["workSessionId"] for s in tagged["sessions"]}
    assert work(store, [("subTag", "nope")])["totalMatched"] == 0
    qa = work(store, [("viewCategory", "qa_validation")])
    assert qa["categoryCounts"] == {"qa_validation": qa["totalMatched"]}
    assert all(s["collabCategory"] == "qa_validation" for s in qa["sessions"])


def test_override_applies_at_once_everywhere(store: Store) -> None:
    before = work(store, [("viewCategory", "biz_strategy")])
    assert before["totalMatched"] == 0
    code, body = call(queries.patch_category, store, "ws_3",
                      b'{"collabCategory": " biz_strategy ", "updatedBy": " me "}')
    assert code == 200
    assert body["ok"] is True and body["workSessionId"] == "ws_3"
    assert body["override"]["collabCategory"] == "biz_strategy"
    assert body["override"]["updatedBy"] == "me"
    after = work(store, [("viewCategory", "biz_strategy")])
    assert [s["workSessionId"] for s in after["sessions"]] == ["ws_3"]
    assert after["sessions"][0]["categorySource"] == "manual_override"
    assert after["categoryCounts"] == {"biz_strategy": 1}
    assert sum(work(store, [])["categoryCounts"].values()) == 25
    code, detail = call(queries.get_work_session, store, "ws_3", [])
    assert detail["session"]["collabCategory"] == "biz_strategy"
    stored = json.loads(store.overrides.path.read_text())  # type: ignore[union-attr]
    assert stored["ws_3"]["updatedBy"] == "me"


def test_sessions_cursor_walks_everything_once(store: Store) -> None:
    seen: list[str] = []
    cursor = None
    seq = 250
    while True:
        params: P = [("limit", "4")] + ([("cursor", cursor)] if cursor else [])
        page = work(store, params, NOW + 1)
        seen += [s["workSessionId"] for s in page["sessions"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
        seq += 1  # a brand-new session appears at the front meanwhile
        store.extend([ev(seq, "a2a.send", NOW + seq, ws=f"new_{seq}")])
    assert sorted(seen) == sorted(f"ws_{i}" for i in range(25))
    assert "cursor" in bad(queries.get_work_sessions, store, [("cursor", "WyJzIl0")])


# ---------------------------------------------------------------------------- detail, PATCH


def test_detail(store: Store) -> None:
    store.extend([ev(251, "a2a.send", NOW, ws="ws/slash"), ev(252, "a2a.send", NOW, ws="테스트")])
    code, body = call(queries.get_work_session, store, "ws%2Fslash", [])
    assert code == 200 and body["session"]["workSessionId"] == "ws/slash"
    assert (body["role"], body["type"]) == (None, [])
    code, body = call(queries.get_work_session, store, "%ED%85%8C%EC%8A%A4%ED%8A%B8", [])
    assert code == 200 and body["session"]["id"] == "ws:테스트"
    code, body = call(queries.get_work_session, store, "%20ws_1%20", [])
    assert (code, body) == (404, {"error": "Work session not found:  ws_1 "})
    code, body = call(queries.get_work_session, store, "ws_1", [("role", "orchestration.task")])
    assert code == 200 and body["role"] == "orchestration.task"
    assert set(body["session"]["roleCounts"].values()) == {0, body["session"]["eventCount"]}
    code, body = call(queries.get_work_session, store, "ws_1", [("type", "no.such.type")])
    assert code == 404
    for role in ("bogus", "conversation.main,delegation.subagent"):
        assert "role" in bad(queries.get_work_session, store, "ws_1", [("role", role)])
    for seg in ("%E0%A4%A", "%zz", "%", "%C3%28"):
        assert "percent" in bad(queries.get_work_session, store, seg, [])


def test_patch_errors(store: Store) -> None:
    assert bad(queries.patch_category, store, "ws_1", b"{not json") == "Invalid JSON body"
    assert bad(queries.patch_category, store, "ws_1", b"") == "Invalid JSON body"
    for body in (b"null", b"[1]", b'"x"'):
        assert "object" in bad(queries.patch_category, store, "ws_1", body)
    for body, got in ((b'{"collabCategory":"bogus"}', "got 'bogus'"), (b"{}", "missing"),
                      (b'{"collabCategory":3}', "got 3")):
        msg = bad(queries.patch_category, store, "ws_1", body)
        assert msg == ("collabCategory is required and must be one of "
                       f"{', '.join(CATEGORIES)} ({got})")
    assert "percent" in bad(queries.patch_category, store, "%E0%A4%A", b"{}")
    code, body = call(queries.patch_category, store, "no_such_session",
                      b'{"collabCategory":"infra_ops"}')
    assert code == 404
    assert body["error"].startswith("Work session not found: no_such_session")
    assert "?create=1" in body["error"]
    code, body = patch(store, "ws_1", b"{}", [("create", "y")])
    assert code == 400 and "create" in body["error"]


def patch(store: Store, segment: str, body: bytes, params: P) -> tuple[int, Any]:
    code, answer = queries.patch_category(store, segment, body, NOW, params)
    return code, orjson.loads(answer)


def test_patch_of_a_session_still_to_come_needs_create(store: Store) -> None:
    good = b'{"collabCategory":"infra_ops"}'
    code, body = patch(store, "ws_later", good, [("create", "1")])
    assert code == 200 and body["workSessionId"] == "ws_later"
    store.extend([ev(251, "a2a.send", NOW, ws="ws_later")])
    code, body = call(queries.get_work_session, store, "ws_later", [])
    assert body["session"]["collabCategory"] == "infra_ops"


def test_the_list_id_names_the_session_on_the_detail_and_patch_routes(store: Store) -> None:
    store.extend([ev(251, "a2a.send", NOW, ws="ws:literal")])
    listed = work(store, [("limit", "1000")])["sessions"]
    ws_1 = next(s for s in listed if s["workSessionId"] == "ws_1")
    assert ws_1["id"] == "ws:ws_1"
    code, body = call(queries.get_work_session, store, urllib.parse.quote(ws_1["id"]), [])
    assert code == 200 and body["session"]["workSessionId"] == "ws_1"
    code, body = call(queries.patch_category, store, "ws%3Aws_1",
                      b'{"collabCategory":"infra_ops"}')
    assert code == 200 and body["workSessionId"] == "ws_1"
    code, body = call(queries.get_work_session, store, "ws_1", [])
    assert body["session"]["collabCategory"] == "infra_ops"
    # An id that itself starts with `ws:` is found as it is, and by its list id.
    for seg in ("ws:literal", "ws:ws:literal"):
        code, body = call(queries.get_work_session, store, seg, [])
        assert code == 200 and body["session"]["workSessionId"] == "ws:literal", seg
    code, body = call(queries.get_work_session, store, "ws:nope", [])
    assert (code, body) == (404, {"error": "Work session not found: ws:nope"})


# ---------------------------------------------------------------------------- search, stats


def test_search_events() -> None:
    s = Store()
    s.extend([
        Event(1, enriched("a2a.send", NOW - 3, message="Deploy the fix", fromAgent="ruda")),
        Event(2, enriched("a2a.response", NOW - 1, replyPreview="deployed ✅",
                          role="conversation.main")),
        Event(3, enriched("a2a.send", NOW - 2, message="a.b ÉCOLE", toAgent="Deployer")),
        Event(4, enriched("task.updated", NOW, note="deploy")),  # not a searched field
        Event(5, enriched("deploy.done", NOW - 9)),
    ])
    code, body = call(queries.search_events, s, [("q", "DEPLOY")])
    assert code == 200
    assert [e["ts"] for e in body["events"]] == [NOW - 1, NOW - 2, NOW - 3, NOW - 9]
    assert (body["count"], body["total"], body["offset"], body["limit"], body["query"]) == (
        4, 4, 0, 50, "DEPLOY")
    page = call(queries.search_events, s, [("q", "deploy"), ("offset", "1"), ("limit", "2")])[1]
    assert [e["ts"] for e in page["events"]] == [NOW - 2, NOW - 3] and page["total"] == 4
    only = call(queries.search_events, s, [("q", "deploy"), ("role", "conversation.main")])[1]
    assert only["total"] == 1
    assert call(queries.search_events, s, [("q", "a.b")])[1]["total"] == 1
    assert call(queries.search_events, s, [("q", "a*b")])[1]["total"] == 0
    assert call(queries.search_events, s, [("q", "école")])[1]["total"] == 1
    assert call(queries.search_events, s, [("q", "message")])[1]["total"] == 0
    empty = call(queries.search_events, s, [])
    assert empty[0] == 200 and empty[1]["events"] == [] and "error" in empty[1]
    assert "role" in bad(queries.search_events, s, [("q", "x"), ("role", "nope")])


def test_search_job_works_on_a_snapshot(store: Store) -> None:
    job = queries.search_events_job(store, [("q", "EDEN"), ("limit", "1")], NOW)
    store.extend([ev(251, "a2a.send", NOW, toAgent="eden")])  # after the job was taken
    code, body = job()
    assert code == 200
    assert body.startswith(b'{"events":[')
    got = orjson.loads(body)
    assert got["total"] == 250 and got["count"] == 1
    assert call(queries.search_events, store, [("q", "eden")])[1]["total"] == 251
    bad_job = queries.search_events_job(store, [("q", "x"), ("limit", "x")], NOW)
    assert bad_job()[0] == 400


def test_search_work_sessions(store: Store) -> None:
    code, body = call(queries.search_work_sessions, store, [("q", "EDEN"), ("limit", "3")])
    assert code == 200 and body["count"] == 3 and body["total"] == 25 and body["query"] == "EDEN"
    assert body["sessions"][0]["workSessionId"] == "ws_0"
    one = call(queries.search_work_sessions, store, [("q", "ws_13")])[1]
    assert [x["workSessionId"] for x in one["sessions"]] == ["ws_13"]
    store.overrides.set("ws_4", "legal_compliance", updated_by=None, now_ms=NOW)
    legal = call(queries.search_work_sessions, store, [("q", "legal")])[1]
    assert [x["workSessionId"] for x in legal["sessions"]] == ["ws_4"]
    assert call(queries.search_work_sessions, store, [])[1]["sessions"] == []


def test_stats() -> None:
    s = Store()
    c = {"conversationId": "c1"}
    s.extend([
        Event(1, enriched("a2a.send", 1000, fromAgent="a", toAgent="b", **c)),
        Event(2, enriched("a2a.response", 1250, fromAgent="b", toAgent="a", **c)),
        Event(3, enriched("a2a.response", 1300, fromAgent="b", toAgent="a", **c)),  # ping-pong
        Event(4, enriched("a2a.send", 2000, fromAgent="a", toAgent="b", **c)),
        Event(5, enriched("a2a.response", 9000, outcome="no_reply", **c)),
        Event(6, enriched("a2a.send", 3000, ws="w2", conversationId="c2")),
        Event(7, enriched("a2a.response", 3100, ws="w2", conversationId="c2")),
        Event(8, enriched("a2a.complete", 9500, outcome="failed", ws=None)),
        Event(9, enriched("a2a.response", 9600, outcome="blocked", ws=None)),
    ])
    code, body = call(queries.get_stats, s, [])
    assert code == 200
    assert body["events"] == 9
    assert body["outcomes"] == {"no_reply": 1, "blocked": 1, "failed": 1}
    rt = body["responseTimeMs"]
    assert (rt["count"], rt["p50"], rt["max"]) == (2, 100, 250)
    assert body["byType"] == {"a2a.response": 5, "a2a.send": 3, "a2a.complete": 1}
    assert {"fromAgent": "a", "toAgent": "b", "count": 2} in body["agentPairs"]
    assert body["sessions"]["count"] == 2
    assert body["sessions"]["events"]["max"] == 5
    ranged = call(queries.get_stats, s, [("since", "2000"), ("until", "3050")])[1]
    assert ranged["events"] == 2 and ranged["responseTimeMs"]["count"] == 0
    assert "since" in bad(queries.get_stats, s, [("since", "yesterday")])
    # the incremental answer (no range) equals one pass over everything
    everything = call(queries.get_stats, s, [("since", "-1"), ("until", "99999")])[1]
    assert {**everything, "since": None, "until": None} == body


def test_stats_memo_and_max_age(store: Store) -> None:
    first = call(queries.get_stats, store, [], now=NOW)[1]
    store.extend([ev(251, "a2a.send", NOW, ws="fresh")])
    # within a second the memoised answer is served, saying which seq it covers
    assert call(queries.get_stats, store, [], now=NOW + 500)[1] == first
    later = call(queries.get_stats, store, [], now=NOW + 1500)[1]
    assert later["events"] == first["events"] + 1 and later["seq"] == 251
    assert later["sessions"]["count"] == first["sessions"]["count"] + 1


def test_stats_equal_on_a_realistic_log() -> None:
    gen = pytest.importorskip("coordd.synth.gen")
    from coordd.core.enrich import Enricher
    from coordd.plugins.host import PluginHost

    host = PluginHost()
    host.start()
    enricher = Enricher(host, host.vocabulary(), lambda: frozenset({"main", "ruda"}))
    s = Store(max_events=1500)
    batch = []
    for raw in gen.generate(2000, seed=3):
        value = enricher.enrich(raw)
        if value is not None:
            batch.append(Event(len(batch) + 1, value))
    for i in range(0, len(batch), 300):
        s.extend(batch[i:i + 300])
    whole = call(queries.get_stats, s, [])[1]
    assert whole["events"] == 1500 and whole["responseTimeMs"]["count"] > 10
    assert sum(whole["outcomes"].values()) > 0
    ranged = call(queries.get_stats, s, [("since", "0")])[1]
    assert {**ranged, "since": None} == whole


def test_health() -> None:
    code, body = queries.health("2026-02-17T12:00:00.000Z")
    assert code == 200 and orjson.loads(body)["status"] == "ok"


# ---------------------------------------------------------------------------- robustness

KEYS = ["limit", "offset", "since", "until", "role", "type", "status", "viewCategory", "subTag",
        "cursor", "q", "x"]
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "-1", "1e3", "9" * 40, "ACTIVE", "conversation.main",
                     "a2a.send", "qa_validation", "all", "2026-02-17", "2026-02-17T10:00:00Z",
                     "1771323600000", "WyJzIiwxLDIsM10", "WyJlIiwiZXAxIiwzXQ", "%", "null"]),
)


@settings(max_examples=300, deadline=None)
@given(params=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=6),
       segment=st.text(max_size=12), body=st.binary(max_size=40))
def test_no_input_crashes_a_route(params: P, segment: str, body: bytes) -> None:
    s = Store(overrides=Overrides(None), epoch="ep1")
    s.extend([ev(1, "a2a.send", NOW, role="conversation.main", tags=["x"]),
              ev(2, "a2a.response", NOW + 1, ws="w/2", conversationId="c")])
    answers = [
        queries.get_events(s, params, NOW), queries.get_work_sessions(s, params, NOW),
        queries.get_work_session(s, segment, params, NOW),
        queries.search_events(s, params, NOW), queries.search_work_sessions(s, params, NOW),
        queries.get_stats(s, params, NOW), queries.patch_category(s, segment, body, NOW),
    ]
    for code, raw in answers:
        assert code in (200, 400, 404), (code, raw)
        value = orjson.loads(raw)
        if code != 200:
            assert set(value) == {"error"} and value["error"]


# ---------------------------------------------------------------------------- parity replay


def _load_corpus(src: Path) -> list[Event]:
    from coordd.core.enrich import Enricher
    from coordd.plugins.host import PluginHost
    from coordd.service.mainagents import MainAgents

    host = PluginHost()
    host.start()
    enricher = Enricher(host, host.vocabulary(), MainAgents(src / "openclaw.json").current)
    out: list[Event] = []
    for line in (src / "coordination-events.ndjson").read_bytes().split(b"\n"):
        parsed = parse_line(line)
        if parsed.reason is None:
            value = enricher.enrich(parsed.value)
            if value is not None:
                out.append(Event(len(out) + 1, value))
    return out


def _answer(
    store: Store, method: str, path: str, params: P, now: float
) -> tuple[int, bytes] | None:
    ws = "/api/work-sessions/"
    if method == "GET" and path == "/api/events":
        return queries.get_events(store, params, now)
    if method == "GET" and path == "/api/work-sessions":
        return queries.get_work_sessions(store, params, now)
    if method == "GET" and path == "/api/events/search":
        return queries.search_events(store, params, now)
    if method == "GET" and path == "/api/work-sessions/search":
        return queries.search_work_sessions(store, params, now)
    if path.startswith(ws):
        parts = path[len(ws):].split("/")
        if method == "GET" and len(parts) == 1:
            return queries.get_work_session(store, parts[0], params, now)
        if method == "PATCH" and len(parts) == 2:
            case = dict(params).get("case")
            body = {"invalid-category": b'{"collabCategory":"bogus"}',
                    "invalid-json": b"{not json"}.get(
                case, b'{"collabCategory":"qa_validation","updatedBy":"oracle"}')
            return queries.patch_category(store, parts[0], body, now)
    return None  # the web layer's routes (index, OPTIONS, 405s): not replayed here


@pytest.mark.parametrize("corpus", ["past", "future"])
def test_parity_replay_in_process(tmp_path: Path, corpus: str) -> None:
    """Every recorded request this layer answers, replayed through the query functions
    and judged by the parity comparator: no mismatch allowed."""
    pytest.importorskip("coordd.core.enrich")
    sys.path.insert(0, str(PARITY))
    import compare

    src = PARITY / f"dev-{corpus}"
    store = Store(overrides=Overrides(tmp_path / "ov.json"))
    store.extend(_load_corpus(src))
    exp, act = tmp_path / "expected", tmp_path / "actual"
    act.mkdir()
    with tarfile.open(src / "upstream-responses.tar.xz") as tar:
        tar.extractall(exp, filter="data")
    manifest = json.loads((exp / "manifest.json").read_text())
    kept, answered = [], []
    now = time.time() * 1000
    for r in manifest["requests"]:
        params = urllib.parse.parse_qsl(r["query"], keep_blank_values=True)
        res = _answer(store, r["method"], r["path"], params, now)
        if res is None:
            continue
        kept.append(r)
        (act / (r["name"] + ".json")).write_bytes(res[1])
        answered.append({"name": r["name"], "method": r["method"], "path": r["path"],
                         "query": r["query"], "status": res[0],
                         "contentType": "application/json"})
    manifest["requests"] = kept
    (exp / "manifest.json").write_text(json.dumps(manifest))
    (act / "manifest.json").write_text(json.dumps({"requests": answered}))
    result = compare.compare_dumps(str(exp), str(act), corpus, show=20)
    report = "\n".join(result.lines)
    assert result.compared >= 140, report
    assert result.mismatches == 0, report


def test_filtered_pages_are_the_filtered_walk_for_every_status_and_category() -> None:
    """The first page of a status/category filter is exactly the unfiltered order
    filtered (the walk may stop at the counters' total: it must never stop short)."""
    from itertools import combinations

    from coordd.synth.gen import generate
    from tests.mongo.helpers import ENRICHER

    store = Store()
    evs = [Event(i + 1, e) for i, e in enumerate(
        x for x in (ENRICHER.enrich(r) for r in generate(1_500, seed=21)) if x is not None)]
    store.extend(evs)
    last = max(e.ts for e in evs)
    statuses = ("ACTIVE", "QUIET", "ARCHIVED")
    for now in (last + 60_000, last + 6 * 3_600_000, last + 30 * 3_600_000):
        every = work(store, [("limit", "100000")], now)["sessions"]
        for k in (1, 2, 3):
            for wanted in combinations(statuses, k):
                for cat in (None, *CATEGORIES):
                    params: P = [("status", ",".join(wanted)), ("limit", "4")]
                    if cat is not None:
                        params.append(("viewCategory", cat))
                    want = [s["workSessionId"] for s in every if s["status"] in wanted
                            and (cat is None or s["collabCategory"] == cat)]
                    got = work(store, params, now)
                    assert [s["workSessionId"] for s in got["sessions"]] == want[:4]
                    assert got["totalMatched"] == len(want)
                    assert (got["nextCursor"] is not None) == (len(want) > 4)


def test_status_pages_when_archived_sessions_ended_in_a_terminal_event() -> None:
    # 3 live sessions and 1 archived one whose last event was terminal: the archived side
    # of the order is the smaller one, and its terminal session is not QUIET any more.
    store = Store()
    store.extend([ev(1, "task.completed", NOW - 3 * DAY, "ws_old"),
                  ev(2, "a2a.send", NOW - 3000, "ws_a"), ev(3, "a2a.send", NOW - 2000, "ws_b"),
                  ev(4, "a2a.send", NOW - 1000, "ws_c")])
    active = work(store, [("status", "ACTIVE")])
    assert [s["workSessionId"] for s in active["sessions"]] == ["ws_c", "ws_b", "ws_a"]
    assert active["totalMatched"] == 3
    assert work(store, [("status", "QUIET")])["totalMatched"] == 0
    archived = work(store, [("status", "ARCHIVED")])
    assert [s["workSessionId"] for s in archived["sessions"]] == ["ws_old"]
    assert archived["sessions"][0]["status"] == "ARCHIVED"
