"""The MongoDB tier against a real server: runs only when COORDD_TEST_MONGODB_URI is set.

For example, with a local replica set (change streams need one):

    mongod --replSet rs0 --dbpath /tmp/coordd-mongo --port 27017 --bind_ip 127.0.0.1 &
    mongosh --quiet --eval 'rs.initiate()'
    COORDD_TEST_MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0 \\
        pytest -m mongo tests/test_mongo_real.py

Each test works in a database of its own (`coordd_test_<random>`), dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from coordd.model import event_hash
from coordd.mongo_schema import (
    EVENTS,
    SESSIONS,
    TTL_INDEX,
    bson_safe,
    event_indexes,
    legacy_event_document,
    session_indexes,
    status_expression,
    status_filter,
    utc_now,
)
from coordd.mongo_sink import SyncMarker
from coordd.mongo_sync import SyncWorker
from coordd.sessions import status_of
from tests.test_mongo_sync import (
    FAST,
    Daemon,
    Db,
    assert_exactly_once,
    enriched_events,
    retention_fixture,
    run_until_synced,
)

URI = os.environ.get("COORDD_TEST_MONGODB_URI", "")

pytestmark = [
    pytest.mark.mongo,
    pytest.mark.skipif(not URI, reason="COORDD_TEST_MONGODB_URI is not set"),
]


@pytest.fixture
def db() -> Iterator[Db]:
    import pymongo

    client: Any = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000)
    name = f"coordd_test_{secrets.token_hex(4)}"
    try:
        yield Db("pymongo", client=client, database=name)
    finally:
        client.drop_database(name)
        client.close()


def test_schema_on_a_real_server_replaces_the_old_ttl(db: Db) -> None:
    db.coll(EVENTS).create_index([("createdAt", 1)], expireAfterSeconds=7_776_000)
    db.sink.ensure_schema()
    db.sink.ensure_schema()  # idempotent
    info = db.coll(EVENTS).index_information()
    assert "createdAt_1" not in info
    assert {s.name for s in event_indexes(90)} <= set(info)
    assert info[TTL_INDEX]["expireAfterSeconds"] == 90 * 86_400
    assert info[TTL_INDEX]["partialFilterExpression"] == {"retention": "ttl"}
    assert info["eventHash_1"]["unique"] is True
    assert {s.name for s in session_indexes()} <= set(db.coll(SESSIONS).index_information())


async def test_every_event_once_across_a_restart_and_a_replay(db: Db) -> None:
    evs = enriched_events(700)
    first = Daemon()
    first.feed(evs[:300])
    await run_until_synced(SyncWorker(db.sink, first.source(), FAST), 300)
    second = Daemon()
    stored = second.feed(evs)
    worker = SyncWorker(db.sink, second.source(), FAST)
    await run_until_synced(worker, 700)
    assert (worker.statistics().inserted, worker.statistics().duplicates) == (400, 0)
    db.forget_marker()
    replay = SyncWorker(db.sink, second.source(), FAST)
    await run_until_synced(replay, 700)
    assert (replay.statistics().inserted, replay.statistics().duplicates) == (0, 700)
    assert_exactly_once(db, stored)
    assert db.marker() == SyncMarker("E1", 700)
    assert len(db.sessions()) == len({ev.ws_id for ev in stored if ev.ws_id})


async def test_the_old_monitors_documents_are_taken_over(db: Db) -> None:
    d = Daemon()
    stored = d.feed(enriched_events(200))
    legacy = []
    for ev in stored[:150]:
        doc = bson_safe(legacy_event_document(ev.as_dict()))
        doc["ts"] = float(doc["ts"])  # a JavaScript number
        legacy.append(doc)
    db.coll(EVENTS).insert_many(legacy)
    worker = SyncWorker(db.sink, d.source(), FAST)
    await run_until_synced(worker, 200)
    assert_exactly_once(db, stored)
    stats = worker.statistics()
    assert (stats.inserted, stats.duplicates, stats.stamped) == (50, 150, 150)


def test_retention_on_a_real_server(db: Db) -> None:
    db.sink.ensure_schema()
    now = utc_now()
    f = retention_fixture(db, now)
    res = db.sink.expire(now - 90 * dt.timedelta(days=1), 1000)
    hashes = {d["eventHash"] for d in db.events()}
    assert not hashes & {event_hash(ev.as_dict()) for ev in f["gone"]}
    # Session events inserted long ago stay with their live session: the TTL index
    # (partial: retention "ttl") never touches them.
    assert {event_hash(ev.as_dict()) for ev in f["kept"]} <= hashes
    assert set(db.sessions()) == {f["ws"][1]}
    assert res.sessions == 1


def test_status_is_computed_at_read_time_by_the_server(db: Db) -> None:
    now = time.time() * 1000
    day = 86_400_000
    docs: list[dict[str, Any]] = [
        {"_id": f"s{i}{t}", "lastTime": last, "latestTerminal": t, "status": "ACTIVE"}
        for i, last in enumerate((now - 2 * day, now - day + 1000, now))
        for t in (True, False)]
    docs.append({"_id": "legacy", "lastTime": now, "status": "QUIET"})
    db.coll(SESSIONS).insert_many(docs)
    want = {d["_id"]: status_of(d["lastTime"], d.get("latestTerminal", True), now)
            for d in docs}
    got = {d["_id"]: d["s"] for d in db.coll(SESSIONS).aggregate(
        [{"$project": {"s": status_expression(now)}}])}
    assert got == want
    for status in ("ACTIVE", "QUIET", "ARCHIVED"):
        ids = {d["_id"] for d in db.coll(SESSIONS).find(status_filter([status], now))}
        assert ids == {k for k, v in want.items() if v == status}
