"""The answers' `"fallbacks"` against a real server: named exactly where the server lacks
the feature (FerretDB: no text index, no accumulators; MongoDB: none), the figures those
memory gives. Runs only when COORDD_TEST_MONGODB_URI is set (`make test-mongo`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coordd.core import queries
from coordd.mongo.queries import FALLBACK_TEXT, MongoQueries
from coordd.mongo.stats import FALLBACK_ACCUMULATORS
from tests.mongo.helpers import World, memory, mongo, same
from tests.mongo.realserver import REAL_SERVER, real_db

pytestmark = REAL_SERVER


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with real_db() as d:
        yield World(d)


def probed(world: World) -> MongoQueries:
    """The daemon's wiring: the backend reads the sink's probed capabilities."""
    return MongoQueries(world.db.sink.db, lambda: world.small.store, stats_max_age=0.0,
                        capabilities=lambda: world.db.sink.capabilities)


async def test_search_names_the_regex_fallback_where_the_server_has_no_text_index(
        world: World) -> None:
    caps = world.db.sink.capabilities
    assert caps is not None
    for q, narrowed in (("regex chars .* and", True), ("plain text and more", True),
                        ("ruda", False)):
        got = await mongo(probed(world).search_events, [("q", q)])
        want = memory(queries.search_events, world.big.store, [("q", q)])
        assert got["tier"] == "mongo"
        assert got.get("fallbacks") == ([FALLBACK_TEXT] if narrowed and not caps.text_index
                                        else None)
        same(got, want, but=("tier", "fallbacks"))


@pytest.mark.parametrize("params", [[], [("since", "0"), ("until", "1771000000000")]])
async def test_stats_name_the_python_fallback_where_the_server_has_no_accumulators(
        world: World, params: Any) -> None:
    caps = world.db.sink.capabilities
    assert caps is not None
    for mq in (probed(world),  # told by the probe
               MongoQueries(world.db.sink.db, lambda: world.small.store)):  # refused at once
        got = await mongo(mq.get_stats, params)
        assert got["tier"] == "mongo"
        assert got.get("fallbacks") == (None if caps.accumulators else [FALLBACK_ACCUMULATORS])
        same(got, memory(queries.get_stats, world.big.store, params),
             but=("tier", "fallbacks"))
