"""`/api/stats` over MongoDB: the figures of `coordd.core.stats`, as aggregation pipelines.

Blocking (pymongo); `coordd.mongo.queries` runs it in a worker thread. Three pipelines
over the event documents coordd wrote (those with `derived`: the old monitor's documents
count once coordd has met their events) with `since <= ts < until`:

1. counts per (category, role, type, agent pair, outcome) — the server groups, Python
   folds the few hundred rows into the per-key counts;
2. per work session: events and distinct threads;
3. per (work session, conversation): its `a2a.send` / `a2a.response` events, put in walk
   order (`ts`, then `seq`) here, from which the send → reply delays are paired as in memory.

Each stage returns a cursor of small documents (no `$facet`: one result document is
limited to 16 MiB). The answer is shaped by the in-memory tier's own function, so the two
tiers cannot drift apart.

Where the server has no `$addToSet`/`$push` (FerretDB) pipelines 2 and 3 become one streamed
cursor folded in Python: `stats_answer` then names the fallback, `FALLBACK_ACCUMULATORS`, which the
route puts in the answer's `"fallbacks"`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from coordd.core.stats import _result as stats_body  # the in-memory answer's shaping
from coordd.core.store import Store
from coordd.mongo.capabilities import is_unsupported
from coordd.mongo.schema import EVENTS

__all__ = ["FALLBACK_ACCUMULATORS", "StatsAnswer", "mongo_stats", "stats_answer", "stats_match"]

log = logging.getLogger(__name__)

_REPLY_TYPES: Final = ("a2a.send", "a2a.response")
_BATCH: Final = 2_000
#: The fallback's name in an answer's `"fallbacks"` (the capability it stands in for):
#: per-session figures folded in Python.
FALLBACK_ACCUMULATORS: Final = "accumulators"


@dataclass(frozen=True, slots=True)
class StatsAnswer:
    """The `/api/stats` figures and the fallbacks that computed them (`FALLBACK_ACCUMULATORS`)."""

    body: dict[str, Any]
    fallbacks: tuple[str, ...]


def stats_match(since: float | None, until: float | None) -> dict[str, Any]:
    """The `$match` of every stats pipeline: coordd's documents in [since, until)."""
    flt: dict[str, Any] = {"derived": {"$exists": True}}
    rng: dict[str, Any] = {}
    if since is not None:
        rng["$gte"] = since
    if until is not None:
        rng["$lt"] = until
    if rng:
        flt["ts"] = rng
    return flt


def _replies(events: Iterable[Mapping[str, Any]]) -> list[float]:
    """Send → reply delays of one conversation's events in walk order (`coordd.core.stats`'s
    rule over documents: a reply with an outcome closes its send without a figure)."""
    pending: deque[float] = deque()
    out: list[float] = []
    for e in events:
        if e.get("t") == "a2a.send":
            pending.append(e["ts"])
        elif pending:
            sent = pending.popleft()
            if e.get("o") is None:
                out.append(e["ts"] - sent)
    return out


def _walk(e: Mapping[str, Any]) -> tuple[Any, Any]:
    seq = e.get("s")
    return e["ts"], seq if type(seq) is int else 0


def mongo_stats(db: Any, store: Store, since: float | None, until: float | None, *,
                accumulators: bool = True) -> dict[str, Any]:
    """Blocking: the `/api/stats` body for [since, until) over MongoDB (without `since`,
    `until` and `tier`, which the caller adds). `store` gives `epoch` and `seq`.
    `accumulators=False` (a server without `$addToSet`/`$push`, e.g. FerretDB) computes the
    per-session figures in Python over one streamed cursor; a server that refuses them
    unannounced gets the same."""
    return stats_answer(db, store, since, until, accumulators=accumulators).body


