"""The routes MongoDB answers (coordd.mongo.queries) against mongomock, behind the same seam
as the real client: the same answers as memory would give on the whole history, literal
search, paging across the memory/MongoDB boundary, ranges, stats of the same shape and
figures, and the in-memory answer (marked degraded) when MongoDB fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
import trio

from coordd.core import queries
from coordd.core.params import encode_cursor
from coordd.core.store import Store
from coordd.errors import SinkUnavailable
from coordd.mongo.queries import MongoQueries, degrade, interior_word
from tests.mongo.helpers import ENRICHER, P, World, memory, mongo, same, walk

NOW = 1_790_000_000_000.0






@pytest.fixture(scope="module")
def shared() -> World:
    return World()


@pytest.fixture
def world(shared: World) -> World:
    """The shared history (the tests only read it), with queries of their own."""
    shared.mq = MongoQueries(shared.db.sink.db, lambda: shared.small.store)
    return shared








# ---------------------------------------------------------------------------- search


@pytest.mark.parametrize("q,total", [(".*", 1), ("(x)", 1), ("REGEX CHARS", 1), ("a.b", 1),
                                     ("a*b", 1), ("a.*b", 0), ("[", None), ("école", 1),
                                     ("코드", None), ("$where", 0)])
async def test_search_is_literal_and_case_insensitive(world: World, q: str,
                                                      total: int | None) -> None:
    got = await mongo(world.mq.search_events, [("q", q)])
    want = memory(queries.search_events, world.big.store, [("q", q)])
    assert got["tier"] == "mongo" and "degraded" not in got
    same(got, want)
    if total is not None:
        assert got["total"] == total


@pytest.mark.parametrize("params", [
    [("q", "ruda")],
    [("q", "a2a"), ("role", "conversation.main")],
    [("q", "a2a"), ("viewCategory", "engineering_build"), ("limit", "7"), ("offset", "3")],
    [("q", "eden"), ("limit", "1000")],
])
async def test_search_answers_what_memory_would_on_the_whole_history(
        world: World, params: P) -> None:
    got = await mongo(world.mq.search_events, params)
    same(got, memory(queries.search_events, world.big.store, params))
    # The small store alone would have answered from its window only.
    assert got["total"] > memory(queries.search_events, world.small.store, params)["total"]


async def test_search_uses_the_text_index_only_where_it_cannot_change_the_answer(
        world: World) -> None:
    assert interior_word("regex chars .* and") == "chars"
    assert interior_word("two words") is None  # either may be part of a longer word
    assert interior_word("deploy the server") == "the"
    assert interior_word("a .* b") is None
    # mongomock has the index but no $text: the query falls back to the regex alone.
    got = await mongo(world.mq.search_events, [("q", "regex chars .* and")])
    assert (got["tier"], got["total"]) == ("mongo", 1)
    assert world.mq.statistics().text_index is False
    # The answer says it was the fallback; a query with no interior word never uses the
    # index, so there is nothing to fall back from.
    assert got["fallbacks"] == ["text_index"]
    plain = await mongo(world.mq.search_events, [("q", "two words")])
    assert plain["tier"] == "mongo" and "fallbacks" not in plain


async def test_missing_q_and_bad_parameters_are_answered_like_memory(world: World) -> None:
    calls = []

    def db() -> Any:
        calls.append(1)
        return world.db.sink.db()

    mq = MongoQueries(db, lambda: world.small.store)
    empty = await mongo(mq.search_events, [])
    assert empty["error"] == "Missing search query (q)" and empty["tier"] == "memory"
    for fn, params in ((mq.search_events, [("q", "x"), ("role", "nope")]),
                       (mq.search_events, [("q", "x"), ("viewCategory", "nope")]),
                       (mq.search_work_sessions, [("q", "x"), ("limit", "-1")]),
                       (mq.get_events, [("cursor", "garbage!")]),
                       (mq.get_stats, [("since", "yesterday")])):
        code, body = await fn(params, NOW)
        assert code == 400 and set(orjson.loads(body)) == {"error"}, body
    assert not calls  # rejected before any MongoDB call


async def test_work_session_search_matches_memory_on_the_whole_history(world: World) -> None:
    for params in ([("q", "ruda")], [("q", "WS_RX")], [("q", "eden"), ("limit", "3")],
                   [("q", "engineering")]):
        got = await mongo(world.mq.search_work_sessions, params)
        assert got["tier"] == "mongo"
        same(got, memory(queries.search_work_sessions, world.big.store, params))


# ---------------------------------------------------------------------------- paging




@pytest.mark.parametrize("params", [
    [("limit", "40")],
    [("limit", "15"), ("type", "a2a.send,a2a.response")],
    [("limit", "9"), ("role", "conversation.main"), ("viewCategory", "engineering_build")],
])
async def test_paging_walks_the_whole_history_across_the_memory_boundary(
        world: World, params: P) -> None:
    events, tiers = await walk(world.mq, params)
    flt = [p for p in params if p[0] != "limit"]
    everything = memory(queries.get_events, world.big.store, [*flt, ("limit", "100000")])
    assert events == everything["events"]  # every match once, in log order
    assert tiers[0] == "memory" and tiers[-1] == "mongo"


async def test_a_mongo_page_is_the_page_memory_would_give(world: World) -> None:
    first = world.small.store.first_seq
    cursor = encode_cursor(["e", "E1", first - 20])
    params = [("limit", "30"), ("cursor", cursor)]
    got = await mongo(world.mq.get_events, params)
    want = memory(queries.get_events, world.big.store, params)
    assert got["tier"] == "mongo"
    same(got, want, but=("tier", "seq"))  # `seq` is the store's last seq: both 344
    assert [e["seq"] for e in got["events"]] == list(range(first - 50, first - 20))
    foreign = encode_cursor(["e", "E0", 5])
    code, body = await world.mq.get_events([("cursor", foreign)], NOW)
    assert code == 400 and b"epoch" in body


async def test_ranges_before_the_window_come_from_mongodb(world: World) -> None:
    oldest_held = next(world.small.store.iter_by_time()).ts
    for params in ([("since", "0"), ("limit", "500")],
                   [("since", "0"), ("until", str(int(oldest_held))), ("type", "a2a.send")],
                   [("since", "1970-01-01T00:00:00Z"), ("limit", "5")]):
        got = await mongo(world.mq.get_events, params)
        assert got["tier"] == "mongo"
        same(got, memory(queries.get_events, world.big.store, params))
    inside = await mongo(world.mq.get_events, [("since", str(int(oldest_held)))])
    assert inside["tier"] == "memory"  # memory holds everything since then


# ---------------------------------------------------------------------------- stats


@pytest.mark.parametrize("params", [[], [("since", "0")], [("until", "1771000000000")],
                                    [("since", "1767000000000"), ("until", "1772000000000")]])
async def test_stats_from_mongodb_equal_memorys_on_the_same_data(world: World,
                                                                 params: P) -> None:
    got = await mongo(world.mq.get_stats, params)
    want = memory(queries.get_stats, world.big.store, params)
    assert (got["tier"], want["tier"]) == ("mongo", "memory")
    same(got, want)
    assert got["events"] > 0 or params


@pytest.mark.parametrize("window", [(None, None), (1_767_000_000_000, 1_772_000_000_000)])
def test_stats_computed_in_python_equal_the_servers(world: World,
                                                    window: tuple[Any, Any]) -> None:
    """The fallback for a server without `$addToSet`/`$push` (FerretDB) gives the same
    figures as the aggregation pipelines."""
    from coordd.mongo.stats import stats_answer

    db, store = world.db.sink.db(), world.big.store
    server = stats_answer(db, store, *window)
    python = stats_answer(db, store, *window, accumulators=False)
    # The answer names the fallback it used; the figures are the same.
    assert (python.fallbacks, server.fallbacks) == (("accumulators",), ())
    assert python.body == server.body and server.body["events"] > 0


def test_a_server_refusing_an_accumulator_gets_the_python_figures(world: World) -> None:
    from coordd.mongo.stats import mongo_stats, stats_answer

    class NoAccumulators:
        """A collection whose server does `$group` with `$sum` only (as FerretDB 1.24)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def aggregate(self, pipeline: list[Any], **kw: Any) -> Any:
            if "$addToSet" in repr(pipeline) or "$push" in repr(pipeline):
                raise _Refused()
            return self.inner.aggregate(pipeline, **kw)

        def find(self, *a: Any, **kw: Any) -> Any:
            return self.inner.find(*a, **kw)

    db = world.db.sink.db()
    lean = {"coordination_events": NoAccumulators(db["coordination_events"])}
    refused = stats_answer(lean, world.big.store, None, None)
    assert refused.fallbacks == ("accumulators",)
    assert refused.body == mongo_stats(db, world.big.store, None, None)


