"""The query backend of a daemon with `[mongo] uri`: search, paging, ranges, stats from MongoDB.

`MongoQueries` is the web layer's `QueryBackend` (`coordd.backend`) when MongoDB is
configured. The work-session list, one session and the category override are answered
from memory (`MemoryQueries`; a stored override also asks for the session's document to
be written again, `on_category_change`). The others have the same parameters, validation
and response shapes as the in-memory functions of `coordd.core.queries` (whose parameter
helpers this module uses), plus `"tier": "mongo"`:

* `/api/events/search` — a case-insensitive *literal* match (`re.escape`d into the regular
  expression, never `q` as given) on `data.message`, `data.replyPreview`,
  `data.fromAgent`, `data.toAgent` and `type`, over every document (the old monitor's
  too), newest first (`ts`, then `seq`), `total` by a count of the same filter. When `q`
  holds a word with white space on both sides, every matching document holds that word
  whole, so the text index (`coordd_text`, no language) narrows the scan without
  changing the answer; otherwise the regular expression alone decides.
* `/api/work-sessions/search` — the same match on the threads' agents, the category and
  the id of the session documents, most recent first; each summary is built from the
  session's events (from memory when memory holds all of them), in the lean shape with
  `view=summary` (`coordd.core.summaries`).
* `/api/events` — memory answers while it can (the newest pages, and `since` no older
  than the oldest event it holds); its `nextCursor` then continues where memory ends.
  A cursor (or `since`) that reaches before the store's first event is answered from the
  documents of the current epoch, by `seq` — the same cursor format, epoch-checked. The
  counts (`total`, `totalMatched`, `categoryCounts`) are those of the tier that answered.
* `/api/stats` — memory when `since` is within what it holds, else the aggregation
  pipelines of `coordd.mongo.stats` over every document coordd wrote (memoised per range
  for `stats_max_age` seconds).
* `/api/export` — memory when it holds the range (as for `/api/events`), else the current
  epoch's documents before the store's first event, by `seq` in pages of `export_batch`
  (each page one bounded query, fetched and formatted in the worker thread only when
  the client has taken the previous one), then the events memory held when the export
  began. A failure before the first byte answers from memory; one later ends the
  transfer unfinished (the client sees a truncated body, never a short complete one).

Every pymongo call runs in `trio.to_thread.run_sync` under this object's own
`CapacityLimiter`, bounded by `timeout` seconds. When MongoDB fails (or is too slow) the
in-memory answer is given instead, with `"tier": "memory"` and `"degraded": "<error>"`:
never a 500 because of MongoDB. While the driver knows the server to be down (its monitor
saw the last attempt fail: `PymongoSink.unreachable`), the memory answer is given at once
rather than after `timeout`; the sync worker's and follower's retries notice the recovery.
An answer MongoDB gave through a fallback names it in `"fallbacks"` (`text_index`: the
regex alone, no `$text` prefilter; `accumulators`: stats' per-session figures computed in
Python), see docs/mongodb.md.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import orjson
import trio

from coordd.backend import MemoryQueries, Stream, chunks_in_thread
from coordd.core import queries
from coordd.core.event import Event
from coordd.core.export import ExportQuery, export_chunks, export_query
from coordd.core.jsvalues import dumps
from coordd.core.pacing import RateLimitedLog
from coordd.core.params import (
    EventsQuery,
    Params,
    count_param,
    events_query,
    instant_param,
    limit_param,
    roles_param,
    text_param,
    view_category_param,
)
from coordd.core.queries import Response, error, events_tail, list_document
from coordd.core.sessions import UNFILTERED, SessionAgg, build_session
from coordd.core.store import Store
from coordd.core.summaries import render_session, render_summary
from coordd.core.vocabulary import CategoryVocabulary
from coordd.errors import BadRequest
from coordd.mongo.capabilities import Capabilities
from coordd.mongo.load import EVENT_PROJECTION, document_event, document_json
from coordd.mongo.schema import EVENTS, SEARCH_FIELDS, SESSIONS, TEXT_INDEX
from coordd.mongo.stats import FALLBACK_ACCUMULATORS, stats_answer

__all__ = ["FALLBACK_TEXT", "MongoQueries", "MongoQueryStats", "degrade", "interior_word"]

log = logging.getLogger(__name__)

_WORD: Final = re.compile(r"[A-Za-z0-9]+")
#: How often a missing text index is looked for again.
_TEXT_RECHECK: Final = 60.0
_LOG_EVERY: Final = 30.0
#: The fallback's name in an answer's `"fallbacks"` (the capability it stands in for): the
#: regex alone, no text-index narrowing.
FALLBACK_TEXT: Final = "text_index"


def degrade(body: bytes, reason: str) -> bytes:
    """An in-memory answer (a JSON object) with `"degraded": reason` added."""
    return body[:-1] + b',"degraded":' + dumps(reason) + b"}"


def interior_word(q: str) -> str | None:
    """The longest ASCII word of `q` with white space on both sides *within* `q`, or
    None: a document containing `q` contains that word whole, so a text-index lookup of
    it can only narrow the scan, never change the answer."""
    tokens = q.split()
    if len(tokens) < 3 or q != q.strip():
        return None
    words = [t for t in tokens[1:-1] if _WORD.fullmatch(t)]
    return max(words, key=len) if words else None


def _regex(q: str) -> dict[str, Any]:
    return {"$regex": re.escape(q), "$options": "i"}


@dataclass(frozen=True, slots=True)
class MongoQueryStats:
    """Answers by tier, fallbacks and the last MongoDB error (for health and metrics)."""

    mongo: int
    memory: int
    degraded: int
    last_error: str | None
    text_index: bool


class Unreachable(Exception):
    """The server is known to be down (the driver's monitor saw it fail): not asked."""


class MongoQueries:
    """The MongoDB-backed routes; see the module docstring."""

    def __init__(self, db: Callable[[], Any], store: Callable[[], Store], *,
                 limiter: trio.CapacityLimiter | None = None, timeout: float = 10.0,
                 stats_max_age: float = 5.0, export_batch: int = 2000,
                 run_sync: Callable[..., Any] | None = None,
                 on_category_change: Callable[[list[str]], None] | None = None,
                 capabilities: Callable[[], Capabilities | None] | None = None,
                 unreachable: Callable[[], str | None] | None = None) -> None:
        """`db()`: the `pymongo.database.Database` (blocking: called in the worker
        thread). `store()`: the in-memory store (a follower may replace it).
        `on_category_change(ws_ids)`: called after a category override was stored.
        `capabilities()`: what the server can do, once probed (None: assume everything).
        `unreachable()`: why the server is known to be down now, or None (non-blocking:
        while it says so, answers come from memory at once, not after `timeout`)."""
        self._db = db
        self._store = store
        self.memory = MemoryQueries(store)
        self._on_category_change = on_category_change
        self._limiter = limiter or trio.CapacityLimiter(4)
        self.timeout = timeout
        self.stats_max_age = stats_max_age
        self.export_batch = export_batch
        self._run_sync = run_sync or trio.to_thread.run_sync
        self._text: bool | None = None
        self._text_checked = -float("inf")
        self._stats_memo: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self._n = {"mongo": 0, "memory": 0, "degraded": 0}
        self._last_error: str | None = None
        self._ratelog = RateLimitedLog(log, _LOG_EVERY)
        self._capabilities = capabilities or (lambda: None)
        self._unreachable = unreachable or (lambda: None)
        self._accumulators = True  # False once the server refused them unannounced

    def statistics(self) -> MongoQueryStats:
        """A snapshot (see `MongoQueryStats`)."""
        return MongoQueryStats(self._n["mongo"], self._n["memory"], self._n["degraded"],
                               self._last_error, bool(self._text))

    # ------------------------------------------------------------------ plumbing

    async def _answer(self, blocking: Callable[[Any], Response],
                      fallback: Callable[[], Awaitable[Response]]) -> Response:
        """`blocking(db)` in a worker thread; on failure the memory answer `fallback()`,
        marked degraded."""
        try:
            answer: Response = await self._mongo_call(blocking)
            self._n["mongo"] += 1
            return answer
        except Exception as e:
            reason = self._failed(e)
        self._ratelog.warning("fallback", "answering from memory: %s", reason)
        status, body = await fallback()
        return status, degrade(body, reason) if status == 200 else body

    def _from_memory(self, answer: Response) -> Response:
        self._n["memory"] += 1
        return answer

    # ------------------------------------------------------------------ from memory

    async def get_work_sessions(self, params: Params, now_ms: float) -> Response:
        """`GET /api/work-sessions`, from memory."""
        return await self.memory.get_work_sessions(params, now_ms)

    async def get_work_session(self, segment: str, params: Params,
                               now_ms: float) -> Response:
        """`GET /api/work-sessions/<id>`, from memory."""
        return await self.memory.get_work_session(segment, params, now_ms)

    async def patch_category(self, segment: str, body: bytes, params: Params,
                             now_ms: float) -> Response:
        """`PATCH /api/work-sessions/<id>/category`, in memory; the session's document is
        then written again (`on_category_change`)."""
        status, answer = await self.memory.patch_category(segment, body, params, now_ms)
        if status == 200 and self._on_category_change is not None:
            self._on_category_change([orjson.loads(answer)["workSessionId"]])
        return status, answer

    # ------------------------------------------------------------------ search

    async def search_events(self, params: Params, now_ms: float) -> Response:
        """`GET /api/events/search` from MongoDB (see the module docstring)."""
        store = self._store()
        try:
            limit = limit_param(params, 50)
            offset = count_param(params, "offset", 0)
            roles = roles_param(params)
            view_cat = view_category_param(store, params)
        except BadRequest as exc:
            return error(400, str(exc))
        q = text_param(params, "q")
        if q is None:
            return self._from_memory(await self.memory.search_events(params, now_ms))
        flt: dict[str, Any] = {"$or": [{f: _regex(q)} for f in SEARCH_FIELDS]}
        if roles:
            flt["eventRole"] = {"$in": roles}
        if view_cat is not None and view_cat != "all":
            flt["collabCategory"] = view_cat
        word = interior_word(q)

        def run(db: Any) -> Response:
            coll = db[EVENTS]
            query = flt
            if word is not None and self._has_text_index(coll):
                query = {**flt, "$text": {"$search": word}}
            try:
                total = coll.count_documents(query)
                docs = list(coll.find(query, EVENT_PROJECTION).sort([("ts", -1), ("seq", -1)])
                            .skip(offset).limit(limit))
            except Exception:
                if query is flt:
                    raise
                self._text = False  # the index is not what we think: the regex alone
                query = flt
                total = coll.count_documents(flt)
                docs = list(coll.find(flt, EVENT_PROJECTION).sort([("ts", -1), ("seq", -1)])
                            .skip(offset).limit(limit))
            tail = {"count": len(docs), "total": total, "offset": offset, "limit": limit,
                    "query": q, "tier": "mongo",
                    **_fallbacks((FALLBACK_TEXT,) if word is not None and "$text" not in query
                                 else ())}
            return 200, list_document(b"events", [document_json(d) for d in docs], tail)

        return await self._answer(run, lambda: self.memory.search_events(params, now_ms))

    def _has_text_index(self, coll: Any) -> bool:
        """Whether coordd's text index is there (looked for again now and then)."""
        now = time.monotonic()
        if self._text is None or (not self._text and now - self._text_checked > _TEXT_RECHECK):
            self._text_checked = now
            info = coll.index_information().get(TEXT_INDEX)
            self._text = info is not None and {k for k, _ in info.get("key", ())} == {
                "_fts", "_ftsx"}
        return bool(self._text)

    async def search_work_sessions(self, params: Params, now_ms: float) -> Response:
        """`GET /api/work-sessions/search` from MongoDB."""
        store = self._store()
        try:
            render = render_summary if queries.summary_view(params) else render_session
            limit = limit_param(params, 50)
        except BadRequest as exc:
            return error(400, str(exc))
        q = text_param(params, "q")
        if q is None:
            return self._from_memory(await self.memory.search_work_sessions(params, now_ms))
        rx = _regex(q)
        flt = {"$or": [{"threads.fromAgent": rx}, {"threads.toAgent": rx},
                       {"collabCategory": rx}, {"_id": rx}]}
        ov = store.overrides
        ov.refresh()
        overrides = ov.categories_by_session()
        held = store.view(UNFILTERED).sessions

        def run(db: Any) -> Response:
            sessions = db[SESSIONS]
            total = sessions.count_documents(flt)
            docs = list(sessions.find(flt, {"_id": 1, "eventCount": 1})
                        .sort([("lastTime", -1), ("_id", 1)]).limit(limit))
            aggs = _session_aggs(db, docs, held, ov.categories)
            items = [render(agg, now_ms, overrides.get(agg.ws_id),
                                    store.cache if held.get(agg.ws_id) is agg else None)
                     for agg in aggs]
            tail = {"count": len(items), "total": total, "query": q, "tier": "mongo"}
            return 200, list_document(b"sessions", items, tail)

        return await self._answer(run, lambda: self.memory.search_work_sessions(params, now_ms))

    # ------------------------------------------------------------------ paging

    async def get_events(self, params: Params, now_ms: float) -> Response:
        """`GET /api/events`: from memory while it holds the page, else from MongoDB."""
        store = self._store()
        try:
            q = events_query(store, params)
        except BadRequest as exc:
            return error(400, str(exc))
        first = store.first_seq
        older = first > 1  # events of this epoch before the window (MongoDB has them)
        if older and q.since is not None and _held_since(store, q.since):
            older = False  # every event at or after `since` is in memory
        if not older or (q.since is None and (q.before is None or q.before > first)):
            # Memory holds the page; its cursor goes on into MongoDB where memory ends.
            return self._from_memory(queries.get_events(
                store, params, now_ms, history_before=first if older else None))

        def run(db: Any) -> Response:
            return _events_from_mongo(db, store, q)

        return await self._answer(run, lambda: self.memory.get_events(params, now_ms))

    # ------------------------------------------------------------------ stats

    async def get_stats(self, params: Params, now_ms: float) -> Response:
        """`GET /api/stats`: from memory when `since` is within what it holds, else from
        MongoDB's aggregation pipelines."""
        store = self._store()
        try:
            since = instant_param(params, "since")
            until = instant_param(params, "until")
        except BadRequest as exc:
            return error(400, str(exc))
        if since is not None and (store.first_seq <= 1 or _held_since(store, since)):
            return self._from_memory(await self.memory.get_stats(params, now_ms))
        key = (since, until, store.epoch)
        hit = self._stats_memo.get(key)
        if hit is not None and 0 <= now_ms - hit[0] <= self.stats_max_age * 1000:
            self._n["mongo"] += 1
            return 200, dumps(hit[1])

        caps = self._capabilities()
        accumulators = self._accumulators and (caps is None or caps.accumulators)

        def run(db: Any) -> Response:
            answer = stats_answer(db, store, since, until, accumulators=accumulators)
            if accumulators and FALLBACK_ACCUMULATORS in answer.fallbacks:
                self._accumulators = False  # refused unannounced: not asked again
            body = {"since": since, "until": until, **answer.body, "tier": "mongo",
                    **_fallbacks(answer.fallbacks)}
            self._stats_memo = {k: v for k, v in self._stats_memo.items()
                                if now_ms - v[0] <= self.stats_max_age * 1000}
            self._stats_memo[key] = (now_ms, body)
            return 200, dumps(body)

        return await self._answer(run, lambda: self.memory.get_stats(params, now_ms))

    # ------------------------------------------------------------------ export

    async def export(self, params: Params, now_ms: float) -> Response | Stream:
        """`GET /api/export`: from memory when it holds the range, else MongoDB's older
        documents first, then memory's (see the module docstring)."""
        store = self._store()
        try:
            q = export_query(params)
        except BadRequest as exc:
            return error(400, str(exc))
        first = store.first_seq
        if first <= 1 or (q.since is not None and _held_since(store, q.since)):
            self._n["memory"] += 1
            return await self.memory.export(params, now_ms)
        held = list(store.iter_events())  # a snapshot: the store moves on
        epoch, categories = store.epoch, store.overrides.categories
        flt = _export_filter(q, epoch)
        batch = self.export_batch

        def page(db: Any, after: int, header: bool) -> tuple[list[bytes], int | None]:
            # Blocking: the next page of documents, formatted (and the last seq read).
            docs = list(db[EVENTS].find({**flt, "seq": {"$gt": after, "$lt": first}},
                                        EVENT_PROJECTION).sort("seq", 1).limit(batch))
            events = [document_event(d, categories) for d in docs]
            chunks = list(export_chunks(events, q, header=header))
            return chunks, (events[-1].seq if len(docs) == batch else None)

        try:
            opening = await self._mongo_call(lambda db: page(db, 0, True))
        except Exception as e:
            reason = self._failed(e)
            self._ratelog.warning("fallback", "export from memory: %s", reason)
            return await self.memory.export(params, now_ms)
        self._n["mongo"] += 1
        return Stream(q.content_type, self._export_rest(opening, page, held, q), q.filename)

    async def _export_rest(
        self, opening: tuple[list[bytes], int | None],
        page: Callable[[Any, int, bool], tuple[list[bytes], int | None]],
        held: list[Event], q: ExportQuery,
    ) -> AsyncIterator[bytes]:
        chunks, after = opening
        while True:
            for chunk in chunks:
                yield chunk
            if after is None:
                break
            chunks, after = await self._mongo_call(partial(_next_page, page, after))
        async for chunk in chunks_in_thread(export_chunks(held, q, header=False)):
            yield chunk

    async def _mongo_call(self, blocking: Callable[[Any], Any]) -> Any:
        """`blocking(db)` in a worker thread, bounded by `timeout` (TooSlowError); at once
        `Unreachable` while the server is known to be down."""
        reason = self._unreachable()
        if reason is not None:
            raise Unreachable(reason)
        with trio.fail_after(self.timeout):
            return await self._run_sync(lambda: blocking(self._db()), limiter=self._limiter,
                                        abandon_on_cancel=True)

    def _failed(self, e: BaseException) -> str:
        if isinstance(e, trio.TooSlowError):
            reason = (f"MongoDB did not answer within {self.timeout:g} s "
                      "([mongo] operation_timeout)")
        elif isinstance(e, Unreachable):
            reason = str(e)
        else:
            reason = _reason(e)
        self._n["degraded"] += 1
        self._last_error = reason
        return reason


# ---------------------------------------------------------------------------- helpers


def _fallbacks(names: tuple[str, ...]) -> dict[str, list[str]]:
    """An answer's `"fallbacks"` entry: the fallbacks that shaped it, none without."""
    return {"fallbacks": list(names)} if names else {}
def _next_page(page: Callable[[Any, int, bool], tuple[list[bytes], int | None]], after: int,
               db: Any) -> tuple[list[bytes], int | None]:
    return page(db, after, False)


def _export_filter(q: ExportQuery, epoch: str) -> dict[str, Any]:
    """The documents an export reads from MongoDB (narrowing only: `q.matches` decides)."""
    flt: dict[str, Any] = {"epoch": epoch}
    flt.update(_ts_range(q.since, q.until))
    if q.types is not None:
        flt["type"] = {"$in": sorted(q.types)}
    if q.ws_ids is not None:
        flt["workSessionId"] = {"$in": sorted(q.ws_ids)}
    return flt


def _ts_range(since: float | None, until: float | None) -> dict[str, Any]:
    """The `ts` condition of `since <= ts < until` (either bound optional), or nothing."""
    rng = {op: v for op, v in (("$gte", since), ("$lt", until)) if v is not None}
    return {"ts": rng} if rng else {}


def _reason(e: BaseException) -> str:
    text = str(e).split(", Timeout:")[0].split(", Topology Description:")[0]
    text = text if len(text) <= 300 else text[:299] + "…"
    return f"MongoDB failed: {type(e).__name__}: {text}"


def _held_since(store: Store, since: float) -> bool:
    """Whether memory holds every event at or after `since`: its oldest event (by time)
    is no later than `since` (the log is in time order but for small skews)."""
    oldest = next(store.iter_by_time(), None)
    return oldest is not None and oldest.ts <= since


def _events_from_mongo(db: Any, store: Store, q: EventsQuery) -> Response:
    """Blocking: an `/api/events` page from the current epoch's documents."""
    coll = db[EVENTS]
    epoch = store.epoch
    flt: dict[str, Any] = {"epoch": epoch}
    f = q.filters()
    if f["roles"] is not None:
        flt["derived.role"] = {"$in": sorted(f["roles"])}
    if f["types"] is not None:
        flt["type"] = {"$in": sorted(f["types"])}
    if f["category"] is not None:
        flt["derived.category"] = f["category"]
    flt.update(_ts_range(q.since, q.until))
    cats: dict[str, int] = {}
    for row in coll.aggregate([{"$match": flt},
                               {"$group": {"_id": "$derived.category", "n": {"$sum": 1}}}]):
        cats[str(row["_id"])] = row["n"]
    page_flt = flt if q.before is None else {**flt, "seq": {"$lt": q.before}}
    docs = list(coll.find(page_flt, EVENT_PROJECTION).sort("seq", -1).limit(q.limit + 1))
    more = len(docs) > q.limit
    del docs[q.limit:]
    docs.reverse()
    # Unfiltered, the matched documents are the epoch's: no second scan to count them.
    matched = sum(cats.values())
    total = matched if flt == {"epoch": epoch} else coll.count_documents({"epoch": epoch})
    tail = events_tail(q, count=len(docs), total=total, matched=matched,
                       cats=cats, next_seq=docs[0]["seq"] if more and docs else None,
                       epoch=epoch, seq=store.last_seq, tier="mongo")
    return 200, list_document(b"events", [document_json(d) for d in docs], tail)


def _session_aggs(db: Any, docs: list[Mapping[str, Any]], held: Mapping[str, SessionAgg],
                  categories: CategoryVocabulary) -> list[SessionAgg]:
    """Aggregates for session documents, in their order: memory's where it holds every
    event of the session, else built from the session's event documents."""
    out: dict[str, SessionAgg | None] = {}
    load: list[str] = []
    for d in docs:
        ws_id = d["_id"]
        agg = held.get(ws_id)
        if agg is not None and agg.count >= (d.get("eventCount") or 0):
            out[ws_id] = agg
        else:
            out[ws_id] = None
            load.append(ws_id)
    if load:
        events: dict[str, list[Any]] = {}
        for doc in db[EVENTS].find(
                {"$or": [{"workSessionId": {"$in": load}},
                         {"workSessionId": {"$exists": False},
                          "data.workSessionId": {"$in": load}}]}, EVENT_PROJECTION):
            ev = document_event(doc, categories)
            if ev.ws_id is not None:
                events.setdefault(ev.ws_id, []).append(ev)
        for ws_id in load:
            out[ws_id] = build_session(ws_id, events.get(ws_id, ()))
    return [agg for agg in out.values() if agg is not None]