def stats_answer(db: Any, store: Store, since: float | None, until: float | None, *,
                 accumulators: bool = True) -> StatsAnswer:
    """Blocking: `mongo_stats`'s figures, and which fallback computed them (none when the
    server's accumulators did)."""
    coll = db[EVENTS]
    match = stats_match(since, until)
    by_cat: dict[str, int] = {}
    by_role: dict[str, int] = {}
    by_type: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    outcomes: dict[str, int] = {}
    n = 0
    keys = {"c": "$derived.category", "r": "$derived.role", "t": "$type",
            "f": "$derived.fromAgent", "a": "$derived.toAgent", "o": "$derived.outcome"}
    for row in coll.aggregate([{"$match": match},
                               {"$group": {"_id": keys, "n": {"$sum": 1}}}],
                              allowDiskUse=True):
        k, c = row["_id"], row["n"]
        n += c
        cat, role, etype = str(k.get("c")), k.get("r") or "unknown", str(k.get("t"))
        by_cat[cat] = by_cat.get(cat, 0) + c
        by_role[role] = by_role.get(role, 0) + c
        by_type[etype] = by_type.get(etype, 0) + c
        pair = (str(k.get("f")), str(k.get("a")))
        pairs[pair] = pairs.get(pair, 0) + c
        if k.get("o") is not None:
            outcomes[k["o"]] = outcomes.get(k["o"], 0) + c
    (ws_events, ws_threads, replies), fallbacks = _sessions_and_replies(coll, match,
                                                                        accumulators)
    return StatsAnswer(stats_body(store, n, by_cat, by_role, by_type, pairs, ws_events,
                                  ws_threads, replies, outcomes), fallbacks)


Figures = tuple[list[int], list[int], list[float]]


def _sessions_and_replies(coll: Any, match: dict[str, Any],
                          accumulators: bool) -> tuple[Figures, tuple[str, ...]]:
    """Per work session its events and distinct threads; the send -> reply delays; the
    fallback used, if any."""
    if accumulators:
        try:
            return _on_the_server(coll, match), ()
        except Exception as e:
            if not is_unsupported(e):
                raise
            log.info("MongoDB stats: the server refused an accumulator (%s); computing in "
                     "Python over a cursor", _short(e))
    return _in_python(coll, match), (FALLBACK_ACCUMULATORS,)


def _on_the_server(coll: Any, match: dict[str, Any]) -> Figures:
    ws_events: list[int] = []
    ws_threads: list[int] = []
    for row in coll.aggregate([
            {"$match": {**match, "workSessionId": {"$type": "string"}}},
            {"$group": {"_id": "$workSessionId", "n": {"$sum": 1},
                        "th": {"$addToSet": "$derived.thread"}}},
            {"$project": {"n": 1, "t": {"$size": "$th"}}}], allowDiskUse=True):
        ws_events.append(row["n"])
        ws_threads.append(row["t"])
    replies: list[float] = []
    for row in coll.aggregate([
            {"$match": {**match, "type": {"$in": list(_REPLY_TYPES)},
                        "workSessionId": {"$type": "string"},
                        "derived.conversationId": {"$type": "string"}}},
            {"$group": {"_id": {"w": "$workSessionId", "c": "$derived.conversationId"},
                        "e": {"$push": {"t": "$type", "ts": "$ts", "s": "$seq",
                                        "o": "$derived.outcome"}}}}],
            allowDiskUse=True):
        # Walk order sorted here: `$push` after a `$sort` keeps it on one server, not
        # when a sharded cluster merges the shards' groups.
        replies.extend(_replies(sorted(row["e"], key=_walk)))
    return ws_events, ws_threads, replies


def _in_python(coll: Any, match: dict[str, Any]) -> Figures:
    """The same figures from one cursor over the session events, streamed in batches of
    `_BATCH` small projected documents: memory grows with the sessions and the
    conversations' send/reply events, not with the documents' size."""
    events: dict[str, int] = {}
    threads: dict[str, set[Any]] = {}
    convs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    cursor = coll.find({**match, "workSessionId": {"$type": "string"}},
                       {"_id": 0, "workSessionId": 1, "type": 1, "ts": 1, "seq": 1,
                        "derived.thread": 1, "derived.outcome": 1,
                        "derived.conversationId": 1}).batch_size(_BATCH)
    for doc in cursor:
        ws = doc["workSessionId"]
        derived = doc.get("derived") or {}
        events[ws] = events.get(ws, 0) + 1
        threads.setdefault(ws, set()).add(derived.get("thread"))
        conv = derived.get("conversationId")
        if doc.get("type") in _REPLY_TYPES and isinstance(conv, str):
            convs.setdefault((ws, conv), []).append(
                {"t": doc["type"], "ts": doc["ts"], "s": doc.get("seq"),
                 "o": derived.get("outcome")})
    replies: list[float] = []
    for rows in convs.values():
        replies.extend(_replies(sorted(rows, key=_walk)))
    return list(events.values()), [len(threads[ws]) for ws in events], replies


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 120 else text[:119] + "…"
