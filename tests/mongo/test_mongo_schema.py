"""MongoDB documents and indexes: the old recipe, coordd's fields, read-time status,
and the schema set-up on a database the old monitor filled."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import mongomock
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordd.core.event import Event
from coordd.core.jsvalues import (
    _js_normalise,
    dumps,
    dumps_splitting_data,
    event_hash,
    hash_input,
    js_stringify,
    loads,
)
from coordd.core.sessions import build_session, status_of
from coordd.mongo.schema import (
    EVENTS,
    LEGACY_EVENT_FIELDS,
    SESSIONS,
    TTL_INDEX,
    event_document,
    event_indexes,
    js_date,
    legacy_event_document,
    session_indexes,
    utc_now,
)
from coordd.mongo.sessiondocs import session_document, status_expression, status_filter
from coordd.mongo.sink import PymongoSink
from coordd.synth.gen import generate
from tests.core.helpers import VERIFIED_IN
from tests.mongo.helpers import ENRICHER, PREPARING, json_text, make

HASH_VECTOR = "894d85f8739844995317dd7af523b7329d349636e6e9f02ff62af242c768b497"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0)


def enriched(raw: dict[str, Any]) -> dict[str, Any]:
    out = make().enrich(raw)
    assert out is not None
    return out


def vector_event() -> dict[str, Any]:
    raw = json.loads(VERIFIED_IN)
    raw["data"]["workSessionId"] = "ws_demo"
    return enriched(raw)


# ------------------------------------------------------------------ the old recipe


def test_legacy_document_is_the_old_recipe_with_the_hash_vector() -> None:
    doc = legacy_event_document(vector_event())
    assert tuple(doc) == LEGACY_EVENT_FIELDS
    assert doc["eventHash"] == HASH_VECTOR
    assert doc["agentId"] == "ruda"
    assert doc["ts"] == 1771330358110
    assert doc["createdAt"] == dt.datetime(2026, 2, 17, 12, 12, 38, 110000)
    assert doc["data"]["workSessionId"] == "ws_demo"
    assert doc["data"]["categoryVersion"] == "v1"
    assert doc["collabSubTags"] == ["코드", "구현"]
    assert doc["categoryConfidence"] == 0.76


def test_agent_fallback_differs_between_document_and_hash() -> None:
    # The old monitor's quirk: the document says "unknown", the hash
    # uses "" — both kept for compatibility.
    a = enriched({"type": "task.started", "ts": 5, "data": {"taskId": "t"}})
    b = enriched({"type": "task.started", "agentId": "unknown", "ts": 5, "data": {"taskId": "t"}})
    da, db = legacy_event_document(a), legacy_event_document(b)
    assert da["agentId"] == db["agentId"] == "unknown"
    assert da["eventHash"] != db["eventHash"]


def test_created_at_is_javascript_date_of_ts() -> None:
    assert js_date(1.9) == dt.datetime(1970, 1, 1, 0, 0, 0, 1000)  # truncated, like TimeClip
    assert js_date(-1.9) == dt.datetime(1969, 12, 31, 23, 59, 59, 999000)
    assert js_date(0) == dt.datetime(1970, 1, 1)
    assert js_date(1e20) is None  # beyond what datetime holds: the field is left out
    out = enriched({"type": "x", "ts": 1e20})
    assert "createdAt" not in legacy_event_document(out)


def test_coordd_document_adds_its_fields_after_the_old_ones() -> None:
    ev = Event(42, vector_event())
    doc = event_document(ev, epoch="E1", inserted_at=NOW, has_session=True)
    assert tuple(doc)[: len(LEGACY_EVENT_FIELDS)] == LEGACY_EVENT_FIELDS
    assert doc["eventHash"] == HASH_VECTOR
    assert (doc["seq"], doc["epoch"], doc["insertedAt"]) == (42, "E1", NOW)
    assert doc["workSessionId"] == "ws_demo"
    assert doc["retention"] == "session"
    alone = Event(7, enriched({"type": "continuation.sent", "agentId": "ruda", "ts": 9}))
    doc = event_document(alone, epoch="E1", inserted_at=NOW, has_session=False)
    assert "workSessionId" not in doc
    assert doc["retention"] == "ttl"


def test_work_session_id_is_trimmed_for_the_session_key() -> None:
    ev = Event(1, enriched({"type": "task.started", "agentId": "ruda", "ts": 1,
                            "data": {"workSessionId": " ws_9\u00a0"}}))
    doc = event_document(ev, epoch="E", inserted_at=NOW, has_session=True)
    assert doc["workSessionId"] == "ws_9"
    assert doc["data"]["workSessionId"] == " ws_9\u00a0"  # the raw value is kept


def test_old_monitor_document_round_trips_and_dedupes() -> None:
    """A document the old monitor wrote (ts as a JavaScript number, i.e. a double) reads
    back unchanged and is the same event for coordd: no second document."""
    client: Any = mongomock.MongoClient()
    sink = PymongoSink(client)
    sink.ensure_schema()
    event = vector_event()
    legacy = legacy_event_document(event)
    legacy["ts"] = float(legacy["ts"])
    client.task_monitor[EVENTS].insert_one(dict(legacy))
    back = client.task_monitor[EVENTS].find_one({"eventHash": HASH_VECTOR}, {"_id": 0})
    assert back == legacy
    # A recent insertion time: mongomock emulates TTL indexes and ignores their partial
    # filter, so an old `insertedAt` would make it hide the document.
    res = sink.write_events([event_document(Event(3, event), epoch="E", inserted_at=utc_now(),
                                            has_session=True)])
    assert (res.inserted, res.duplicates, res.stamped) == (0, 1, 1)
    docs = list(client.task_monitor[EVENTS].find({}, {"_id": 0}))
    assert len(docs) == 1
    assert {k: docs[0][k] for k in LEGACY_EVENT_FIELDS} == legacy
    assert (docs[0]["seq"], docs[0]["epoch"], docs[0]["retention"]) == (3, "E", "session")


# ------------------------------------------------------------------ sessions


def spec_session() -> list[Event]:
    """The verified work-session example (nowMs 1771329600000)."""
    now = 1771329600000
    raws = [
        {"type": "task.started", "agentId": "ruda", "ts": now - 60_000,
         "data": {"workSessionId": "ws_1", "taskId": "t1"}},
        {"type": "a2a.send", "agentId": "ruda", "ts": now - 50_000,
         "data": {"workSessionId": "ws_1", "fromAgent": "ruda", "toAgent": "eden",
                  "message": "deploy plz"}},
        {"type": "a2a.response", "agentId": "eden", "ts": now - 40_000,
         "data": {"workSessionId": "ws_1", "fromAgent": "eden", "toAgent": "ruda",
                  "conversationId": "c1"}},
        {"type": "weird", "ts": now - 30_000, "data": {"workSessionId": "ws_1"}},
        {"type": "task.completed", "agentId": "ruda", "ts": now - 20_000,
         "data": {"workSessionId": "ws_1", "taskId": "t1"}},
    ]
    return [Event(i + 1, enriched(r)) for i, r in enumerate(raws)]


def test_session_document_of_the_spec_example() -> None:
    now = 1771329600000
    agg = build_session("ws_1", spec_session())
    assert agg is not None
    doc = session_document(agg, now_ms=now, epoch="E", updated_at=NOW)
    assert doc["workSessionId"] == "ws_1"
    assert (doc["eventCount"], doc["threadCount"]) == (5, 4)
    assert (doc["startTime"], doc["lastTime"], doc["durationMs"]) == (
        now - 60_000, now - 20_000, 40_000)
    assert doc["collabCategory"] == "planning_decision"
    assert doc["collabSubTags"] == ["deploy"]
    assert doc["categorySource"] == "event"
    assert doc["roleCounts"] == {"conversation.main": 0, "delegation.subagent": 2,
                                 "orchestration.task": 2, "system.observability": 1}
    assert [t["id"] for t in doc["threads"]] == [
        "pair:ruda_unknown", "event:weird:5904431", "conv:c1", "pair:eden_ruda"]
    send = doc["threads"][3]
    assert (send["fromAgent"], send["toAgent"], send["eventCount"]) == ("ruda", "eden", 1)
    assert "conversationId" not in send
    assert doc["threads"][2]["conversationId"] == "c1"
    assert set(doc["threads"][0]) == {"id", "fromAgent", "toAgent", "startTime", "lastTime",
                                      "eventCount", "collabCategory"}
    # coordd treats task.completed as terminal: QUIET, recorded for read time.
    assert doc["latestTerminal"] is True and doc["latestType"] == "task.completed"
    assert doc["status"] == "QUIET"
    assert (doc["lastSeq"], doc["epoch"], doc["updatedAt"]) == (5, "E", NOW)
    over = session_document(agg, now_ms=now, epoch="E", override="legal_compliance")
    assert (over["collabCategory"], over["categorySource"]) == (
        "legal_compliance", "manual_override")
    assert over["collabSubTags"] == ["deploy"]


def test_status_at_read_time_matches_the_in_memory_rule() -> None:
    now = 1_800_000_000_000
    day = 86_400_000
    docs = []
    for i, last in enumerate((now - day - 1, now - day, now - 5, now + 1000)):
        for term in (True, False):
            docs.append({"_id": f"c{i}{term}", "lastTime": last, "latestTerminal": term,
                         "status": "ACTIVE"})  # a stale stored status must not matter
        for stored in ("QUIET", "ACTIVE"):  # the old monitor's documents
            docs.append({"_id": f"l{i}{stored}", "lastTime": last, "status": stored})
    coll: Any = mongomock.MongoClient().db[SESSIONS]
    coll.insert_many(docs)

    def expected(d: dict[str, Any]) -> str:
        term = d.get("latestTerminal", d["status"] == "QUIET")
        return status_of(d["lastTime"], term, now)

    want = {d["_id"]: expected(d) for d in docs}
    got = {d["_id"]: d["s"] for d in coll.aggregate(
        [{"$project": {"s": status_expression(now)}}])}
    assert got == want
    for statuses in (["ACTIVE"], ["QUIET"], ["ARCHIVED"], ["ACTIVE", "QUIET"], []):
        ids = {d["_id"] for d in coll.find(status_filter(statuses, now), {"_id": 1})}
        assert ids == {k for k, v in want.items() if v in statuses}, statuses


# ------------------------------------------------------------------ indexes


def test_index_names_are_the_drivers_for_the_old_monitors_indexes() -> None:
    coll: Any = mongomock.MongoClient().db.x
    for spec in [*event_indexes(90), *session_indexes()]:
        if spec.name.startswith("coordd_"):
            continue
        assert coll.create_index(list(spec.keys)) == spec.name


def test_ttl_index_is_on_insertion_time_and_only_for_sessionless_events() -> None:
    (ttl,) = [s for s in event_indexes(30) if s.name == TTL_INDEX]
    assert ttl.keys == (("insertedAt", 1),)
    assert ttl.options == {"expireAfterSeconds": 30 * 86_400,
                           "partialFilterExpression": {"retention": "ttl"}}
    assert not [s for s in event_indexes(0) if "expireAfterSeconds" in s.options]
    (uniq,) = [s for s in event_indexes(90) if s.options.get("unique")]
    assert uniq.keys == (("eventHash", 1),)


def test_ensure_schema_on_the_old_monitors_database() -> None:
    client: Any = mongomock.MongoClient()
    events = client.task_monitor[EVENTS]
    events.create_index([("createdAt", 1)], expireAfterSeconds=7_776_000)  # the old TTL
    events.create_index([("eventHash", 1)], unique=True)
    events.create_index([("ts", -1)])
    PymongoSink(client, ttl_days=90).ensure_schema()
    info = events.index_information()
    assert "createdAt_1" not in info  # event-time expiry would cut sessions in half
    assert info[TTL_INDEX]["expireAfterSeconds"] == 90 * 86_400
    assert info["eventHash_1"]["unique"] is True
    assert {s.name for s in event_indexes(90)} <= set(info)
    assert {s.name for s in session_indexes()} <= set(
        client.task_monitor[SESSIONS].index_information())
    PymongoSink(client, ttl_days=90).ensure_schema()  # idempotent
    PymongoSink(client, ttl_days=7).ensure_schema()
    assert events.index_information()[TTL_INDEX]["expireAfterSeconds"] == 7 * 86_400
    PymongoSink(client, ttl_days=0).ensure_schema()
    assert TTL_INDEX not in events.index_information()


# ------------------------------------------------------------------ js_stringify fast path

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.0, -0.0, 2.0, 1e16, 1.5e16, 1e21, 3e300]) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids,
                                                              max_size=4),
    max_leaves=12)


@given(_json)
def test_js_stringify_fast_path_equals_the_normalising_walk(value: Any) -> None:
    assert js_stringify(value) == dumps(_js_normalise(value)).decode("utf-8")


@pytest.mark.parametrize("text", ['{"a":"x.0,","b":2.0}', '{"a":[1e+16]}', '{"m":"e+"}'])
def test_js_stringify_integral_floats_even_next_to_lookalike_strings(text: str) -> None:
    value = loads(text)
    assert js_stringify(value) == dumps(_js_normalise(value)).decode("utf-8")
    assert ".0" not in js_stringify({"n": 2.0})


@given(_json)
def test_event_hash_in_bytes_is_the_hash_of_the_old_recipe_string(data: Any) -> None:
    event = {"type": "a2a.send", "agentId": " ruda ", "ts": 1_771_330_358_110.5, "data": data}
    want = hashlib.sha256(hash_input(event).encode("utf-8", "backslashreplace")).hexdigest()
    assert event_hash(event) == want
    try:
        data_json = orjson.dumps(data)
    except TypeError:
        return  # the pipeline passes no data_json then
    assert event_hash(event, None, data_json) == want


@given(_json)
def test_splitting_data_out_changes_neither_the_json_nor_the_event(data: Any) -> None:
    event = {"type": "t", "data": data, "after": [1, "x"]}
    before = repr(event)
    out, data_json = dumps_splitting_data(event)
    assert repr(event) == before  # `data` is put back
    assert out == dumps(event)
    if data_json is not None:
        assert data_json == orjson.dumps(data)


def _special_events() -> list[dict[str, Any]]:
    base = {"type": "a2a.response", "agentId": "ruda", "ts": 1_771_330_358_110}
    return [
        {**base, "data": {"workSessionId": " ws_f ", "ratio": 2.0, "big": 1e21, "x": 0.5,
                          "outcome": "no_reply", "message": "한국어 e+ .0"}},
        {**base},  # no data at all
        {**base, "data": None},
        {**base, "agentId": None, "timestamp": "2026-02-17T12:12:38.110Z",
         "data": {"message": "bad \udc00 text", "workSessionId": "ws_s"}},
        {**base, "data": {"n": 123456789012345678901234, "workSessionId": "ws_big"}},
    ]


def test_a_prepared_document_is_the_one_built_from_the_stored_json() -> None:
    """The pipeline's `prepare_document` (taken while the event is fresh) and the
    fallback (the stored JSON parsed again) give the same document, field for field and
    in the same order; where the pipeline cannot prepare one (lone surrogates) there is
    no source and the fallback makes it BSON-safe."""
    raws = [*generate(300, seed=11), *(loads(json_text(e)) for e in _special_events())]
    prepared = 0
    for raw in raws:
        ev = PREPARING.enrich_event(raw, 7, with_source=True)
        plain = ENRICHER.enrich_event(raw, 7)
        assert ev is not None and plain is not None
        assert ev.json == plain.json and plain.source is None
        for has_session in (True, False):
            got = event_document(ev, epoch="E", inserted_at=NOW, has_session=has_session)
            want = event_document(plain, epoch="E", inserted_at=NOW,
                                  has_session=has_session)
            assert list(got.items()) == list(want.items())
        assert got["eventHash"] == event_hash(plain.as_dict())
        # None exactly where the fallback serialiser wrote the JSON (a lone surrogate).
        assert (ev.source is None) == (b"\\udc00" in ev.json)
        prepared += ev.source is not None
    assert prepared == len(raws) - 1
