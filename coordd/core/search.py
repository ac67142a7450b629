"""In-memory answers for the two search routes (`q` matched literally, `role`
validated, newest first).

Upstream meant these for MongoDB (where `q` was used as a raw regular expression); without
MongoDB coordd answers from memory with a case-insensitive *literal* match on the same
fields. Event search walks the events newest first; a look for the needle in each event's
lower-cased JSON bytes rejects most non-matching events before any parsing. It costs a
few microseconds per event, so the route can run it in a worker thread
(`queries.search_events_job`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from coordd.core.event import Event
from coordd.core.jsvalues import O, loads
from coordd.core.sessions import UNFILTERED, SessionAgg
from coordd.core.store import Store

__all__ = ["TextMatcher", "events_matching", "sessions_matching"]

_EVENT_FIELDS: Final = ("message", "replyPreview", "fromAgent", "toAgent")


class TextMatcher:
    """Case-insensitive literal matching, with a byte-level prefilter when it is safe."""

    def __init__(self, query: str) -> None:
        self.needle = query.lower()
        # The prefilter looks for the needle in the event's JSON bytes lowered with
        # `bytes.lower` (ASCII-only folding, a few times faster than a case-insensitive
        # regex), where `"`, `\` and control characters appear escaped: use it only when
        # none of that matters for this needle.
        safe = all(
            (" " <= c < "\x7f" and c not in '"\\') or (c > "\x7f" and c.lower() == c.upper())
            for c in self.needle
        )
        self._pre = self.needle.encode("utf-8") if safe else None

    def text(self, value: object) -> bool:
        """Whether a field value (strings only) contains the needle."""
        return type(value) is str and self.needle in value.lower()

    def event(self, ev: Event) -> bool:
        """Whether an event matches on its type or its data text fields."""
        if self.needle in ev.type.lower():
            return True
        if self._pre is not None and self._pre not in ev.json.lower():
            return False
        data = O(loads(ev.json).get("data"))
        return any(self.text(data.get(k)) for k in _EVENT_FIELDS)


def events_matching(
    events: Iterable[Event], query: str, *, offset: int, limit: int,
) -> tuple[int, list[Event]]:
    """(total matches, the page) of `events` (already filtered, newest first) matching
    `query`. Reads only the immutable events: safe in a worker thread."""
    m = TextMatcher(query)
    total = 0
    page: list[Event] = []
    end = offset + limit
    for ev in events:
        if m.event(ev):
            if offset <= total < end:
                page.append(ev)
            total += 1
    return total, page


def _session_matches(m: TextMatcher, agg: SessionAgg, category: str) -> bool:
    if m.text(agg.ws_id) or m.text(category):
        return True
    for th in agg.threads.values():
        first = th.events[0]
        if m.text(first.from_agent) or m.text(first.to_agent):
            return True
    return False


def sessions_matching(
    store: Store, query: str, overrides: Mapping[str, str], *, limit: int
) -> tuple[int, list[SessionAgg]]:
    """(total matches, the first `limit`) of unfiltered sessions matching `query` on the
    id, the category (override applied) or a thread's agents, most recent first."""
    m = TextMatcher(query)
    total = 0
    page: list[SessionAgg] = []
    for agg in store.view(UNFILTERED).order:
        if _session_matches(m, agg, overrides.get(agg.ws_id, agg.category)):
            if total < limit:
                page.append(agg)
            total += 1
    return total, page

