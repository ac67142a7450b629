"""Shared helpers of the MongoDB tier's tests: enrichers, synthetic events, an in-process
daemon stand-in, the sink under test (memory fake or mongomock) and the checks on it."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import mongomock
import orjson
import trio
import trio.lowlevel

from coordd.config import Config, load_config
from coordd.core import queries
from coordd.core.enrich import Enricher
from coordd.core.event import Event, Prepare
from coordd.core.jsvalues import event_hash
from coordd.core.sessions import UNFILTERED
from coordd.core.store import Store
from coordd.mongo.load import load_warm_history
from coordd.mongo.memsink import MemorySink
from coordd.mongo.queries import MongoQueries
from coordd.mongo.schema import (
    EVENTS,
    META,
    SESSIONS,
    event_document,
    legacy_event_document,
    prepare_document,
    utc_now,
)
from coordd.mongo.sessiondocs import session_documents
from coordd.mongo.sink import PymongoSink, SyncMarker
from coordd.mongo.sync import SyncSettings, SyncSource, SyncWorker
from coordd.plugins import keywords
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS
from coordd.synth.gen import generate, lines
from coordd.tail.checkpoint import load_checkpoint
from coordd.tail.pipeline import History, Pipeline
from coordd.tail.tailer import Tailer


def make(prepare: Prepare | None = None) -> Enricher:
    """The built-in classifier without a time budget: on a loaded machine a slow call would
    fall back to another category, and the same line would hash differently."""
    host = PluginHost(load_entry_points=False, extra=[("keywords", keywords)], budget=1e9)
    host.start()
    return Enricher(host, host.vocabulary(), lambda: DEFAULT_MAIN_AGENTS, prepare=prepare)


ENRICHER = make()
#: The enricher of the pipeline when a sync worker runs (its events' `Event.source`).
PREPARING = make(prepare_document)


def json_text(value: Any) -> str:
    """JSON with lone surrogates escaped, as the gateway writes it."""
    return json.dumps(value, ensure_ascii=True)


def enriched_events(n: int, seed: int = 0) -> list[dict[str, Any]]:
    out = []
    for raw in generate(n, seed=seed):
        e = ENRICHER.enrich(raw)
        assert e is not None
        out.append(e)
    return out


class Daemon:
    """What the worker sees of the daemon: a real Store, fed the way the pipeline feeds it
    (number, store, then call the listeners on the loop)."""

    def __init__(self, *, max_events: int = 100_000, epoch: str = "E1") -> None:
        self.store = Store(max_events=max_events, epoch=epoch)
        self.listeners: list[Callable[..., None]] = []

    def feed(self, batch: list[dict[str, Any]]) -> list[Event]:
        seq = self.store.last_seq
        evs = []
        for e in batch:
            seq += 1
            evs.append(Event(seq, e))
        self.store.extend(evs)
        for listener in self.listeners:
            listener(evs)
        return evs

    def feed_prepared(self, raws: list[dict[str, Any]]) -> list[Event]:
        """Like `feed`, from raw events built the way the pipeline builds them when a
        sync worker runs: each with its prepared document (`Event.source`)."""
        seq = self.store.last_seq
        evs = []
        for raw in raws:
            seq += 1
            ev = PREPARING.enrich_event(raw, seq, with_source=True)
            assert ev is not None
            evs.append(ev)
        self.store.extend(evs)
        for listener in self.listeners:
            listener(evs)
        return evs

    def session_docs(self, ws_ids: Any) -> list[dict[str, Any]]:
        store = self.store
        return session_documents(store.view(UNFILTERED).sessions, ws_ids,
                                 override=store.overrides.get, epoch=store.epoch,
                                 now_ms=time.time() * 1000)

    def source(self, reread: Any = None) -> SyncSource:
        store = self.store
        return SyncSource(epoch=lambda: store.epoch, last_seq=lambda: store.last_seq,
                          first_seq=lambda: store.first_seq, events_since=store.events_since,
                          session_docs=self.session_docs, reread=reread)


# ------------------------------------------------------------------ sinks, uniformly


class Db:
    """A sink plus a way to look inside it, whichever implementation it is."""

    def __init__(self, kind: str, ttl_days: int = 90, *, client: Any = None,
                 database: str = "task_monitor") -> None:
        """`kind`: "memory", "mongomock", or "pymongo" (a real `client`)."""
        self.kind = kind
        if kind == "memory":
            self.mem = MemorySink(ttl_days=ttl_days)
            self.sink: Any = self.mem
        else:
            self.client: Any = client if client is not None else mongomock.MongoClient()
            self.database = database
            self.sink = PymongoSink(self.client, database, ttl_days=ttl_days)

    def coll(self, name: str) -> Any:
        return self.client[self.database][name]

    def events(self) -> list[dict[str, Any]]:
        if self.kind == "memory":
            return list(self.mem.events.values())
        return list(self.coll(EVENTS).find({}, {"_id": 0}))

    def sessions(self) -> dict[str, dict[str, Any]]:
        if self.kind == "memory":
            return dict(self.mem.sessions)
        return {d["_id"]: d for d in self.coll(SESSIONS).find()}

    def marker(self) -> SyncMarker | None:
        return self.sink.read_marker()  # type: ignore[no-any-return]

    def forget_marker(self) -> None:
        if self.kind == "memory":
            self.mem.marker = None
        else:
            self.coll(META).delete_many({})


async def inline(fn: Callable[..., Any], *args: Any, **_: Any) -> Any:
    """Run a (fake) sink call on the loop: virtual time stays exact under autojump_clock."""
    return fn(*args)


NOW = dt.datetime(2026, 3, 1, 12, 0, 0)
#: The queries' clock of the helpers (`mongo`, `memory`, `picture`, `source`), epoch ms.
CLOCK_MS = 1_790_000_000_000.0
FAST = SyncSettings(batch_size=50, batch_interval=0.01, backoff_initial=0.01,
                    backoff_max=0.05, flush_timeout=1.0)


async def run_until_synced(worker: SyncWorker, seq: int) -> None:
    with trio.fail_after(60):  # a hang guard, not a timing assertion
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await worker.wait_synced(seq)
            nursery.cancel_scope.cancel()


def assert_exactly_once(db: Db, events: list[Event]) -> None:
    docs = db.events()
    hashes = [d["eventHash"] for d in docs]
    assert len(hashes) == len(set(hashes)), "a duplicate document"
    want = {event_hash(ev.as_dict()): ev.seq for ev in events}
    assert {h: d["seq"] for h, d in zip(hashes, docs, strict=True)} == want


DAY = dt.timedelta(days=1)


def retention_fixture(db: Db, now: dt.datetime) -> dict[str, Any]:
    """Events of an old session, a live session (with old events), sessionless events old
    and new, and the old monitor's documents, written through the sink."""
    old, recent = now - 100 * DAY, now - DAY
    evs = [Event(i + 1, e) for i, e in enumerate(enriched_events(400))]
    by_ws: dict[str, list[Event]] = {}
    for ev in evs:
        if ev.ws_id:
            by_ws.setdefault(ev.ws_id, []).append(ev)
    ws_old, ws_live = list(by_ws)[:2]
    alone = [ev for ev in evs if not ev.ws_id][:4]
    sink = db.sink

    def put(batch: list[Event], at: dt.datetime, has_session: bool) -> None:
        sink.write_events([event_document(ev, epoch="E", inserted_at=at,
                                          has_session=has_session) for ev in batch])

    sink.upsert_sessions([{"workSessionId": ws_old, "updatedAt": old}])
    sink.upsert_sessions([{"workSessionId": ws_live, "updatedAt": recent}])
    put(by_ws[ws_old], old, True)
    half = len(by_ws[ws_live]) // 2
    put(by_ws[ws_live][:half], old, True)  # inserted long ago, but the session lives on
    put(by_ws[ws_live][half:], recent, True)
    put(alone[:2], old, False)
    put(alone[2:], recent, False)
    legacy_old = legacy_event_document(dict(type="legacy.thing", ts=1000, agentId="a"))
    legacy_new = legacy_event_document(dict(
        type="legacy.thing", ts=(recent - dt.datetime(1970, 1, 1)) // dt.timedelta(
            milliseconds=1), agentId="a"))
    legacy_sess = legacy_event_document(dict(type="legacy.s", ts=5, agentId="a",
                                             data={"workSessionId": ws_old}))
    for doc in (legacy_old, legacy_new, legacy_sess):
        if db.kind == "memory":
            db.mem.events[doc["eventHash"]] = doc
        else:
            db.coll(EVENTS).insert_one(dict(doc))
    return {"gone": [*by_ws[ws_old], *alone[:2]], "kept": [*by_ws[ws_live], *alone[2:]],
            "ws": [ws_old, ws_live],
            "legacy_gone": [legacy_old, legacy_sess], "legacy_kept": [legacy_new]}


