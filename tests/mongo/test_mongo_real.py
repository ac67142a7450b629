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
import time
from collections.abc import Iterator
from typing import Any

import pytest
from orjson import loads as orjson_loads

from coordd.core.jsvalues import event_hash
from coordd.core.sessions import status_of
from coordd.mongo.capabilities import probe
from coordd.mongo.schema import (
    EVENTS,
    SESSIONS,
    TEXT_INDEX,
    TTL_INDEX,
    bson_safe,
    event_indexes,
    legacy_event_document,
    session_indexes,
    utc_now,
)
from coordd.mongo.sessiondocs import status_expression, status_filter
from coordd.mongo.sink import SyncMarker
from coordd.mongo.sync import SyncWorker
from tests.mongo.helpers import (
    FAST,
    Daemon,
    Db,
    assert_exactly_once,
    enriched_events,
    retention_fixture,
    run_until_synced,
)
from tests.mongo.realserver import REAL_SERVER, real_db

pytestmark = REAL_SERVER


@pytest.fixture
def db() -> Iterator[Db]:
    with real_db() as d:
        yield d


def test_schema_on_a_real_server_replaces_the_old_ttl(db: Db) -> None:
    probe_caps = probe(db.sink.db())
    if probe_caps.ttl_index:
        db.coll(EVENTS).create_index([("createdAt", 1)], expireAfterSeconds=7_776_000)
    db.sink.ensure_schema()
    db.sink.ensure_schema()  # idempotent
    caps = db.sink.capabilities
    assert caps is not None and caps.missing() == probe_caps.missing()
    info = db.coll(EVENTS).index_information()
    assert "createdAt_1" not in info
    built = {s.name for s in event_indexes(90)}
    if not caps.text_index:
        built.discard(TEXT_INDEX)  # search uses the regex prefilter
    if not caps.ttl_index:
        built.discard(TTL_INDEX)  # the retention pass deletes by insertedAt
    assert built <= set(info)
    assert (TEXT_INDEX in info) == caps.text_index and (TTL_INDEX in info) == caps.ttl_index
    if caps.ttl_index:
        assert info[TTL_INDEX]["expireAfterSeconds"] == 90 * 86_400
        assert info[TTL_INDEX]["partialFilterExpression"] == {"retention": "ttl"}
    assert info["eventHash_1"]["unique"] is True
    assert {s.name for s in session_indexes()} <= set(db.coll(SESSIONS).index_information())


def test_a_conflicting_index_of_someone_else_does_not_stop_the_schema(db: Db) -> None:
    """An index with coordd's keys under another name (an operator's, or the old monitor's
    with other options): the server refuses coordd's; queries still have an index on those
    keys, so coordd warns and goes on. The unique eventHash index is the one it needs."""
    db.coll(EVENTS).create_index([("epoch", 1), ("seq", 1)], name="operators_epoch_seq")
    db.coll(EVENTS).create_index([("ts", -1)], name="ts_-1")  # the old monitor's own
    db.sink.ensure_schema()
    info = db.coll(EVENTS).index_information()
    assert "operators_epoch_seq" in info and "ts_-1" in info
    assert "coordd_epoch_seq" not in info  # refused by the server (code 85), tolerated
    assert info["eventHash_1"]["unique"] is True
    # Syncing works on top of it.
    db.sink.write_events([])


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
    if probe(db.sink.db()).expressions:  # else only the plain filter below is used
        got = {d["_id"]: d["s"] for d in db.coll(SESSIONS).aggregate(
            [{"$project": {"s": status_expression(now)}}])}
        assert got == want
    for status in ("ACTIVE", "QUIET", "ARCHIVED"):
        ids = {d["_id"] for d in db.coll(SESSIONS).find(status_filter([status], now))}
        assert ids == {k for k, v in want.items() if v == status}


# ---------------------------------------------------------------------------- part 2: reads