class _Refused(Exception):
    code = 238  # NotImplemented


async def test_stats_within_the_window_come_from_memory(world: World) -> None:
    since = str(int(next(world.small.store.iter_by_time()).ts))
    got = await mongo(world.mq.get_stats, [("since", since)])
    assert got["tier"] == "memory"
    same(got, memory(queries.get_stats, world.small.store, [("since", since)]))


# ---------------------------------------------------------------------------- outages


def failing() -> Any:
    raise SinkUnavailable("MongoDB unreachable: connection refused")


@pytest.mark.parametrize("route,params,memory_fn", [
    ("search_events", [("q", "ruda")], queries.search_events),
    ("search_work_sessions", [("q", "ruda")], queries.search_work_sessions),
    ("get_events", [("since", "0")], queries.get_events),
    ("get_stats", [], queries.get_stats),
])
async def test_a_failing_mongodb_gives_the_memory_answer_marked_degraded(
        world: World, route: str, params: P, memory_fn: Callable[..., Any]) -> None:
    mq = MongoQueries(failing, lambda: world.small.store)
    got = await mongo(getattr(mq, route), params)
    assert got["tier"] == "memory"
    assert got["degraded"].startswith("MongoDB failed: SinkUnavailable: MongoDB unreachable")
    same(got, memory(memory_fn, world.small.store, params), but=("degraded",))
    stats = mq.statistics()
    assert (stats.degraded, stats.mongo) == (1, 0) and stats.last_error == got["degraded"]


