"""The lean answers and the export with the MongoDB tier (mongomock behind the real client's
seam): `view=summary` on the session search is the full search summarised, and an export
reaching before memory's window reads the older events from MongoDB in pages, then memory's,
giving what memory holding everything would; a failure before the first byte answers from
memory, one later truncates the transfer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from coordd.backend import Stream
from coordd.core import queries
from coordd.core.export import export_chunks, export_query
from coordd.errors import SinkUnavailable
from coordd.mongo.queries import MongoQueries
from tests.leanref import lean_of
from tests.mongo.helpers import CLOCK_MS, P, World, memory, mongo, same


@pytest.fixture(scope="module")
def shared() -> World:
    return World()


@pytest.fixture
def world(shared: World) -> World:
    shared.mq = MongoQueries(shared.db.sink.db, lambda: shared.small.store, export_batch=37)
    return shared


async def exported(mq: MongoQueries, params: P) -> bytes:
    answer = await mq.export(params, CLOCK_MS)
    assert isinstance(answer, Stream), answer
    return b"".join([chunk async for chunk in answer.chunks])


def memory_export(world: World, params: P) -> bytes:
    """What memory holding the whole history exports."""
    return b"".join(export_chunks(list(world.big.store.iter_events()), export_query(params)))


@pytest.mark.parametrize("params", [[("q", "ruda")], [("q", "eden"), ("limit", "3")],
                                    [("q", "WS_RX")]])
async def test_session_search_summary_is_the_full_search_summarised(world: World,
                                                                    params: P) -> None:
    full = await mongo(world.mq.search_work_sessions, params)
    lean = await mongo(world.mq.search_work_sessions, [*params, ("view", "summary")])
    assert full["tier"] == lean["tier"] == "mongo" and full["sessions"]
    assert lean == lean_of(full)
    # And what memory holding everything answers.
    same(lean, memory(queries.search_work_sessions, world.big.store,
                      [*params, ("view", "summary")]))


async def test_bad_view_is_refused_before_mongodb(world: World) -> None:
    mq = MongoQueries(lambda: pytest.fail("MongoDB was asked"), lambda: world.small.store)
    code, body = await mq.search_work_sessions([("q", "x"), ("view", "nope")], CLOCK_MS)
    assert code == 400 and "summary" in orjson.loads(body)["error"]
    code, body = await mq.export([("format", "nope")], CLOCK_MS)
    assert code == 400 and "ndjson" in orjson.loads(body)["error"]


@pytest.mark.parametrize("params", [
    [], [("format", "csv")], [("type", "a2a.send,a2a.response")], [("since", "0")],
    [("format", "csv"), ("until", "1771000000000")],
])
async def test_export_reaching_before_memory_equals_memory_holding_everything(
        world: World, params: P) -> None:
    assert world.small.store.first_seq > 100  # memory lacks most of the history
    got = await exported(world.mq, params)
    assert got == memory_export(world, params)
    stats = world.mq.statistics()
    assert (stats.mongo, stats.degraded) == (1, 0)


async def test_export_of_a_session_from_both_tiers(world: World) -> None:
    held = {e.ws_id for e in world.small.store.iter_events()}
    older = {e.ws_id for e in world.big.store.iter_events()
             if e.seq < world.small.store.first_seq}
    ws = sorted(w for w in held & older if w)[0]
    got = await exported(world.mq, [("workSessionId", ws)])
    lines = [orjson.loads(x) for x in got.splitlines()]
    assert got == memory_export(world, [("workSessionId", ws)])
    assert any(e["seq"] < world.small.store.first_seq for e in lines)
    assert any(e["seq"] >= world.small.store.first_seq for e in lines)


async def test_export_within_memory_does_not_ask_mongodb(world: World) -> None:
    mq = MongoQueries(lambda: pytest.fail("MongoDB was asked"), lambda: world.small.store)
    since = str(int(next(world.small.store.iter_by_time()).ts))
    got = await exported(mq, [("since", since)])
    want = b"".join(export_chunks(list(world.small.store.iter_events()),
                                  export_query([("since", since)])))
    assert got == want and got
    assert mq.statistics().memory == 1


def failing() -> Any:
    raise SinkUnavailable("MongoDB unreachable: connection refused")


async def test_a_failing_mongodb_exports_what_memory_holds(world: World) -> None:
    mq = MongoQueries(failing, lambda: world.small.store)
    got = await exported(mq, [])
    assert got == b"".join(export_chunks(list(world.small.store.iter_events()),
                                         export_query([])))
    stats = mq.statistics()
    assert stats.degraded == 1 and "unreachable" in (stats.last_error or "")


async def test_a_failure_mid_export_ends_the_stream_with_an_error(world: World) -> None:
    calls = []

    def flaky() -> Any:
        calls.append(1)
        if len(calls) > 2:
            raise SinkUnavailable("MongoDB went away")
        return world.db.sink.db()

    mq = MongoQueries(flaky, lambda: world.small.store, export_batch=50)
    answer = await mq.export([], CLOCK_MS)
    assert isinstance(answer, Stream)
    got = []
    with pytest.raises(SinkUnavailable):
        async for chunk in answer.chunks:
            got.append(chunk)
    assert got  # the first pages went out; the rest never pretends to be complete
