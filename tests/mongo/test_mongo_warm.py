"""Warm restart: a restarted daemon takes its history from MongoDB instead of parsing the log
again, and ends up exactly where a cold start would (same events, seqs, epoch, sessions);
anything that makes MongoDB's copy unusable means a cold start."""

from __future__ import annotations

import shutil
import socket
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import trio

from coordd.core.event import Event
from coordd.core.store import Store
from coordd.mongo.load import load_warm_history, warm_history
from coordd.mongo.schema import EVENTS
from coordd.mongo.sink import PymongoSink, SyncMarker
from coordd.tail.checkpoint import Checkpoint, load_checkpoint
from coordd.tail.pipeline import History, Pipeline
from tests.mongo.helpers import (
    ENRICHER,
    MAX,
    CountingEnricher,
    Db,
    picture,
    run,
    warm,
    write,
)
from tests.tail.helpers import F1, FakeTailer, line

NOW = 1_790_000_000_000.0














async def test_a_warm_restart_equals_a_cold_one_and_parses_no_history(tmp_path: Path) -> None:
    log, state = tmp_path / "logs" / "coordination-events.ndjson", tmp_path / "state"
    db = Db("mongomock")
    write(log, 300, seed=1)
    first, _ = await run(log, state, db=db)
    assert len(first) == MAX and first.last_seq == MAX  # the newest MAX lines, from 1

    history = await warm(db, state, log)
    assert history is not None and [e.seq for e in history] == list(range(1, MAX + 1))
    second, enricher = await run(log, state, history=history)
    assert enricher.calls == 0  # nothing parsed or enriched again
    assert picture(second) == picture(first)

    # New lines while it was down: warm again, and a cold start from the same checkpoint.
    write(log, 40, seed=2)
    cold_state = tmp_path / "cold"
    shutil.copytree(state, cold_state)
    history = await warm(db, state, log)
    assert history is not None
    third, enricher = await run(log, state, history=history)
    assert enricher.calls == 40
    cold, _ = await run(log, cold_state)
    assert picture(third) == picture(cold)
    assert third.last_seq == MAX + 40 and third.epoch == first.epoch


async def test_what_makes_mongodbs_copy_unusable_means_a_cold_start(tmp_path: Path) -> None:
    log, state = tmp_path / "logs" / "coordination-events.ndjson", tmp_path / "state"
    db = Db("mongomock")
    write(log, 120, seed=3)
    await run(log, state, db=db)
    cp = load_checkpoint(state)
    assert cp is not None and await warm(db, state, log) is not None

    def marker(m: SyncMarker) -> None:
        db.sink.write_marker(m, db.sink.db()[EVENTS].find_one()["insertedAt"])

    assert warm_history(db.sink, _with(cp, seq=cp.seq + 1), max_events=MAX) is None  # behind
    marker(SyncMarker("other", 120))
    assert await warm(db, state, log) is None  # another epoch
    marker(SyncMarker(cp.epoch, 120))
    db.coll(EVENTS).update_one({"seq": 110}, {"$unset": {"enriched": ""}})
    assert await warm(db, state, log) is None  # written before coordd kept the event
    db.coll(EVENTS).delete_one({"seq": 110})
    assert await warm(db, state, log) is None  # a hole in the window
    assert await load_warm_history(db.sink, None, log, max_events=MAX, max_wait=30) is None
    log.rename(log.with_name("elsewhere.ndjson"))
    write(log, 5, seed=4)  # a new log: the checkpoint's file is gone
    assert await warm(db, state, log) is None


async def test_an_unreachable_mongodb_at_start_means_a_cold_start(tmp_path: Path) -> None:
    log, state = tmp_path / "logs" / "coordination-events.ndjson", tmp_path / "state"
    write(log, 10, seed=5)
    await run(log, state)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = PymongoSink.from_uri(f"mongodb://127.0.0.1:{port}/", server_selection_timeout=0.2,
                                operation_timeout=0.5)
    try:
        assert await load_warm_history(sink, load_checkpoint(state), log, max_events=MAX,
                                       max_wait=30) is None
    finally:
        sink.close()


async def test_loaded_history_is_discarded_when_the_tailer_does_not_resume(
        tmp_path: Path) -> None:
    cp = Checkpoint(F1, 100, 2, "E1")
    history = [Event(1, ENRICHER.enrich(orjson.loads(line(7))) or {}),
               Event(2, ENRICHER.enrich(orjson.loads(line(8))) or {})]
    warm = History(history, "MongoDB")
    from coordd.tail.tailer import LineBatch

    for resumed, want in ((True, [7, 8, 3]), (False, [1, 2, 3])):
        batches = [LineBatch([line(1), line(2)], F1, 100, history=True, caught_up=True),
                   LineBatch([line(3)], F1, 150, history=False)]
        store = Store()
        enricher = CountingEnricher()
        p = Pipeline(FakeTailer(batches, resumed), enricher, store,  # type: ignore[arg-type]
                     state_dir=tmp_path, checkpoint=cp, checkpoint_interval=0.01)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(p.run, history=warm))
            await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
        got = [orjson.loads(ev.json)["data"]["n"] for ev in store.iter_events()]
        assert got == want
        assert enricher.calls == (1 if resumed else 3)
        assert (p.epoch == "E1") is resumed
        if resumed:
            assert [ev.seq for ev in store.iter_events()] == [1, 2, 3]


def _with(cp: Checkpoint, **kw: Any) -> Checkpoint:
    from dataclasses import replace

    return replace(cp, **kw)