def special() -> list[dict[str, Any]]:
    """Events whose text would mean something else as a regular expression."""
    out = []
    for i, msg in enumerate(("regex chars .* and (x) here", "plain text and more",
                             "a.b is not a*b", "Ünïcode ÉCOLE 코드")):
        raw = {"type": "a2a.send", "agentId": "ruda", "ts": 1_771_000_000_000 + i,
               "data": {"fromAgent": "ruda", "toAgent": "eden", "message": msg,
                        "workSessionId": "ws_rx", "conversationId": f"c_rx{i}"}}
        e = ENRICHER.enrich(raw)
        assert e is not None
        out.append(e)
    return out


class World:
    """One history in three places: MongoDB (all of it, as the sync worker writes it), a
    small store (its newest 100 events, like a daemon whose window is smaller than the
    history) and a big store (all of it: what memory would answer if it held everything).
    """

    def __init__(self, db: Db | None = None) -> None:
        self.db = db if db is not None else Db("mongomock")
        self.db.sink.ensure_schema()
        self.small = Daemon(max_events=100)
        self.big = Daemon(max_events=100_000)
        self.events = enriched_events(340) + special()
        self.small.feed(self.events)
        stored = self.big.feed(self.events)
        sink, store = self.db.sink, self.big.store
        sessions = self.big.session_docs({ev.ws_id for ev in stored if ev.ws_id})
        sink.upsert_sessions(sessions)
        now = utc_now()
        sink.write_events([event_document(ev, epoch=store.epoch, inserted_at=now,
                                          has_session=ev.ws_id is not None) for ev in stored])
        sink.write_marker(SyncMarker(store.epoch, store.last_seq), now)
        self.mq = MongoQueries(self.db.sink.db, lambda: self.small.store)


