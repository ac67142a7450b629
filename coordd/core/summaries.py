"""WorkSessionSummary JSON (the old monitor's shape and key order), assembled from bytes.

Each event is already serialised (`Event.json`); a session's summary is a few static
parts — everything but its status and its category (override) — cached per session in a
byte-budgeted LRU shared by all views (`BlobCache`, invalidated by the views when a
session changes), with the read-time fields spliced in per request. Responses join all
their parts once: concatenating megabytes piecewise costs more than building them.
"""

from __future__ import annotations

from collections import OrderedDict
from operator import attrgetter
from typing import Final

from coordd.core.jsvalues import dumps, js_number
from coordd.core.sessions import SessionAgg, ThreadAgg
from coordd.core.vocabulary import ROLES

__all__ = ["BlobCache", "render_session", "session_parts"]


class BlobCache:
    """Byte-budgeted LRU of the sessions whose JSON parts are cached (shared by views)."""

    def __init__(self, budget_bytes: int = 8 << 20) -> None:
        self.budget = budget_bytes
        self.size = 0
        self._lru: OrderedDict[SessionAgg, int] = OrderedDict()

    def parts(self, agg: SessionAgg) -> tuple[bytes, bytes, bytes, bytes]:
        """The session's static JSON parts, cached."""
        blob = agg.blob
        if blob is not None:
            self._lru.move_to_end(agg)
            return blob
        blob = agg.blob = _parts(agg)
        n = sum(map(len, blob))
        self._lru[agg] = n
        self.size += n
        while self.size > self.budget and len(self._lru) > 1:
            old, m = self._lru.popitem(last=False)
            old.blob = None
            self.size -= m
        return blob

    def discard(self, agg: SessionAgg) -> None:
        """Forget a session whose aggregate changed or vanished."""
        n = self._lru.pop(agg, None)
        if n is not None:
            self.size -= n
        agg.blob = None

    def __len__(self) -> int:
        return len(self._lru)


def _num(v: float) -> bytes:
    return js_number(v).encode()


def _thread_json(th: ThreadAgg) -> bytes:
    evs = th.events
    first = evs[0]
    head = {"id": th.key}
    if first.conversation_id is not None:
        head["conversationId"] = first.conversation_id
    head["fromAgent"] = first.from_agent
    head["toAgent"] = first.to_agent
    return b"".join((
        dumps(head)[:-1],
        b',"startTime":', _num(first.ts),
        b',"lastTime":', _num(evs[-1].ts),
        b',"eventCount":', str(len(evs)).encode(),
        b',"collabCategory":', dumps(th.category),
        b',"collabSubTags":', dumps(list(th.sub_tags)),
        b',"events":[', b",".join([e.json for e in evs]), b"]}",
    ))


def _parts(agg: SessionAgg) -> tuple[bytes, bytes, bytes, bytes]:
    threads = sorted(agg.threads.values(), key=attrgetter("order_key"))
    start, last = agg.start_time, agg.last_time
    rc = agg.role_counts
    head = b"".join((
        b'{"id":', dumps("ws:" + agg.ws_id), b',"workSessionId":', dumps(agg.ws_id),
        b',"status":"',
    ))
    mid = b"".join((
        b'","startTime":', _num(start), b',"lastTime":', _num(last),
        b',"durationMs":', _num(max(0, last - start)),
        b',"threadCount":', str(len(threads)).encode(),
        b',"eventCount":', str(agg.count).encode(),
        b',"collabCategory":',
    ))
    subtags = b',"collabSubTags":' + dumps(list(agg.sub_tags)) + b',"categorySource":"'
    tail = b"".join((
        b'","roleCounts":',
        dumps({ROLES[0]: rc[0], ROLES[1]: rc[1], ROLES[2]: rc[2], ROLES[3]: rc[3]}),
        b',"threads":[', b",".join([_thread_json(th) for th in threads]), b"]}",
    ))
    return head, mid, subtags, tail


_CATEGORY_JSON: dict[str, bytes] = {}


_STATUS_JSON: Final = {s: s.encode() for s in ("ACTIVE", "QUIET", "ARCHIVED")}


def session_parts(
    agg: SessionAgg, now_ms: float, override: str | None, cache: BlobCache | None = None
) -> tuple[bytes, ...]:
    """The WorkSessionSummary JSON as parts to join, with the status and the
    category override applied now (responses join all their parts at once: concatenating
    megabytes piecewise costs more than building them)."""
    head, mid, subtags, tail = cache.parts(agg) if cache is not None else _parts(agg)
    category = override if override is not None else agg.category
    cat = _CATEGORY_JSON.get(category)
    if cat is None:
        cat = _CATEGORY_JSON[category] = dumps(category)
    source = b"manual_override" if override is not None else b"event"
    return (head, _STATUS_JSON[agg.status(now_ms)], mid, cat, subtags, source, tail)


def render_session(
    agg: SessionAgg, now_ms: float, override: str | None, cache: BlobCache | None = None
) -> bytes:
    """The WorkSessionSummary JSON with status and category applied now."""
    return b"".join(session_parts(agg, now_ms, override, cache))