@pytest.mark.parametrize("route,params", [
    ("search_events", [("q", "ruda")]),
    ("get_events", [("since", "0")]),
    ("get_stats", []),
    ("export", [("since", "0")]),
])
async def test_a_server_known_to_be_down_is_not_asked(world: World, route: str,
                                                      params: P) -> None:
    """While the driver knows the server is down the memory answer comes at once: no
    worker thread waiting out the timeout. Once it is back, MongoDB is asked again."""
    down: list[str | None] = ["MongoDB unreachable: 127.0.0.1:1: connection refused"]
    asked: list[str] = []

    async def run_sync(fn: Callable[[], Any], **kw: Any) -> Any:
        asked.append(route)
        return await trio.to_thread.run_sync(fn, **kw)

    mq = MongoQueries(world.db.sink.db, lambda: world.small.store, run_sync=run_sync,
                      unreachable=lambda: down[0])
    if route == "export":
        got_export = await read_export(mq, params)
        assert (got_export, asked) == (await read_export(mq.memory, params), [])
    else:
        got = await mongo(getattr(mq, route), params)
        assert (got["tier"], got["degraded"], asked) == ("memory", down[0], [])
    assert mq.statistics().last_error == down[0]
    down[0] = None
    if route == "export":
        await read_export(mq, params)
    else:
        assert (await mongo(getattr(mq, route), params))["tier"] == "mongo"
    assert asked and mq.statistics().mongo == 1


