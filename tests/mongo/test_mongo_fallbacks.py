"""An answer MongoDB gave by a fallback says which (mongomock behind the real client's seam):
`"tier": "mongo"` as before, plus `"fallbacks": ["text_index"]` for a search the text index
would have narrowed, `["accumulators"]` for stats folded in Python; no `"fallbacks"` when the
server did everything itself. The figures stay those memory gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coordd.core import queries
from coordd.mongo.capabilities import Capabilities
from coordd.mongo.queries import FALLBACK_TEXT, MongoQueries
from coordd.mongo.stats import FALLBACK_ACCUMULATORS
from coordd.mongo.tier import MongoTier
from tests.mongo.helpers import ENRICHER, P, World, memory, mongo, same, service_config

FERRETDB = Capabilities("FerretDB", (1, 24, 2), text_index=False, change_streams=False,
                        ttl_index=False, expressions=False, accumulators=False,
                        dotted_keys=False)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def backend(world: World, caps: Capabilities | None) -> MongoQueries:
    return MongoQueries(world.db.sink.db, lambda: world.small.store, stats_max_age=0.0,
                        capabilities=lambda: caps)


# ---------------------------------------------------------------------------- search


@pytest.mark.parametrize("q", ["regex chars .* and", "plain text and more"])
async def test_a_search_the_text_index_would_narrow_names_the_regex_fallback(
        world: World, q: str) -> None:
    """mongomock has no text index (as FerretDB): the regex alone answered a `q` with an
    interior word, and says so; the answer is memory's all the same."""
    got = await mongo(backend(world, None).search_events, [("q", q)])
    assert (got["tier"], got["fallbacks"]) == ("mongo", [FALLBACK_TEXT])
    same(got, memory(queries.search_events, world.big.store, [("q", q)]),
         but=("tier", "fallbacks"))
    assert got["total"] == 1


@pytest.mark.parametrize("q", ["ruda", "regex chars", "Ünïcode ÉCOLE 코드"])
async def test_a_search_without_an_interior_word_used_no_fallback(world: World,
                                                                  q: str) -> None:
    """Without a whole ASCII word inside `q` the regex decides on any server: no fallback."""
    got = await mongo(backend(world, None).search_events, [("q", q)])
    assert got["tier"] == "mongo" and "fallbacks" not in got


async def test_a_text_index_the_server_refuses_at_query_time_names_the_fallback(
        world: World) -> None:
    """The index looked usable but the `$text` query failed: the regex alone answered."""
    mq = backend(world, None)
    mq._text, mq._text_checked = True, float("inf")  # as if the index were there
    got = await mongo(mq.search_events, [("q", "regex chars .* and")])
    assert (got["tier"], got["fallbacks"], got["total"]) == ("mongo", [FALLBACK_TEXT], 1)


# ---------------------------------------------------------------------------- stats


@pytest.mark.parametrize("params", [[], [("until", "1771000000000")]])
async def test_stats_without_accumulators_name_the_python_fallback(world: World,
                                                                   params: P) -> None:
    got = await mongo(backend(world, FERRETDB).get_stats, params)
    assert (got["tier"], got["fallbacks"]) == ("mongo", [FALLBACK_ACCUMULATORS])
    same(got, memory(queries.get_stats, world.big.store, params), but=("tier", "fallbacks"))


async def test_stats_with_accumulators_have_no_fallbacks(world: World) -> None:
    for caps in (None, Capabilities.full()):
        got = await mongo(backend(world, caps).get_stats, [])
        assert got["tier"] == "mongo" and "fallbacks" not in got


async def test_accumulators_refused_unannounced_are_named_and_not_asked_again(
        world: World) -> None:
    """A server the probe took for a full one refuses `$addToSet`: the answer names the
    Python fallback, and the next stats do not send the refused pipeline again."""
    sent: list[str] = []

    class Refusing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def aggregate(self, pipeline: list[Any], **kw: Any) -> Any:
            sent.append(repr(pipeline))
            if "$addToSet" in sent[-1]:
                raise _Refused("$addToSet is not implemented")
            return self.inner.aggregate(pipeline, **kw)

        def find(self, *a: Any, **kw: Any) -> Any:
            return self.inner.find(*a, **kw)

    inner = world.db.sink.db()
    lean = {"coordination_events": Refusing(inner["coordination_events"])}
    mq = MongoQueries(lambda: lean, lambda: world.small.store, stats_max_age=0.0,
                      capabilities=Capabilities.full)
    for until in ("1771000000000", "1772000000000"):
        got = await mongo(mq.get_stats, [("until", until)])
        assert got["fallbacks"] == [FALLBACK_ACCUMULATORS]
        same(got, memory(queries.get_stats, world.big.store, [("until", until)]),
             but=("tier", "fallbacks"))
    assert sum("$addToSet" in p for p in sent) == 1


class _Refused(Exception):
    code = 238  # NotImplemented


# ---------------------------------------------------------------------------- the tier


async def test_the_tiers_queries_follow_the_probed_capabilities(world: World,
                                                                tmp_path: Path) -> None:
    """The daemon's query backend reads the sink's probed capabilities: stats fold in
    Python on a server that has no accumulators (no refused round trip first)."""
    cfg = service_config(tmp_path, "tier", mongo={"database": world.db.database})
    tier = MongoTier.tailing(cfg, world.small.store, reread_enricher=ENRICHER,
                             client=world.db.client)
    tier.sink.ensure_schema()  # probes mongomock: it has accumulators
    assert "fallbacks" not in await mongo(tier.queries.get_stats, [])
    tier.sink.capabilities = FERRETDB
    got = await mongo(tier.queries.get_stats, [("until", "1771000000000")])  # not memoised
    assert got["fallbacks"] == [FALLBACK_ACCUMULATORS]