def write(path: Path, n: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        for raw in lines(n, seed=seed):
            f.write(raw)


async def run(log: Path, state: Path, *, db: Db | None = None,
              history: Sequence[Event] | None = None) -> tuple[Store, CountingEnricher]:
    """One daemon run: read what is on disk (history from `history` when given), sync it
    to `db` when given, stop (the checkpoint is written on the way out)."""
    cp = load_checkpoint(state)
    store = Store(max_events=MAX)
    enricher = CountingEnricher()
    tailer = Tailer(log, checkpoint=cp, watch="poll", poll_interval=0.05, history_limit=MAX)
    p = Pipeline(tailer, enricher, store, state_dir=state, checkpoint=cp,
                 checkpoint_interval=0.01)
    warm = History(history, "MongoDB") if history is not None else None
    worker = SyncWorker(db.sink, source(store), FAST) if db is not None else None
    if worker is not None:
        p.listeners.append(worker.offer)
    with trio.fail_after(60):  # a hang guard, not a timing assertion
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(p.run, history=warm))
            if worker is not None:
                await nursery.start(worker.run)
                await worker.wait_synced(store.last_seq)
            nursery.cancel_scope.cancel()
    return store, enricher


def picture(store: Store) -> dict[str, Any]:
    """Everything a client can see of a store."""
    def body(answer: tuple[int, bytes]) -> Any:
        return orjson.loads(answer[1])

    return {
        "events": [(ev.seq, ev.json) for ev in store.iter_events()],
        "epoch": store.epoch, "last_seq": store.last_seq,
        "rest": body(queries.get_events(store, [("limit", "1000")], CLOCK_MS)),
        "sessions": body(queries.get_work_sessions(store, [("limit", "1000")], CLOCK_MS)),
        "conversations": body(queries.get_work_sessions(
            store, [("role", "conversation.main"), ("type", "a2a.response")], CLOCK_MS)),
    }


