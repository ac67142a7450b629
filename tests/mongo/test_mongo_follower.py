"""Follower mode: an instance without the log, fed from MongoDB, answers like the tailing
instance. Both are built in one process over one mongomock client: the tailing side is a
store fed like the pipeline feeds it plus the real sync worker; the follower reads only
what the worker wrote."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import trio

from coordd.core import queries
from coordd.core.event import Event
from coordd.core.sessions import UNFILTERED
from coordd.core.store import Store
from coordd.errors import SinkUnavailable
from coordd.mongo.follower import Follower
from coordd.mongo.sink import PymongoSink
from coordd.mongo.sync import SyncWorker
from tests.mongo.helpers import FAST, Daemon, Db, enriched_events, inline

NOW = 1_790_000_000_000.0
WINDOW = 150


class Side:
    """A follower over `db`, with the store it feeds and what its hub would get."""

    def __init__(self, db: Db, **kw: Any) -> None:
        self.store = Store(max_events=WINDOW)
        self.published: list[int] = []
        self.replaced: list[str] = []
        self.follower = Follower(
            PymongoSink(db.client, db.database), lambda: self.store, self.replace,
            [self.publish], max_events=WINDOW, run_sync=inline, **kw)

    def replace(self, epoch: str) -> Store:
        self.replaced.append(epoch)
        self.store = Store(max_events=WINDOW, epoch=epoch)
        return self.store

    def publish(self, events: Sequence[Event]) -> None:
        self.published.extend(ev.seq for ev in events)


def answers(store: Store) -> dict[str, Any]:
    """The REST answers a client compares (bodies as JSON)."""
    def body(answer: tuple[int, bytes]) -> Any:
        assert answer[0] == 200, answer
        return orjson.loads(answer[1])

    out: dict[str, Any] = {}
    for name, params in {
        "events": [], "all": [("limit", "1000")],
        "typed": [("type", "a2a.send,a2a.response"), ("limit", "20")],
        "main": [("role", "conversation.main"), ("viewCategory", "engineering_build")],
        "since": [("since", "1767300000000"), ("limit", "1000")],
    }.items():
        out[name] = body(queries.get_events(store, params, NOW))
        cursor = out[name]["nextCursor"]
        if cursor:
            out[name + "+1"] = body(queries.get_events(store, [*params, ("cursor", cursor)],
                                                       NOW))
    for name, params in {
        "sessions": [], "conv": [("role", "conversation.main"), ("type", "a2a.response")],
        "active": [("status", "ACTIVE,QUIET"), ("limit", "5")],
    }.items():
        out["ws-" + name] = body(queries.get_work_sessions(store, params, NOW))
    for ws_id in sorted(store.view(UNFILTERED).sessions)[:5]:
        out["detail-" + ws_id] = body(queries.get_work_session(store, ws_id, [], NOW))
    out["search"] = body(queries.search_events(store, [("q", "ruda")], NOW))
    out["stats"] = body(queries.get_stats(store, [], NOW))
    return out


async def feed_and_sync(tail: Daemon, worker: SyncWorker, evs: list[dict[str, Any]]) -> None:
    for i in range(0, len(evs), 37):
        tail.feed(evs[i:i + 37])
        await trio.lowlevel.checkpoint()
    await worker.wait_synced(tail.store.last_seq)


async def test_a_follower_answers_like_the_tailing_instance(autojump_clock: Any) -> None:
    db = Db("mongomock")
    tail = Daemon(max_events=WINDOW)
    worker = SyncWorker(db.sink, tail.source(), FAST, run_sync=inline)
    tail.listeners.append(worker.offer)
    side = Side(db)
    evs = enriched_events(460, seed=7)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await feed_and_sync(tail, worker, evs[:400])
        await side.follower.step()
        assert (side.store.epoch, side.store.last_seq) == (tail.store.epoch, 400)
        assert answers(side.store) == answers(tail.store)
        assert side.published == list(range(401 - WINDOW, 401))  # its hub got the window

        await feed_and_sync(tail, worker, evs[400:])
        await side.follower.step()
        assert answers(side.store) == answers(tail.store)
        assert side.published[-60:] == list(range(401, 461))  # then every new event once
        nursery.cancel_scope.cancel()
    stats = side.follower.statistics()
    assert (stats.epoch, stats.lag, stats.last_seq, stats.reloads) == ("E1", 0, 460, 0)


async def test_a_new_epoch_replaces_the_followers_store(autojump_clock: Any) -> None:
    db = Db("mongomock")
    evs = enriched_events(120, seed=8)
    first = Daemon(epoch="E1")
    side = Side(db)
    async with trio.open_nursery() as nursery:
        w1 = SyncWorker(db.sink, first.source(), FAST, run_sync=inline)
        first.listeners.append(w1.offer)
        await nursery.start(w1.run)
        await feed_and_sync(first, w1, evs[:100])
        await side.follower.step()
        assert side.store.epoch == "E1" and side.replaced == []
        nursery.cancel_scope.cancel()
    # The tailing instance starts again on a new log: a new epoch, the same events first.
    second = Daemon(epoch="E2")
    async with trio.open_nursery() as nursery:
        w2 = SyncWorker(db.sink, second.source(), FAST, run_sync=inline)
        second.listeners.append(w2.offer)
        await nursery.start(w2.run)
        await feed_and_sync(second, w2, evs)
        await side.follower.step()
        nursery.cancel_scope.cancel()
    assert side.replaced == ["E2"]
    assert answers(side.store) == answers(second.store)


class FlakySink(PymongoSink):
    """The mongomock sink, unreachable while `down`."""

    down = True

    def read_marker(self) -> Any:
        if self.down:
            raise SinkUnavailable("MongoDB unreachable: connection refused")
        return super().read_marker()


async def test_a_follower_starts_without_mongodb_and_catches_up_by_polling(
        autojump_clock: Any) -> None:
    db = Db("mongomock")
    tail = Daemon()
    worker = SyncWorker(db.sink, tail.source(), FAST, run_sync=inline)
    tail.listeners.append(worker.offer)
    sink = FlakySink(db.client, db.database)
    store = Store()
    follower = Follower(sink, lambda: store, lambda e: store, max_events=1000,
                        poll_interval=0.5, start_timeout=3.0, backoff_max=2.0,
                        run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await feed_and_sync(tail, worker, enriched_events(80, seed=9))
        started = trio.current_time()
        await nursery.start(follower.run)
        assert trio.current_time() - started >= 3.0  # waited for MongoDB, then served
        stats = follower.statistics()
        assert (stats.state, len(store)) == ("down", 0)
        assert stats.last_error is not None and "unreachable" in stats.last_error
        sink.down = False
        await trio.sleep(5)
        assert follower.statistics().state == "connected"
        assert [ev.seq for ev in store.iter_events()] == list(range(1, 81))
        # New events reach it by polling (mongomock has no change streams).
        await feed_and_sync(tail, worker, enriched_events(30, seed=10))
        await trio.sleep(1)
        assert store.last_seq == 110 and not follower.statistics().change_stream
        nursery.cancel_scope.cancel()
