"""WorkSessionSummary JSON (the old monitor's shape and key order), assembled from bytes.

Each event is already serialised (`Event.json`); a session's summary is a few static
parts — everything but its status and its category (override) — cached per session in a
byte-budgeted LRU shared by all views (`BlobCache`, invalidated by the views when a
session changes), with the read-time fields spliced in per request. Responses join all
their parts once: concatenating megabytes piecewise costs more than building them.

`view=summary` (the lean answer) has the same session keys in the same order, but each
entry of `threads` is `{id, fromAgent, toAgent, eventCount, startTime, lastTime,
lastEventType, lastOutcome, lastMessagePreview}` and no events:

* `lastOutcome`: `data.outcome` (trimmed, non-empty) of the thread's last event that has
  one, else null;
* `lastMessagePreview`: `data.message` (trimmed, non-empty) of the thread's last event
  that has one, at most `PREVIEW_CHARS` characters (a longer one is cut to
  `PREVIEW_CHARS - 1` and `…`), else null.

Those lean parts are cached beside the full ones (`BlobCache.lean_parts`), forgotten
with them when the session changes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from operator import attrgetter
from typing import Final

from coordd.core.event import Event
from coordd.core.jsvalues import O, S, dumps, js_number, loads
from coordd.core.sessions import SessionAgg, ThreadAgg
from coordd.core.vocabulary import ROLES

__all__ = ["PREVIEW_CHARS", "BlobCache", "message_preview", "render_session",
           "render_summary", "session_parts", "summary_parts", "thread_last"]

#: The longest `lastMessagePreview` of `view=summary`, in characters.
PREVIEW_CHARS: Final = 160

_Parts = tuple[bytes, bytes, bytes, bytes]


class BlobCache:
    """Byte-budgeted LRU of the sessions whose JSON parts are cached (shared by views)."""

    def __init__(self, budget_bytes: int = 8 << 20, lean_budget_bytes: int = 2 << 20) -> None:
        self.budget = budget_bytes
        self.size = 0
        self._lru: OrderedDict[SessionAgg, int] = OrderedDict()
        #: The lean (`view=summary`) parts, by session, least recently used first.
        self.lean_budget = lean_budget_bytes
        self.lean_size = 0
        self._lean: OrderedDict[SessionAgg, _Parts] = OrderedDict()

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

    def lean_parts(self, agg: SessionAgg) -> tuple[bytes, bytes, bytes, bytes]:
        """The session's static JSON parts in the lean shape (`view=summary`), cached."""
        lean = self._lean
        blob = lean.get(agg)
        if blob is not None:
            lean.move_to_end(agg)
            return blob
        blob = lean[agg] = _lean_parts(agg)
        self.lean_size += sum(map(len, blob))
        while self.lean_size > self.lean_budget and len(lean) > 1:
            _, old = lean.popitem(last=False)
            self.lean_size -= sum(map(len, old))
        return blob

    def discard(self, agg: SessionAgg) -> None:
        """Forget a session whose aggregate changed or vanished."""
        n = self._lru.pop(agg, None)
        if n is not None:
            self.size -= n
        agg.blob = None
        old = self._lean.pop(agg, None)
        if old is not None:
            self.lean_size -= sum(map(len, old))

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


def message_preview(text: str) -> str:
    """`text` as `lastMessagePreview` shows it: at most `PREVIEW_CHARS` characters, a
    longer text cut to `PREVIEW_CHARS - 1` and `…`."""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def _data_text(ev: Event, key: bytes, name: str) -> str | None:
    # The byte test skips the parse of an event whose JSON does not mention the key.
    if key not in ev.json:
        return None
    return S(O(loads(ev.json).get("data")).get(name))


def thread_last(th: ThreadAgg) -> tuple[str | None, str | None]:
    """(`lastOutcome`, the last message in full) of a thread: `data.outcome` and
    `data.message` (trimmed, non-empty) of its last event that has each, else None."""
    outcome = message = None
    for ev in reversed(th.events):
        if outcome is None:
            outcome = _data_text(ev, b'"outcome"', "outcome")
        if message is None:
            message = _data_text(ev, b'"message"', "message")
        if outcome is not None and message is not None:
            break
    return outcome, message


def _thread_summary_json(th: ThreadAgg) -> bytes:
    evs = th.events
    first, last = evs[0], evs[-1]
    outcome, message = thread_last(th)
    return b"".join((
        b'{"id":', dumps(th.key),
        b',"fromAgent":', dumps(first.from_agent),
        b',"toAgent":', dumps(first.to_agent),
        b',"eventCount":', str(len(evs)).encode(),
        b',"startTime":', _num(first.ts),
        b',"lastTime":', _num(last.ts),
        b',"lastEventType":', dumps(last.type),
        b',"lastOutcome":', dumps(outcome),
        b',"lastMessagePreview":',
        dumps(message_preview(message) if message is not None else None), b"}",
    ))


def _parts(agg: SessionAgg) -> _Parts:
    return _session_parts(agg, _thread_json)


def _lean_parts(agg: SessionAgg) -> _Parts:
    return _session_parts(agg, _thread_summary_json)


def _session_parts(agg: SessionAgg, thread_json: Callable[[ThreadAgg], bytes]) -> _Parts:
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
        b',"threads":[', b",".join([thread_json(th) for th in threads]), b"]}",
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
    return _apply(cache.parts(agg) if cache is not None else _parts(agg), agg, now_ms, override)


def summary_parts(
    agg: SessionAgg, now_ms: float, override: str | None, cache: BlobCache | None = None
) -> tuple[bytes, ...]:
    """`session_parts` in the lean shape (`view=summary`: threads summarised, no events)."""
    return _apply(cache.lean_parts(agg) if cache is not None else _lean_parts(agg), agg,
                  now_ms, override)


def _apply(parts: _Parts, agg: SessionAgg, now_ms: float,
           override: str | None) -> tuple[bytes, ...]:
    head, mid, subtags, tail = parts
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


def render_summary(
    agg: SessionAgg, now_ms: float, override: str | None, cache: BlobCache | None = None
) -> bytes:
    """`render_session` in the lean shape (`view=summary`)."""
    return b"".join(summary_parts(agg, now_ms, override, cache))
