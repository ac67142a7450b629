"""The lean answers and the export against a real server (`-m mongo`; `make test-mongo`
builds and starts FerretDB, or set COORDD_TEST_MONGODB_URI): the session search's
`view=summary` is the full search summarised, and an export reaching before memory's window
(paged from the server by `seq`, then memory's events) equals what memory holding the whole
history exports, NDJSON and CSV.

Each test works in a database of its own (`coordd_test_<random>`), dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from coordd.backend import Stream
from coordd.core import queries
from coordd.core.export import export_chunks, export_query
from coordd.mongo.queries import MongoQueries
from tests.leanref import lean_of
from tests.mongo.helpers import CLOCK_MS, Db, World, memory, mongo, same
from tests.mongo.realserver import REAL_SERVER, real_db

pytestmark = REAL_SERVER


@pytest.fixture
def db() -> Iterator[Db]:
    with real_db() as d:
        yield d


async def test_session_search_summary_on_a_real_server(db: Db) -> None:
    w = World(db)
    for params in ([("q", "ruda")], [("q", "eden"), ("limit", "3")]):
        full = await mongo(w.mq.search_work_sessions, params)
        lean = await mongo(w.mq.search_work_sessions, [*params, ("view", "summary")])
        assert lean["tier"] == "mongo" and full["sessions"]
        assert lean == lean_of(full)
        same(lean, memory(queries.search_work_sessions, w.big.store,
                          [*params, ("view", "summary")]))


@pytest.mark.parametrize("params", [[], [("format", "csv")],
                                    [("type", "a2a.send"), ("since", "0")]])
async def test_export_across_the_memory_boundary_on_a_real_server(db: Db,
                                                                  params: list[Any]) -> None:
    w = World(db)
    mq = MongoQueries(db.sink.db, lambda: w.small.store, export_batch=50)
    answer = await mq.export(params, CLOCK_MS)
    assert isinstance(answer, Stream)
    got = b"".join([chunk async for chunk in answer.chunks])
    want = b"".join(export_chunks(list(w.big.store.iter_events()), export_query(params)))
    assert got == want and got
    stats = mq.statistics()
    assert (stats.mongo, stats.degraded) == (1, 0), stats.last_error
    if not params:
        seqs = [orjson.loads(x)["seq"] for x in got.splitlines()]
        assert seqs[0] < w.small.store.first_seq and seqs == sorted(seqs)