async def test_queries_on_a_real_server_answer_like_memory(db: Db) -> None:
    import orjson

    from coordd.core import queries
    from coordd.mongo.queries import interior_word
    from tests.mongo.helpers import World

    w = World(db)
    caps = db.sink.capabilities
    now = time.time() * 1000
    for params in ([("q", "ruda")], [("q", ".*")], [("q", "regex chars .* and")],
                   [("q", "a2a"), ("role", "conversation.main"), ("limit", "5")]):
        got = orjson.loads((await w.mq.search_events(params, now))[1])
        want = orjson.loads(queries.search_events(w.big.store, params, now)[1])
        assert got.pop("tier") == "mongo" and want.pop("tier") == "memory"
        # The answer names the fallback: a word the index would prefilter on, no $text.
        no_text = not (caps and caps.text_index)
        fell_back = no_text and interior_word(params[0][1]) is not None
        assert got.pop("fallbacks", None) == (["text_index"] if fell_back else None)
        assert got == want
    # With $text the prefilter ran; without it (FerretDB) the regex search answered the same.
    assert w.mq.statistics().text_index == bool(db.sink.capabilities
                                                and db.sink.capabilities.text_index)
    for params in ([], [("since", "0"), ("until", "1771000000000")]):
        got = orjson.loads((await w.mq.get_stats(params, now))[1])
        want = orjson.loads(queries.get_stats(w.big.store, params, now)[1])
        assert got.pop("tier") == "mongo" and want.pop("tier") == "memory"
        in_python = not (caps and caps.accumulators)
        assert got.pop("fallbacks", None) == (["accumulators"] if in_python else None)
        assert got == want
    got = orjson.loads((await w.mq.get_events([("since", "0"), ("limit", "1000")], now))[1])
    want = orjson.loads(queries.get_events(w.big.store, [("since", "0"), ("limit", "1000")],
                                           now)[1])
    assert got["events"] == want["events"] and got["tier"] == "mongo"


async def test_deep_paging_and_time_ranges_across_the_memory_boundary(db: Db) -> None:
    """Pages walk from memory into the server and give every match once, in log order, as
    a memory holding everything would; a time range answered by the server, too."""
    from coordd.core import queries
    from tests.mongo.helpers import World, memory, same, walk

    w = World(db)
    for params in ([("limit", "40")], [("limit", "15"), ("type", "a2a.send,a2a.response")]):
        events, tiers = await walk(w.mq, params)
        flt = [p for p in params if p[0] != "limit"]
        everything = memory(queries.get_events, w.big.store, [*flt, ("limit", "100000")])
        assert events == everything["events"]
        assert tiers[0] == "memory" and tiers[-1] == "mongo"
    oldest = next(w.big.store.iter_by_time()).ts
    window = [("since", str(int(oldest))), ("until", str(int(oldest) + 3_600_000)),
              ("limit", "1000")]
    got = orjson_loads((await w.mq.get_events(window, time.time() * 1000))[1])
    assert got["tier"] == "mongo"
    same(got, memory(queries.get_events, w.big.store, window), but=("tier", "nextCursor"))


async def test_a_follower_on_a_real_server_follows_the_marker(db: Db) -> None:
    import trio

    from coordd.core.store import Store
    from coordd.mongo.follower import Follower

    tail = Daemon()
    worker = SyncWorker(db.sink, tail.source(), FAST)
    tail.listeners.append(worker.offer)
    store = Store()
    caught_up = trio.Event()

    def listener(events: Any) -> None:
        if store.last_seq >= 250:
            caught_up.set()

    follower = Follower(db.sink, lambda: store, lambda e: store, [listener], poll_interval=0.2)
    hello = {} if db.kind == "mongomock" else db.client.admin.command("hello")
    with trio.fail_after(60):  # a hang guard
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await nursery.start(follower.run)
            stored = tail.feed(enriched_events(250, seed=3))
            await worker.wait_synced(250)
            await caught_up.wait()
            nursery.cancel_scope.cancel()
    assert [(e.seq, e.json) for e in store.iter_events()] == [(e.seq, e.json) for e in stored]
    # Change streams on a replica set or a sharded cluster, polling on a standalone server.
    assert follower.statistics().change_stream == bool(hello.get("setName") or
                                                       hello.get("msg") == "isdbgrid")


async def test_a_warm_restart_from_a_real_server(db: Db, tmp_path: Any) -> None:
    from tests.mongo.helpers import picture, run, warm, write

    log, state = tmp_path / "logs" / "coordination-events.ndjson", tmp_path / "state"
    write(log, 250, seed=6)
    first, _ = await run(log, state, db=db)
    history = await warm(db, state, log)
    assert history is not None
    second, enricher = await run(log, state, history=history)
    assert enricher.calls == 0 and picture(second) == picture(first)
