"""The MongoDB sync worker against the in-memory fake and against mongomock (same seam as the
real client): exactly-once delivery, batching, the durable marker, epochs, session
upserts, catch-up from memory and from the log, back-off, retention."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel

from coordd.core.event import Event, parse_line
from coordd.core.jsvalues import event_hash, loads
from coordd.core.pacing import backoff_delay
from coordd.core.sessions import UNFILTERED
from coordd.mongo.memsink import MemorySink
from coordd.mongo.reread import LogRereader, iter_lines
from coordd.mongo.schema import (
    EVENTS,
    bson_safe,
    event_document,
    legacy_event_document,
    utc_now,
)
from coordd.mongo.sessiondocs import session_document
from coordd.mongo.sink import PymongoSink, SyncMarker
from coordd.mongo.sync import SyncSettings, SyncSource, SyncWorker
from coordd.synth.gen import generate, lines
from coordd.tail.checkpoint import Checkpoint, file_id, read_prefix
from tests.mongo.helpers import (
    DAY,
    ENRICHER,
    FAST,
    NOW,
    Daemon,
    Db,
    assert_exactly_once,
    enriched_events,
    inline,
    json_text,
    make,
    retention_fixture,
    run_until_synced,
)


@pytest.fixture(params=["memory", "mongomock"])
def db(request: pytest.FixtureRequest) -> Db:
    return Db(request.param)


# ------------------------------------------------------------------ delivery


async def test_every_event_lands_once_with_its_sessions_and_the_marker(db: Db) -> None:
    d = Daemon()
    worker = SyncWorker(db.sink, d.source(), FAST)
    d.listeners.append(worker.offer)
    evs = enriched_events(600)
    stored: list[Event] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            for i in range(0, len(evs), 37):
                stored += d.feed(evs[i:i + 37])
                await trio.lowlevel.checkpoint()
            await worker.wait_synced(stored[-1].seq)
            nursery.cancel_scope.cancel()
    assert_exactly_once(db, stored)
    assert db.marker() == SyncMarker("E1", 600)
    view = d.store.view(UNFILTERED).sessions
    sessions = db.sessions()
    assert set(sessions) == set(view)
    for ws_id, agg in view.items():
        want = session_document(agg, now_ms=time.time() * 1000, epoch="E1")
        got = {k: sessions[ws_id][k] for k in want if k not in ("updatedAt", "status")}
        assert got == {k: v for k, v in want.items() if k not in ("updatedAt", "status")}
    with_session = {d["eventHash"] for d in db.events() if d["retention"] == "session"}
    assert with_session == {event_hash(ev.as_dict()) for ev in stored if ev.ws_id}
    stats = worker.statistics()
    assert (stats.state, stats.lag, stats.inserted, stats.duplicates) == ("connected", 0, 600, 0)
    assert stats.batches >= 600 // FAST.batch_size


async def test_prepared_documents_are_kept_only_while_buffered() -> None:
    """The pipeline's prepared documents (`Event.source`) are what the worker writes, and
    it drops them: for events it does not buffer, beyond the first 2,000 it buffers, and
    once written. None stays on a stored event. (The in-memory sink: mongomock takes
    half a minute over 2,600 events, and the documents are the sink's input either way.)"""
    db = Db("memory")
    d = Daemon()
    worker = SyncWorker(db.sink, d.source(), SyncSettings(batch_size=100, buffer_events=2_500))
    d.listeners.append(worker.offer)
    raws = list(generate(2_600, seed=4))
    stored = d.feed_prepared(raws[:1_500]) + d.feed_prepared(raws[1_500:])
    # (Generated logs hold a few lone surrogates: those events have no prepared document.)
    assert [ev.source is not None for ev in stored] == [
        i < 2_000 and b"\\ud" not in ev.json for i, ev in enumerate(stored)]
    s = worker.statistics()
    assert (s.pending, s.dropped) == (2_500, 100)
    want = {ev.seq: event_document(ev, epoch="E1", inserted_at=NOW, has_session=True)
            for ev in stored}
    await run_until_synced(worker, 2_600)  # the last 100 caught up from memory
    assert not any(ev.source is not None for ev in d.store.iter_events())
    assert_exactly_once(db, stored)
    skip = ("_id", "insertedAt", "retention")
    for doc in db.events():
        assert ({k: v for k, v in doc.items() if k not in skip}
                == {k: v for k, v in want[doc["seq"]].items() if k not in skip})


async def test_an_epoch_change_drops_the_prepared_documents() -> None:
    d = Daemon()
    worker = SyncWorker(MemorySink(), d.source(), FAST)
    d.listeners.append(worker.offer)
    stored = d.feed_prepared(list(generate(30, seed=5)))
    worker._sync_epoch()
    d.store.epoch = "E2"
    worker._sync_epoch()
    assert worker.statistics().pending == 0
    assert not any(ev.source is not None for ev in stored)


async def test_batches_by_size_and_by_time(autojump_clock: Any) -> None:
    sink = MemorySink()
    batches: list[tuple[float, int]] = []
    write = sink.write_events

    def recording(docs: Any) -> Any:
        batches.append((trio.current_time(), len(docs)))
        return write(docs)

    sink.write_events = recording  # type: ignore[method-assign]
    d = Daemon()
    settings = SyncSettings(batch_size=200, batch_interval=0.2)
    worker = SyncWorker(sink, d.source(), settings, run_sync=inline)
    d.listeners.append(worker.offer)
    evs = enriched_events(520)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        t0 = trio.current_time()
        d.feed(evs[:5])
        await trio.sleep(0.1)
        d.feed(evs[5:10])  # joins the batch: the oldest event has waited 0.1 s only
        await worker.wait_synced(10)
        assert [n for _, n in batches] == [10]
        assert batches[0][0] == pytest.approx(t0 + 0.2)
        t1 = trio.current_time()
        d.feed(evs[10:520])  # 510 at once: two full batches at once, the rest on time
        await worker.wait_synced(520)
        nursery.cancel_scope.cancel()
    assert [n for _, n in batches[1:]] == [200, 200, 110]
    assert [t for t, _ in batches[1:3]] == [pytest.approx(t1), pytest.approx(t1)]
    assert batches[3][0] <= t1 + 0.2 + 1e-6


async def test_a_replay_after_a_lost_marker_writes_nothing_twice(db: Db) -> None:
    d = Daemon()
    stored = d.feed(enriched_events(300))
    await run_until_synced(SyncWorker(db.sink, d.source(), FAST), 300)
    db.forget_marker()
    again = SyncWorker(db.sink, d.source(), FAST)
    await run_until_synced(again, 300)
    assert_exactly_once(db, stored)
    stats = again.statistics()
    assert (stats.inserted, stats.duplicates, stats.stamped) == (0, 300, 0)


async def test_a_restart_resumes_exactly_at_the_marker(db: Db) -> None:
    evs = enriched_events(600)
    first = Daemon()
    first.feed(evs[:300])
    await run_until_synced(SyncWorker(db.sink, first.source(), FAST), 300)
    # The restarted daemon rebuilt its memory from the log: same epoch, same seqs.
    second = Daemon()
    stored = second.feed(evs)
    worker = SyncWorker(db.sink, second.source(), FAST)
    await run_until_synced(worker, 600)
    assert_exactly_once(db, stored)
    stats = worker.statistics()
    assert (stats.inserted, stats.duplicates) == (300, 0)  # nothing before the marker rewritten
    assert db.marker() == SyncMarker("E1", 600)


async def test_a_new_epoch_resyncs_by_hash(db: Db) -> None:
    evs = enriched_events(200)
    first = Daemon(epoch="E1")
    first.feed(evs)
    await run_until_synced(SyncWorker(db.sink, first.source(), FAST), 200)
    second = Daemon(epoch="E2")
    stored = second.feed(evs)
    worker = SyncWorker(db.sink, second.source(), FAST)
    await run_until_synced(worker, 200)
    assert len(db.events()) == 200
    assert (worker.statistics().inserted, worker.statistics().duplicates) == (0, 200)
    assert db.marker() == SyncMarker("E2", 200)
    assert {d["eventHash"] for d in db.events()} == {event_hash(e.as_dict()) for e in stored}
    # Moved into the new epoch: what follows (E2, seq) finds every event.
    assert worker.statistics().stamped == 200
    assert {(d["epoch"], d["seq"]) for d in db.events()} == {("E2", e.seq) for e in stored}


async def test_a_placeholder_epoch_at_start_does_not_cause_a_resync(autojump_clock: Any) -> None:
    # Before the pipeline has read its history the store's epoch is a placeholder.
    sink = MemorySink()
    sink.marker = SyncMarker("E1", 100)
    d = Daemon(epoch="boot")
    worker = SyncWorker(sink, d.source(), FAST, run_sync=inline)
    d.listeners.append(worker.offer)
    evs = enriched_events(150)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(5)
        d.store.epoch = "E1"
        d.feed(evs)  # history: seqs 1..150, of which 1..100 are in MongoDB already
        await worker.wait_synced(150)
        nursery.cancel_scope.cancel()
    assert len(sink.events) == 50
    assert {doc["seq"] for doc in sink.events.values()} == set(range(101, 151))


async def test_old_monitor_documents_are_taken_over_not_duplicated(db: Db) -> None:
    d = Daemon()
    stored = d.feed(enriched_events(300))
    # The old monitor synced the first 200 events (its recipe, ts as a JavaScript double).
    legacy = []
    for ev in stored[:200]:
        doc = bson_safe(legacy_event_document(ev.as_dict()))  # what its driver stored
        doc["ts"] = float(doc["ts"])
        legacy.append(doc)
    if db.kind == "memory":
        db.mem.events.update({doc["eventHash"]: doc for doc in legacy})
    else:
        db.coll(EVENTS).insert_many([dict(doc) for doc in legacy])
    worker = SyncWorker(db.sink, d.source(), FAST)
    await run_until_synced(worker, 300)
    assert_exactly_once(db, stored)  # the old documents now carry their seq too
    stats = worker.statistics()
    assert (stats.inserted, stats.duplicates, stats.stamped) == (100, 200, 200)


async def test_a_category_override_rewrites_the_session_document(db: Db) -> None:
    d = Daemon()
    stored = d.feed(enriched_events(100))
    ws_id = next(ev.ws_id for ev in stored if ev.ws_id)
    worker = SyncWorker(db.sink, d.source(), FAST)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await worker.wait_synced(100)
            assert db.sessions()[ws_id]["categorySource"] == "event"
            d.store.overrides.set(ws_id, "legal_compliance", updated_by=None, now_ms=0)
            before = worker.statistics().sessions
            worker.refresh_sessions([ws_id])
            for _ in range(3000):
                if worker.statistics().sessions > before:
                    break
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    doc = db.sessions()[ws_id]
    assert (doc["collabCategory"], doc["categorySource"]) == ("legal_compliance",
                                                               "manual_override")


async def test_session_docs_failing_does_not_stop_the_events(caplog: Any) -> None:
    sink = MemorySink()
    d = Daemon()
    stored = d.feed(enriched_events(80))

    def broken(ids: Any) -> Any:
        raise RuntimeError("integrator bug")

    src = d.source()
    src = SyncSource(src.epoch, src.last_seq, src.first_seq, src.events_since, broken)
    await run_until_synced(SyncWorker(sink, src, FAST), 80)
    assert len(sink.events) == 80 and not sink.sessions
    assert {doc["retention"] for doc in sink.events.values()} == {"ttl"}
    assert "session_docs failed" in caplog.text
    assert stored[-1].seq == 80


# ------------------------------------------------------------------ outages


async def test_outage_keeps_memory_bounded_then_catches_up(autojump_clock: Any) -> None:
    sink = MemorySink()
    sink.down = "connection refused"
    d = Daemon()
    settings = SyncSettings(batch_size=50, batch_interval=0.2, buffer_events=100,
                            backoff_initial=0.5, backoff_max=5.0)
    worker = SyncWorker(sink, d.source(), settings, run_sync=inline, rng=random.Random(1))
    d.listeners.append(worker.offer)
    evs = enriched_events(1000)
    stored: list[Event] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        for i in range(0, 1000, 10):
            stored += d.feed(evs[i:i + 10])  # offer returns at once, MongoDB or not
            await trio.sleep(0.05)
        stats = worker.statistics()
        assert stats.state == "down"
        assert stats.last_error == "connection refused"
        assert stats.lag == 1000
        assert stats.pending <= 100
        assert stats.dropped >= 900
        assert stats.retry_in > 0
        assert stats.consecutive_failures >= 3
        sink.down = None
        await worker.wait_synced(1000)
        nursery.cancel_scope.cancel()
    assert len(sink.events) == 1000
    assert {doc["seq"] for doc in sink.events.values()} == set(range(1, 1001))
    stats = worker.statistics()
    assert (stats.state, stats.lag, stats.duplicates) == ("connected", 0, 0)
    assert stats.from_memory >= 800


async def test_backoff_grows_with_jitter_up_to_the_cap(autojump_clock: Any) -> None:
    sink = MemorySink()
    sink.down = "no route to host"
    attempts: list[float] = []
    enter = sink._enter

    def recording(name: str) -> None:
        attempts.append(trio.current_time())
        enter(name)

    sink._enter = recording  # type: ignore[method-assign]
    d = Daemon()
    settings = SyncSettings(backoff_initial=1.0, backoff_max=16.0)
    worker = SyncWorker(sink, d.source(), settings, run_sync=inline, rng=random.Random(7))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(gaps) >= 10
    for i, gap in enumerate(gaps):
        ceiling = min(16.0, 2.0 ** i)
        assert ceiling / 2 - 1e-9 <= gap <= ceiling + 1e-9, (i, gap)
    assert len({round(g, 6) for g in gaps[5:]}) > 1  # jitter: capped delays still differ


def test_backoff_delay_bounds() -> None:
    rng = random.Random(3)
    for failures in range(1, 80):
        ceiling = min(30.0, 0.25 * 2 ** (failures - 1))
        for _ in range(20):
            assert ceiling / 2 <= backoff_delay(failures, 0.25, 30.0, rng) <= ceiling


async def test_other_errors_degrade_then_recover(autojump_clock: Any) -> None:
    sink = MemorySink()
    d = Daemon()
    d.feed(enriched_events(20))
    sink.failures = [ValueError("write rejected")] * 2
    worker = SyncWorker(sink, d.source(), FAST, run_sync=inline)
    seen: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        while not seen or seen[-1] != "connected":
            await trio.sleep(0.001)
            stats = worker.statistics()
            if not seen or seen[-1] != stats.state:
                seen.append(stats.state)
        await worker.wait_synced(20)
        nursery.cancel_scope.cancel()
    assert "degraded" in seen
    stats = worker.statistics()
    assert stats.errors == 2 and stats.last_error == "ValueError: write rejected"
    assert len(sink.events) == 20 and stats.rejected == 0


async def test_one_document_mongodb_refuses_is_skipped_not_retried_forever(
        autojump_clock: Any, caplog: Any) -> None:
    class Picky(MemorySink):
        def write_events(self, docs: Any) -> Any:
            if any(doc["seq"] == 13 for doc in docs):
                raise ValueError("document is invalid")
            return super().write_events(docs)

    sink = Picky()
    d = Daemon()
    d.feed(enriched_events(40))
    worker = SyncWorker(sink, d.source(), SyncSettings(batch_size=10), run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await worker.wait_synced(40)
        nursery.cancel_scope.cancel()
    assert {doc["seq"] for doc in sink.events.values()} == set(range(1, 41)) - {13}
    stats = worker.statistics()
    assert (stats.rejected, stats.state, sink.marker) == (1, "connected", SyncMarker("E1", 40))
    assert "refuses event seq 13" in caplog.text


class _Proxy:
    """Every attribute and item of `inner`, except what a subclass defines."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __getitem__(self, name: str) -> Any:
        return self._inner[name]


class _OneMixedFailure(_Proxy):
    """An events collection whose first bulk insert fails for two reasons at once: its
    first document is already there (11000) and its second is refused (121, validation);
    the rest of that batch is inserted, as MongoDB does for an unordered insert."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.failed: list[Any] = []

    def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> Any:
        from pymongo.errors import BulkWriteError

        if self.failed:
            return self._inner.insert_many(docs, ordered=ordered)
        self._inner.insert_one(dict(docs[0]))
        self._inner.insert_many([dict(d) for d in docs[2:]], ordered=False)
        self.failed.append(docs[1]["seq"])
        raise BulkWriteError({
            "writeErrors": [
                {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error"},
                {"index": 1, "code": 121, "errmsg": "Document failed validation"}],
            "writeConcernErrors": [], "nInserted": len(docs) - 2})


async def test_a_bulk_error_besides_duplicates_is_not_swallowed(autojump_clock: Any) -> None:
    db = Db("mongomock")
    events_coll = _OneMixedFailure(db.coll(EVENTS))

    class Database(_Proxy):
        def __getitem__(self, name: str) -> Any:
            return events_coll if name == EVENTS else self._inner[name]

    class Client(_Proxy):
        def __getitem__(self, name: str) -> Any:
            return Database(self._inner[name])

    sink = PymongoSink(Client(db.client), db.database)
    docs = [event_document(ev, epoch="E1", inserted_at=NOW, has_session=False)
            for ev in Daemon().feed(enriched_events(5))]
    with pytest.raises(Exception, match="Document failed validation"):
        sink.write_events(docs)
    assert sink.read_marker() is None
    # Through the worker: the failed attempt does not move the marker past the refused
    # event; the retry writes it, and every event lands exactly once.
    db2 = Db("mongomock")
    events_coll = _OneMixedFailure(db2.coll(EVENTS))
    sink = PymongoSink(Client(db2.client), db2.database)
    d = Daemon()
    evs = d.feed(enriched_events(30))
    worker = SyncWorker(sink, d.source(), FAST, run_sync=inline)
    markers: list[Any] = []
    real_write_marker = sink.write_marker

    def write_marker(marker: SyncMarker, at: Any) -> None:
        markers.append(marker)
        real_write_marker(marker, at)

    sink.write_marker = write_marker  # type: ignore[method-assign]
    await run_until_synced(worker, 30)
    assert events_coll.failed, "the mixed failure was not exercised"
    assert worker.statistics().errors >= 1
    assert_exactly_once(db2, evs)
    assert markers and markers[-1] == SyncMarker("E1", 30)


async def test_lone_surrogates_and_huge_integers_are_stored_as_javascript_did() -> None:
    db = Db("mongomock")
    d = Daemon()
    raw = {"type": "a2a.send", "agentId": "ruda", "ts": 1_771_330_358_110,
           "data": {"message": "bad \udc00 text", "n": 123456789012345678901234,
                    "workSessionId": "ws_s"}}
    event = ENRICHER.enrich(loads(json_text(raw)))
    assert event is not None and "\udc00" in event["data"]["message"]
    stored = d.feed([event])
    await run_until_synced(SyncWorker(db.sink, d.source(), FAST), 1)
    (doc,) = db.events()
    assert doc["eventHash"] == event_hash(stored[0].as_dict())
    assert doc["data"]["message"] == "bad \ufffd text"
    assert doc["data"]["n"] == pytest.approx(1.2345678901234568e23)


def test_offer_keeps_the_buffer_contiguous() -> None:
    async def main() -> None:
        d = Daemon()
        worker = SyncWorker(MemorySink(), d.source(), SyncSettings(batch_size=10,
                                                                   buffer_events=25))
        evs = [Event(i + 1, e) for i, e in enumerate(enriched_events(60))]
        worker.offer(evs[0:10])
        worker.offer(evs[5:15])  # overlaps: only 11..15 are new
        worker.offer(evs[20:30])  # a hole (16..20 missing): left to catch-up
        worker.offer(evs[15:40])  # continues; only 10 fit
        assert [e.seq for e in worker._pending] == list(range(1, 26))
        s = worker.statistics()
        assert (s.pending, s.dropped) == (25, 10 + 15)
    trio.run(main)


# ------------------------------------------------------------------ catch-up from the log


def write_log(tmp_path: Path, n: int) -> tuple[Path, list[dict[str, Any]]]:
    """A live log and one rotated sibling, with junk and an over-long line; returns the live
    path and the accepted events in log order."""
    raw = list(lines(n, seed=5, junk=0.05))
    raw.insert(n // 3, b'{"type":"x","data":{"pad":"' + b"y" * 5000 + b'"}}')
    half = len(raw) // 2
    sibling = tmp_path / "coordination-events-1.ndjson"
    live = tmp_path / "coordination-events.ndjson"
    sibling.write_bytes(b"".join(line + b"\n" for line in raw[:half]))
    os.utime(sibling, (1, 1))  # older than the live file
    live.write_bytes(b"".join(line + b"\n" for line in raw[half:]))
    accepted = []
    for line in raw:
        if len(line) > 4096:
            continue  # the tailer (max_line_bytes) skips it
        parsed = parse_line(line)
        if parsed.reason is None:
            e = ENRICHER.enrich(parsed.value)
            if e is not None:
                accepted.append(e)
    return live, accepted


def anchor_of(path: Path, offset: int, seq: int, epoch: str = "E1") -> Checkpoint:
    fd = os.open(path, os.O_RDONLY)
    try:
        return Checkpoint(file_id(os.fstat(fd), read_prefix(fd)), offset, seq, epoch)
    finally:
        os.close(fd)


def test_iter_lines_gives_complete_lines_and_skips_long_ones(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"a\n" + b"x" * 50 + b"\nbb\r\n\ncc")
    fd = os.open(p, os.O_RDONLY)
    try:
        got = list(iter_lines(fd, 0, os.fstat(fd).st_size, max_line_bytes=10, chunk=4))
        assert got == [(0, b"a"), (53, b"bb\r"), (57, b"")]  # "cc" has no newline yet
        assert list(iter_lines(fd, 2, 52, max_line_bytes=100)) == []
    finally:
        os.close(fd)


@pytest.mark.parametrize("from_seq", [0, 1, 77, 400])
async def test_reread_numbers_events_like_the_pipeline(tmp_path: Path, from_seq: int) -> None:
    live, accepted = write_log(tmp_path, 600)
    last = 1000  # the checkpoint's seq: the last accepted event has it
    first = last - len(accepted) + 1
    rr = LogRereader(live, make(), lambda: anchor_of(live, live.stat().st_size, last),
                     max_line_bytes=4096, batch_size=64)
    got: list[Event] = []
    async for batch in rr(first - 1 + from_seq):
        assert len(batch) <= 64
        got += batch
    want = [(first + i, event_hash(e)) for i, e in enumerate(accepted)][from_seq:]
    assert [(ev.seq, event_hash(ev.as_dict())) for ev in got] == want


async def test_reread_stops_at_the_anchor_and_needs_its_file(tmp_path: Path) -> None:
    live, accepted = write_log(tmp_path, 200)
    data = live.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1  # the checkpoint is mid-file
    n_live_before = sum(1 for line in data[:cut].split(b"\n")[:-1]
                        if (p := parse_line(line)).reason is None and ENRICHER.enrich(p.value))
    n_sibling = len(accepted) - sum(
        1 for line in data.split(b"\n")[:-1]
        if (p := parse_line(line)).reason is None and ENRICHER.enrich(p.value))
    cp = anchor_of(live, cut, 500)
    rr = LogRereader(live, make(), lambda: cp, max_line_bytes=4096)
    got = [ev async for batch in rr(0) for ev in batch]
    assert [ev.seq for ev in got] == list(range(500 - n_sibling - n_live_before + 1, 501))
    live.unlink()
    live.write_bytes(b"{}\n" + data)  # another file now: the anchor is gone
    assert [ev async for batch in rr(0) for ev in batch] == []


async def test_catch_up_from_the_log_when_memory_no_longer_holds_it(tmp_path: Path) -> None:
    live, accepted = write_log(tmp_path, 500)
    d = Daemon(max_events=60)
    sink = MemorySink()
    sink.down = "connection refused"
    cp_holder: list[Checkpoint] = []
    asked: list[int] = []

    def anchor() -> Checkpoint | None:
        # The first time, no checkpoint yet (it is written every second or so): the
        # worker must wait for one rather than declare the gap lost.
        asked.append(1)
        return cp_holder[0] if len(asked) > 1 else None

    rr = LogRereader(live, make(), anchor, max_line_bytes=4096, batch_size=70)
    settings = SyncSettings(batch_size=25, batch_interval=0.01, buffer_events=40,
                            backoff_initial=0.01, backoff_max=0.02, idle_poll=0.01)
    worker = SyncWorker(sink, d.source(reread=rr), settings)
    d.listeners.append(worker.offer)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            stored = []
            for i in range(0, len(accepted), 50):
                stored += d.feed(accepted[i:i + 50])
                await trio.sleep(0.001)
            cp_holder.append(anchor_of(live, live.stat().st_size, stored[-1].seq))
            assert worker.statistics().lag == len(accepted)
            sink.down = None
            await worker.wait_synced(stored[-1].seq)
            nursery.cancel_scope.cancel()
    stats = worker.statistics()
    assert stats.from_log > 0 and stats.unrecoverable == 0
    got = {doc["eventHash"]: doc["seq"] for doc in sink.events.values()}
    assert got == {event_hash(ev.as_dict()): ev.seq for ev in stored}
    assert stats.duplicates == 0


async def test_without_a_log_the_gap_is_reported_and_the_rest_lands(
        autojump_clock: Any, caplog: Any) -> None:
    d = Daemon(max_events=100)
    sink = MemorySink()
    sink.down = "down"
    worker = SyncWorker(sink, d.source(), SyncSettings(batch_size=20, buffer_events=20),
                        run_sync=inline)
    d.listeners.append(worker.offer)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        stored = d.feed(enriched_events(500))
        await trio.sleep(10)
        sink.down = None
        await worker.wait_synced(500)
        nursery.cancel_scope.cancel()
    stats = worker.statistics()
    # The buffer kept 1..20; memory kept 401..500; 21..400 are gone for good.
    assert stats.unrecoverable == 380
    assert {doc["seq"] for doc in sink.events.values()} == {
        ev.seq for ev in stored if ev.seq <= 20 or ev.seq > 400}
    assert "neither in memory nor in the log" in caplog.text


# ------------------------------------------------------------------ retention

@pytest.mark.parametrize("kind", ["memory", "mongomock"])
def test_retention_removes_sessions_with_their_events_never_half(kind: str) -> None:
    # mongomock emulates TTL indexes but ignores their partial filter: without a TTL
    # index here it cannot remove session events behind the retention pass's back.
    db = Db(kind, ttl_days=0)
    now = utc_now()
    f = retention_fixture(db, now)
    res = db.sink.expire(now - 90 * DAY, 1000)
    hashes = {d["eventHash"] for d in db.events()}
    assert not hashes & {event_hash(ev.as_dict()) for ev in f["gone"]}
    assert {event_hash(ev.as_dict()) for ev in f["kept"]} <= hashes
    assert not hashes & {d["eventHash"] for d in f["legacy_gone"]}
    assert {d["eventHash"] for d in f["legacy_kept"]} <= hashes
    _, ws_live = f["ws"]
    assert set(db.sessions()) == {ws_live}
    assert res.sessions == 1
    assert res.events == len(f["gone"]) + len(f["legacy_gone"])
    assert db.sink.expire(now - 90 * DAY, 1000) == type(res)(0, 0)  # nothing left to do


async def test_retention_runs_periodically_in_the_worker(autojump_clock: Any) -> None:
    sink = MemorySink()
    base = utc_now()
    d = Daemon()
    stored = d.feed(enriched_events(120))
    settings = SyncSettings(ttl_days=90, retention_first=60, retention_interval=86_400,
                            idle_poll=3600)
    worker = SyncWorker(sink, d.source(), settings, run_sync=inline,
                        now=lambda: base + dt.timedelta(seconds=trio.current_time()))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await worker.wait_synced(120)
        assert len(sink.events) == 120 and sink.sessions
        await trio.sleep(89 * 86_400)
        assert len(sink.events) == 120
        await trio.sleep(3 * 86_400)
        nursery.cancel_scope.cancel()
    stats = worker.statistics()
    assert stats.retention_runs >= 90
    assert not sink.events and not sink.sessions
    assert stats.expired_events == 120 and stats.expired_sessions == len(
        {ev.ws_id for ev in stored if ev.ws_id})


# ------------------------------------------------------------------ shutdown


async def test_shutdown_flushes_what_is_buffered_once(autojump_clock: Any) -> None:
    sink = MemorySink()
    d = Daemon()
    worker = SyncWorker(sink, d.source(), SyncSettings(batch_size=100, batch_interval=60),
                        run_sync=inline)
    d.listeners.append(worker.offer)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(1)
        d.feed(enriched_events(30))
        await trio.sleep(1)  # the batch would wait a minute
        assert not sink.events
        nursery.cancel_scope.cancel()
    assert len(sink.events) == 30 and sink.marker == SyncMarker("E1", 30)
    assert sink.closed