async def read_export(mq: Any, params: P) -> tuple[int, bytes]:
    """An export's status and its whole body (`mq`: a query backend)."""
    from coordd.backend import Stream

    got = await mq.export(params, NOW)
    if not isinstance(got, Stream):
        return got[0], got[1]
    return 200, b"".join([chunk async for chunk in got.chunks])


async def test_a_failing_query_deep_in_the_history_still_answers(world: World) -> None:
    class Broken:
        def __getitem__(self, name: str) -> Any:
            raise RuntimeError("boom")

    mq = MongoQueries(lambda: Broken(), lambda: world.small.store)
    cursor = encode_cursor(["e", "E1", 3])
    got = await mongo(mq.get_events, [("cursor", cursor)])
    assert got["tier"] == "memory" and "RuntimeError: boom" in got["degraded"]
    assert got["events"] == []  # memory holds nothing that old, and says so


def test_degrade_adds_the_reason() -> None:
    assert orjson.loads(degrade(b'{"a":1}', 'x "y"')) == {"a": 1, "degraded": 'x "y"'}


async def test_the_old_monitors_documents_are_found_and_shown(world: World) -> None:
    from coordd.core.jsvalues import event_hash
    from coordd.mongo.load import document_event
    from coordd.mongo.schema import EVENTS, legacy_event_document

    raw = {"type": "a2a.send", "agentId": "ruda", "ts": 1_700_000_000_000,
           "data": {"fromAgent": "ruda", "toAgent": "eden", "message": "legacy needle",
                    "workSessionId": "ws_legacy"}}
    enriched = ENRICHER.enrich(raw)
    assert enriched is not None
    doc = legacy_event_document(enriched)
    ev = document_event(doc)
    assert ev.seq == 0 and event_hash(ev.as_dict()) == doc["eventHash"]
    assert (ev.ws_id, ev.role, ev.category) == ("ws_legacy", enriched["eventRole"],
                                                enriched["collabCategory"])
    coll = world.db.coll(EVENTS)
    coll.insert_one(dict(doc))
    try:
        got = await mongo(world.mq.search_events, [("q", "LEGACY NEEDLE")])
        assert got["total"] == 1 and got["events"][0]["seq"] == 0
        assert got["events"][0]["data"] == enriched["data"]
    finally:
        coll.delete_one({"eventHash": doc["eventHash"]})


# ---------------------------------------------------------------------------- from memory


async def test_the_session_routes_come_from_memory_and_an_override_rewrites_the_document(
        ) -> None:
    from coordd.core.event import Event

    store = Store()
    store.extend([Event(1, {"type": "a2a.send", "agentId": "ruda", "ts": 5,
                            "data": {"workSessionId": "ws_1"}})])
    seen: list[list[str]] = []
    mq = MongoQueries(failing, lambda: store, on_category_change=seen.append)
    assert await mq.get_work_sessions([], NOW) == queries.get_work_sessions(store, [], NOW)
    assert await mq.get_work_session("ws_1", [], NOW) == queries.get_work_session(
        store, "ws_1", [], NOW)
    good = orjson.dumps({"collabCategory": "qa_validation"})
    status, body = await mq.patch_category("ws_1", good, [], NOW)
    assert status == 200 and orjson.loads(body)["workSessionId"] == "ws_1"
    assert (await mq.patch_category("ws_1", b"{oops", [], NOW))[0] == 400
    assert (await mq.patch_category("ws_nope", good, [], NOW))[0] == 404
    assert seen == [["ws_1"]]  # only a stored override is written again
    stats = mq.statistics()
    assert (stats.mongo, stats.memory, stats.degraded) == (0, 0, 0)
