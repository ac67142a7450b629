"""The REST API's semantics as pure functions: the old monitor's routes, with
its defects fixed (validated parameters, 400 instead of 500 or an empty 200).

Each route function takes the store, the query parameters as decoded `(key, value)`
pairs (repeats and order kept) and the caller's clock, and returns `(status, body)`
with a compact JSON body. The web layer only routes, checks methods and auth, bounds
sizes, and adds headers. Errors are 4xx with `{"error": "<what is wrong>"}`; the
parameter rules are `coordd.core.params`'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from itertools import chain, islice, repeat
from typing import Any, Final

from coordd.core.jsvalues import S, dumps, loads
from coordd.core.params import (
    EventsQuery,
    Params,
    count_param,
    create_param,
    csv_param,
    decode_segment,
    encode_cursor,
    events_query,
    instant_param,
    limit_param,
    roles_param,
    sessions_cursor,
    statuses_param,
    text_param,
    view_category_param,
)
from coordd.core.search import events_matching, sessions_matching
from coordd.core.sessions import UNFILTERED, Filter, SessionAgg, build_session
from coordd.core.stats import compute_stats
from coordd.core.store import Store
from coordd.core.summaries import BlobCache, session_parts, summary_parts
from coordd.core.vocabulary import BUILTIN_VOCABULARY, ROLE_SET, ROLES, STATUSES, CategoryVocabulary
from coordd.errors import BadRequest

__all__ = [
    "Response",
    "error",
    "events_tail",
    "get_events",
    "get_stats",
    "get_work_session",
    "get_work_sessions",
    "health",
    "list_document",
    "ordered_counts",
    "patch_category",
    "patch_category_job",
    "search_events",
    "search_events_job",
    "search_work_sessions",
    "session_id",
    "sessions_document",
    "summary_view",
]

log = logging.getLogger(__name__)

Response = tuple[int, bytes]

_STATUS_SET: Final = frozenset(STATUSES)


# ---------------------------------------------------------------------------- helpers


def _json(status: int, value: Any) -> Response:
    return status, dumps(value)


def error(status: int, message: str) -> Response:
    """`(status, {"error": message})`."""
    return status, dumps({"error": message})


def ordered_counts(counts: Mapping[str, int],
                   categories: CategoryVocabulary = BUILTIN_VOCABULARY) -> dict[str, int]:
    """Category counts in vocabulary order (built-in, then the plugins'), zero counts
    dropped."""
    return categories.ordered(counts)


def list_document(key: bytes, items: Sequence[bytes], tail: dict[str, Any]) -> bytes:
    """`{"<key>":[items...],<tail>}` in one join (one copy of a possibly large body:
    concatenating megabytes piecewise costs more than building them)."""
    parts = [b'{"', key, b'":[']
    if items:
        parts.append(items[0])
        parts.extend(chain.from_iterable(zip(repeat(b","), islice(items, 1, None))))
    parts.append(b"],")
    parts.append(dumps(tail)[1:])
    return b"".join(parts)


def summary_view(params: Params) -> bool:
    """`view` of the work-session lists: `full` (the default: every thread with its events)
    or `summary` (threads summarised, no events: `coordd.core.summaries`); True for
    `summary`, BadRequest for anything else."""
    view = text_param(params, "view")
    if view is None or view == "full":
        return False
    if view == "summary":
        return True
    raise BadRequest(f"invalid view {view!r}: expected full (threads with their events, the "
                     "default) or summary (threads summarised, without events)")


def sessions_document(key: bytes, page: Sequence[SessionAgg], store: Store, now_ms: float,
                       overrides: Mapping[str, str], tail: dict[str, Any], *,
                       summary: bool = False) -> bytes:
    """`{"<key>":[summaries...],<tail>}` for session aggregates (`summary`: the lean
    shape of `view=summary`)."""
    parts = [b'{"', key, b'":[']
    cache = store.cache
    render = summary_parts if summary else session_parts
    for i, agg in enumerate(page):
        if i:
            parts.append(b",")
        parts.extend(render(agg, now_ms, overrides.get(agg.ws_id), cache))
    parts.append(b"],")
    parts.append(dumps(tail)[1:])
    return b"".join(parts)


# ---------------------------------------------------------------------------- routes


def health(now_iso: str) -> Response:
    """`GET /api/health`."""
    return _json(200, {"status": "ok", "timestamp": now_iso})


def events_tail(q: EventsQuery, *, count: int, total: int, matched: int,
                cats: Mapping[str, int], next_seq: int | None, epoch: str, seq: int,
                tier: str) -> dict[str, Any]:
    """Everything of an `/api/events` answer after its `events` list."""
    return {
        "count": count,
        "total": total,
        "totalMatched": matched,
        "role": q.roles[0] if q.roles else None,
        "type": q.types,
        "viewCategory": q.view_category,
        "categoryCounts": ordered_counts(cats, q.categories),
        "roles": q.roles,
        "nextCursor": encode_cursor(["e", epoch, next_seq]) if next_seq is not None else None,
        "epoch": epoch,
        "seq": seq,
        "tier": tier,
    }


def get_events(store: Store, params: Params, now_ms: float, *,
               history_before: int | None = None) -> Response:
    """`GET /api/events`: the last `limit` matches in log order.

    `history_before`: events of this epoch before that seq exist outside the store
    (MongoDB), so the answer's `nextCursor` goes on to them instead of ending at the
    store's first event.
    """
    try:
        q = events_query(store, params)
    except BadRequest as exc:
        return error(400, str(exc))
    filters = q.filters()
    matched, cats = store.count_events(**filters)
    page, more = store.select_events(limit=q.limit, before_seq=q.before, matches=matched,
                                     **filters)
    next_seq = page[0].seq if more and page else None
    if next_seq is None and history_before is not None:
        # Every held match below the cursor is on this page: the rest is older than
        # the store's first event.
        next_seq = history_before
    tail = events_tail(q, count=len(page), total=len(store), matched=matched, cats=cats,
                       next_seq=next_seq, epoch=store.epoch, seq=store.last_seq,
                       tier="memory")
    return 200, list_document(b"events", [e.json_with_seq() for e in page], tail)


def get_work_sessions(store: Store, params: Params, now_ms: float) -> Response:
    """`GET /api/work-sessions`: most recent sessions first (`view=summary`: the lean
    shape, same sessions, counts and cursor)."""
    try:
        summary = summary_view(params)
        limit = limit_param(params, 100)
        statuses = statuses_param(params)
        roles = roles_param(params)
        types = csv_param(params, "type")
        view_cat = view_category_param(store, params)
        sub_tag = text_param(params, "subTag")
        after = sessions_cursor(params)
    except BadRequest as exc:
        return error(400, str(exc))
    ov = store.overrides
    ov.refresh()
    overrides = ov.categories_by_session()
    view = store.view(Filter(frozenset(roles) or None, frozenset(types) or None))
    wanted = frozenset(statuses) or _STATUS_SET
    cat = view_cat if view_cat != "all" else None
    live = "ACTIVE" in wanted or "QUIET" in wanted
    archived = "ARCHIVED" in wanted
    check_status = len(wanted) < 3
    sub = sub_tag.lower() if sub_tag is not None else None

    def ok(agg: SessionAgg) -> bool:
        if check_status and agg.status(now_ms) not in wanted:
            return False
        if cat is not None and overrides.get(agg.ws_id, agg.category) != cat:
            return False
        return sub is None or sub in agg.tags_lower

    page: list[SessionAgg] = []
    cats: dict[str, int] = {}
    if sub is None:
        # Counts from the view's counters; the page is a walk that stops when full.
        counts = view.status_counts(now_ms, overrides, ov.version)
        for st in wanted:
            for c, n in counts[st].items():
                if cat is None or c == cat:
                    cats[c] = cats.get(c, 0) + n
        # Without a cursor the counters say how many sessions match: the walk stops at
        # the last one (a rare category's page never walks every session; an empty one
        # walks none).
        want = limit + 1 if after is not None else min(limit + 1, sum(cats.values()))
        if want:
            for agg in view.iter_sessions(now_ms, after=after, live=live, archived=archived):
                if ok(agg):
                    page.append(agg)
                    if len(page) >= want:
                        break
    else:
        # A sub-tag has no counter: one walk counts every match and takes the page.
        for agg in view.iter_sessions(now_ms, live=live, archived=archived):
            if ok(agg):
                c = overrides.get(agg.ws_id, agg.category)
                cats[c] = cats.get(c, 0) + 1
                if len(page) <= limit and (after is None or agg.sort_key > after):
                    page.append(agg)
    more = len(page) > limit
    del page[limit:]
    tail = {
        "count": len(page),
        "totalMatched": sum(cats.values()),
        "totalSessions": len(view),
        "role": roles,
        "type": types,
        "status": statuses,
        "viewCategory": view_cat,
        "subTag": sub_tag,
        "categoryCounts": ordered_counts(cats, ov.categories),
        "nextCursor": encode_cursor(["s", *page[-1].sort_key]) if more else None,
        "epoch": store.epoch,
        "seq": store.last_seq,
        "tier": "memory",
    }
    return 200, sessions_document(b"sessions", page, store, now_ms, overrides, tail,
                                  summary=summary)


def get_work_session(store: Store, ws_id_raw_segment: str | bytes, params: Params,
                     now_ms: float) -> Response:
    """`GET /api/work-sessions/<id>`; the id segment is percent-decoded here.
    `<id>` is the `workSessionId` or the list's `id` (`ws:<workSessionId>`)."""
    try:
        raw_id = decode_segment(ws_id_raw_segment)
        role = text_param(params, "role")
        if role is not None and role not in ROLE_SET:
            raise BadRequest(f"invalid role {role!r}: expected one of {', '.join(ROLES)}")
        types = csv_param(params, "type")
    except BadRequest as exc:
        return error(400, str(exc))
    ws_id = session_id(store, raw_id)
    if ws_id is None:
        return error(404, f"Work session not found: {raw_id}")
    ov = store.overrides
    ov.refresh()
    flt = Filter(frozenset((role,)) if role else None, frozenset(types) or None)
    view = store.peek_view(flt)
    cache: BlobCache | None = store.cache
    if view is not None:
        agg = view.sessions.get(ws_id)
    else:
        # An uncached filter: aggregate this one session rather than build a whole view.
        base = store.view(UNFILTERED).sessions.get(ws_id)
        agg = None
        if base is not None:
            agg = build_session(ws_id, [e for e in base.events() if flt.matches(e)])
        cache = None
    if agg is None:
        return error(404, f"Work session not found: {raw_id}")
    parts = [b'{"session":', *session_parts(agg, now_ms, ov.get(ws_id), cache), b",",
             dumps({"role": role, "type": types, "tier": "memory"})[1:]]
    return 200, b"".join(parts)


def session_id(store: Store, ws_id: str) -> str | None:
    """The `workSessionId` that `ws_id` names among the held sessions: itself, or the
    list's `id` form `ws:<workSessionId>`; None when there is no such session."""
    sessions = store.view(UNFILTERED).sessions
    if ws_id in sessions:
        return ws_id
    if ws_id.startswith("ws:") and ws_id[3:] in sessions:
        return ws_id[3:]
    return None


def patch_category(store: Store, ws_id_raw_segment: str | bytes, body: bytes,
                   now_ms: float, params: Params = ()) -> Response:
    """`PATCH /api/work-sessions/<id>/category`, after the web layer's auth.

    `<id>` as for the detail route; an unknown session is a 404 unless `create=1`, which
    stores the override under `<id>` as given (for a session whose events are still to
    come). See `patch_category_job` to write the file off the event loop."""
    return patch_category_job(store, ws_id_raw_segment, body, now_ms, params)()


def patch_category_job(store: Store, ws_id_raw_segment: str | bytes, body: bytes,
                       now_ms: float, params: Params = ()) -> Callable[[], Response]:
    """`patch_category` in two steps: this call validates and resolves the session among
    the held ones (on the event loop: it reads the store); the returned function writes
    the overrides file (blocking, fsynced), touches only `store.overrides` and may run in
    a worker thread."""
    try:
        raw_id = decode_segment(ws_id_raw_segment)
        create = create_param(params)
    except BadRequest as exc:
        return _answer(error(400, str(exc)))
    ws_id = session_id(store, raw_id) or (raw_id if create else None)
    if ws_id is None:
        return _answer(error(404, f"Work session not found: {raw_id} (to store an override for "
                                  "a work session that has no events yet, add ?create=1)"))
    try:
        doc = loads(body.decode("utf-8", "replace"))
    except ValueError:
        return _answer(error(400, "Invalid JSON body"))
    if type(doc) is not dict:
        return _answer(error(400, "Request body must be a JSON object"))
    ov = store.overrides
    category = S(doc.get("collabCategory"))
    if category is None or category not in ov.categories:
        raw = doc.get("collabCategory")
        got = "missing" if raw is None else f"got {raw!r}"
        return _answer(error(400, f"collabCategory is required and must be one of "
                                  f"{ov.categories.listing()} ({got})"))
    updated_by = S(doc.get("updatedBy"))

    def write() -> Response:
        try:
            entry = ov.set(ws_id, category, updated_by=updated_by, now_ms=now_ms)
        except OSError as exc:
            log.error("cannot write category overrides %s: %s", ov.path, exc)
            return error(500, "Failed to save the category override")
        return _json(200, {"ok": True, "workSessionId": ws_id, "override": entry.as_json()})

    return write


def _answer(response: Response) -> Callable[[], Response]:
    return lambda: response


def search_events(store: Store, params: Params, now_ms: float) -> Response:
    """`GET /api/events/search` answered from memory: case-insensitive literal match on
    `data.message`, `data.replyPreview`, `data.fromAgent`, `data.toAgent` and `type`,
    newest first (`q` is matched literally, never as a regular expression). See
    `search_events_job` to run it off the event loop."""
    return search_events_job(store, params, now_ms)()


def search_events_job(store: Store, params: Params, now_ms: float) -> Callable[[], Response]:
    """`search_events` in two steps: this call validates and takes the candidate events
    (cheap, on the event loop); the returned function does the matching, touches only
    immutable events, and may run in a worker thread (`trio.to_thread.run_sync`) so that
    a search over 100k events (~0.1-0.4 s) never stalls the loop."""
    try:
        limit = limit_param(params, 50)
        offset = count_param(params, "offset", 0)
        roles = frozenset(roles_param(params)) or None
        view_cat = view_category_param(store, params)
    except BadRequest as exc:
        answer = error(400, str(exc))
        return lambda: answer
    q = text_param(params, "q")
    if q is None:
        answer = _json(200, {"events": [], "count": 0, "total": 0, "offset": offset,
                             "limit": limit, "query": "", "error": "Missing search query (q)",
                             "tier": "memory"})
        return lambda: answer
    cat = view_cat if view_cat != "all" else None
    held = list(store.iter_by_time(reverse=True))  # a snapshot: the store moves on

    def run() -> Response:
        candidates = (ev for ev in held if (roles is None or ev.role in roles)
                      and (cat is None or ev.category == cat))
        total, page = events_matching(candidates, q, offset=offset, limit=limit)
        tail = {"count": len(page), "total": total, "offset": offset, "limit": limit,
                "query": q, "tier": "memory"}
        return 200, list_document(b"events", [e.json_with_seq() for e in page], tail)

    return run


def search_work_sessions(store: Store, params: Params, now_ms: float) -> Response:
    """`GET /api/work-sessions/search` answered from memory: case-insensitive literal
    match on the threads' agents, the category and the id, most recent first
    (`view=summary`: the lean shape)."""
    try:
        summary = summary_view(params)
        limit = limit_param(params, 50)
    except BadRequest as exc:
        return error(400, str(exc))
    q = text_param(params, "q")
    if q is None:
        return _json(200, {"sessions": [], "count": 0, "query": "",
                           "error": "Missing search query (q)", "tier": "memory"})
    ov = store.overrides
    ov.refresh()
    overrides = ov.categories_by_session()
    total, page = sessions_matching(store, q, overrides, limit=limit)
    tail = {"count": len(page), "total": total, "query": q, "tier": "memory"}
    return 200, sessions_document(b"sessions", page, store, now_ms, overrides, tail,
                                  summary=summary)


def get_stats(store: Store, params: Params, now_ms: float) -> Response:
    """`GET /api/stats?since=&until=` (new): aggregate figures over a time range."""
    try:
        since = instant_param(params, "since")
        until = instant_param(params, "until")
    except BadRequest as exc:
        return error(400, str(exc))
    return _json(200, {**compute_stats(store, since, until, now_ms), "tier": "memory"})