async def warm(db: Db, state: Path, log: Path) -> list[Event] | None:
    return await load_warm_history(db.sink, load_checkpoint(state), log, max_events=MAX,
                                   max_wait=30)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait for a condition (a hang guard, not a timing assertion)."""
    for _ in range(600):
        if predicate():
            return
        await trio.sleep(0.05)
    raise AssertionError("condition not met")


MAX = 200


class CountingEnricher:
    """The test enricher, counting the events it is asked to enrich."""

    def __init__(self) -> None:
        self.rejected = ENRICHER.rejected
        self.calls = 0

    def enrich_event(self, value: Any, seq: int = 0, *, with_source: bool = False) -> Any:
        self.calls += 1
        return ENRICHER.enrich_event(value, seq, with_source=with_source)


def source(store: Store) -> SyncSource:
    from coordd.core.sessions import UNFILTERED
    from coordd.mongo.sessiondocs import session_documents

    return SyncSource(
        epoch=lambda: store.epoch, last_seq=lambda: store.last_seq,
        first_seq=lambda: store.first_seq, events_since=store.events_since,
        session_docs=lambda ids: session_documents(
            store.view(UNFILTERED).sessions, ids, override=store.overrides.get,
            epoch=store.epoch, now_ms=CLOCK_MS))


def service_config(tmp_path: Path, name: str, *, toml: Path | None = None,
                   **extra: dict[str, object]) -> Config:
    """A Service configuration on `tmp_path` with the MongoDB tier on (its client, mongomock,
    is given to the Service), state under `tmp_path/name`; `extra` tables are merged in."""
    overrides: dict[str, dict[str, object]] = {
        "log": {"path": str(tmp_path / "logs" / "coordination-events.ndjson"),
                "poll_interval": 0.05},
        "state": {"dir": str(tmp_path / name / "state")},
        "server": {"port": 0, "shutdown_grace": 1.0},
        "openclaw": {"config": str(tmp_path / "openclaw.json"),
                     "category_overrides": str(tmp_path / "overrides.json")},
        # Set, so the tier is on; the client itself is given (mongomock).
        "mongo": {"uri": "mongodb://mongomock.invalid/", "batch_interval": 0.01},
        "mode": {"poll_interval": 0.05},
    }
    for table, values in extra.items():
        overrides.setdefault(table, {}).update(values)
    return load_config(toml, env={}, overrides=overrides)


P = list[tuple[str, str]]


async def mongo(fn: Callable[..., Any], params: P) -> dict[str, Any]:
    code, body = await fn(params, CLOCK_MS)
    assert code == 200, body
    return orjson.loads(body)  # type: ignore[no-any-return]  # a JSON object


def memory(fn: Callable[..., Any], store: Store, params: P) -> dict[str, Any]:
    code, body = fn(store, params, CLOCK_MS)
    assert code == 200, body
    return orjson.loads(body)  # type: ignore[no-any-return]  # a JSON object


def same(a: dict[str, Any], b: dict[str, Any], *, but: tuple[str, ...] = ("tier",)) -> None:
    assert {k: v for k, v in a.items() if k not in but} == {
        k: v for k, v in b.items() if k not in but}


async def walk(mq: MongoQueries, params: P) -> tuple[list[dict[str, Any]], list[str]]:
    events: list[dict[str, Any]] = []
    tiers = []
    cursor = None
    for _ in range(1000):
        page = await mongo(mq.get_events, params + ([("cursor", cursor)] if cursor else []))
        tiers.append(page["tier"])
        events[:0] = page["events"]
        cursor = page["nextCursor"]
        if cursor is None:
            return events, tiers
    raise AssertionError("the cursor never ended")
