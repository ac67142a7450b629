"""Work sessions and their threads, maintained incrementally.

A `View` holds the work sessions built from the events that pass one `Filter` (a role
set and a type set: filters apply *before* aggregation, as in the old monitor, so
status, times and counts describe the filtered events). It is updated
with deltas — events added, events evicted — and touches only the threads those events
belong to:

* a thread keeps its events sorted by `(ts, seq)` (the spec's stable walk) plus two
  pointers: its first event whose category is not `engineering_build` and its first
  event with sub-tags. Appending after the last event and evicting a prefix (the common
  cases) cost O(1) per event; an out-of-order arrival or a non-prefix eviction re-scans
  that thread only;
* a session's figures (times, category, sub-tags, latest event) are derived from its
  threads' ends and pointers in O(#threads); its role counts are kept as counters;
* sessions sit in a `SortedKeyList` by `(-lastTime, first ts, first seq)` — the spec's
  order, "ties keep first-seen order in the ascending walk" — so a page is a slice.

Status is never stored: `status_of` projects it from `lastTime`, the latest event's
`terminal` flag and the caller's clock, so a session turns ARCHIVED
without new events. Category overrides are applied by
the caller at read time. The JSON summaries are assembled in `coordd.core.summaries`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Final, Protocol

from sortedcontainers import SortedKeyList

from coordd.core.event import Event
from coordd.core.vocabulary import ARCHIVE_AFTER_MS, DEFAULT_CATEGORY, ROLES

__all__ = [
    "TASK_HUB_VIEW",
    "UNFILTERED",
    "Filter",
    "SessionAgg",
    "SessionCache",
    "ThreadAgg",
    "View",
    "build_session",
    "status_of",
]

_ROLE_INDEX: Final = {r: i for i, r in enumerate(ROLES)}
#: The walk's `(ts, seq)` order as a C-level key (faster than the `Event.order` property).
_order = attrgetter("ts", "seq")
_sort_key = attrgetter("sort_key")
_INF: Final = math.inf


def status_of(last_time: float, terminal: bool, now_ms: float) -> str:
    """ACTIVE / QUIET / ARCHIVED from the aggregate and the clock: ARCHIVED after 24 h
    without events, else QUIET after a terminal event, else ACTIVE."""
    if now_ms - last_time > ARCHIVE_AFTER_MS:
        return "ARCHIVED"
    return "QUIET" if terminal else "ACTIVE"


@dataclass(frozen=True, slots=True)
class Filter:
    """Role and type filters of a work-session build; None means "no filter"."""

    roles: frozenset[str] | None = None
    types: frozenset[str] | None = None

    def matches(self, ev: Event) -> bool:
        """Whether the event takes part in this build (it must have a work session)."""
        if ev.ws_id is None:
            return False
        if self.types is not None and ev.type not in self.types:
            return False
        return self.roles is None or ev.role in self.roles

    @property
    def unfiltered(self) -> bool:
        """True for the no-filter build."""
        return self.roles is None and self.types is None


UNFILTERED: Final = Filter()
#: Task-Hub's default Conversations timeline (`role=conversation.main&type=a2a.response`).
TASK_HUB_VIEW: Final = Filter(frozenset({"conversation.main"}), frozenset({"a2a.response"}))


class ThreadAgg:
    """One thread of a session: its events in walk order and two scan pointers."""

    __slots__ = ("derived", "events", "key", "noneb", "tagged")

    def __init__(self, key: str) -> None:
        self.key = key
        self.events: list[Event] = []
        #: First event whose category is not engineering_build (the thread's category).
        self.noneb: Event | None = None
        #: First event with sub-tags (the thread's sub-tags).
        self.tagged: Event | None = None
        #: Memo for figures derived from the events (e.g. by `stats`); reset on change.
        self.derived: object = None

    def add(self, evs: list[Event]) -> None:
        """Add events (sorted by order, all new to this thread)."""
        self.derived = None
        events = self.events
        if not events or _order(evs[0]) > _order(events[-1]):
            events.extend(evs)
            if self.noneb is None or self.tagged is None:
                self._scan_from(len(events) - len(evs))
        else:
            self.events = list(heapq.merge(events, evs, key=_order))
            self.noneb = self.tagged = None
            self._scan_from(0)

    def remove(self, evs: list[Event]) -> None:
        """Remove events (sorted by order, all present in this thread)."""
        self.derived = None
        events = self.events
        n = len(evs)
        if all(a is b for a, b in zip(events, evs, strict=False)):
            del events[:n]
            if not events:
                self.noneb = self.tagged = None
                return
            head = _order(events[0])
            if self.noneb is not None and _order(self.noneb) < head:
                self.noneb = None
            if self.tagged is not None and _order(self.tagged) < head:
                self.tagged = None
            if self.noneb is None or self.tagged is None:
                self._scan_from(0)
        else:
            gone = {id(e) for e in evs}
            self.events = [e for e in events if id(e) not in gone]
            self.noneb = self.tagged = None
            self._scan_from(0)

    def _scan_from(self, start: int) -> None:
        # Pointers only move forward: a scan stops as soon as both are known, so the
        # cost is paid once per event over the thread's life.
        events = self.events
        for i in range(start, len(events)):
            ev = events[i]
            if self.noneb is None and ev.category != DEFAULT_CATEGORY:
                self.noneb = ev
            if self.tagged is None and ev.sub_tags:
                self.tagged = ev
            if self.noneb is not None and self.tagged is not None:
                return

    @property
    def category(self) -> str:
        """The earliest non-engineering_build category, else engineering_build."""
        return DEFAULT_CATEGORY if self.noneb is None else self.noneb.category

    @property
    def sub_tags(self) -> tuple[str, ...]:
        """The earliest non-empty sub-tags, else none."""
        return () if self.tagged is None else self.tagged.sub_tags

    @property
    def order_key(self) -> tuple[float, float, int]:
        """Thread order: lastTime descending, then first appearance."""
        first = self.events[0]
        return (-self.events[-1].ts, first.ts, first.seq)


class SessionAgg:
    """One work session under one filter."""

    __slots__ = (
        "blob",
        "category",
        "count",
        "first",
        "latest",
        "role_counts",
        "sort_key",
        "sub_tags",
        "tags_lower",
        "threads",
        "ws_id",
    )

    def __init__(self, ws_id: str) -> None:
        self.ws_id = ws_id
        self.threads: dict[str, ThreadAgg] = {}
        self.count = 0
        self.role_counts = [0, 0, 0, 0]
        self.first: Event | None = None
        self.latest: Event | None = None
        self.category = DEFAULT_CATEGORY
        self.sub_tags: tuple[str, ...] = ()
        #: `sub_tags` lower-cased, for the case-insensitive `subTag` filter.
        self.tags_lower: tuple[str, ...] = ()
        self.sort_key: tuple[float, float, int] = (0.0, 0.0, 0)
        #: Cached static JSON parts (see `render_session`), None when stale.
        self.blob: tuple[bytes, bytes, bytes, bytes] | None = None

    @property
    def start_time(self) -> float:
        """Earliest event time."""
        assert self.first is not None
        return self.first.ts

    @property
    def last_time(self) -> float:
        """Latest event time."""
        assert self.latest is not None
        return self.latest.ts

    @property
    def terminal(self) -> bool:
        """Whether the latest event ends the session's activity."""
        assert self.latest is not None
        return self.latest.terminal

    def status(self, now_ms: float) -> str:
        """The status at `now_ms` (read-time projection)."""
        assert self.latest is not None
        return status_of(self.latest.ts, self.latest.terminal, now_ms)

    def _count_roles(self, evs: list[Event], step: int) -> None:
        rc = self.role_counts
        for ev in evs:
            i = _ROLE_INDEX.get(ev.role) if ev.role is not None else None
            if i is not None:
                rc[i] += step
        self.count += step * len(evs)

    def apply(self, added: Mapping[str, list[Event]], removed: Mapping[str, list[Event]]) -> None:
        """Apply per-thread deltas (lists sorted by order), then re-derive the figures."""
        threads = self.threads
        for key, evs in removed.items():
            th = threads[key]
            th.remove(evs)
            self._count_roles(evs, -1)
            if not th.events:
                del threads[key]
        for key, evs in added.items():
            got = threads.get(key)
            if got is None:
                got = threads[key] = ThreadAgg(key)
            got.add(evs)
            self._count_roles(evs, 1)
        self._derive()

    def _derive(self) -> None:
        first = latest = noneb = tagged = None
        for th in self.threads.values():
            evs = th.events
            if first is None or _order(evs[0]) < _order(first):
                first = evs[0]
            if latest is None or _order(evs[-1]) > _order(latest):
                latest = evs[-1]
            if th.noneb is not None and (noneb is None or _order(th.noneb) < _order(noneb)):
                noneb = th.noneb
            if th.tagged is not None and (tagged is None or _order(th.tagged) < _order(tagged)):
                tagged = th.tagged
        self.first, self.latest = first, latest
        self.category = DEFAULT_CATEGORY if noneb is None else noneb.category
        tags = () if tagged is None else tagged.sub_tags
        if tags is not self.sub_tags:
            self.sub_tags = tags
            self.tags_lower = tuple(t.lower() for t in tags)
        if first is not None and latest is not None:
            self.sort_key = (-latest.ts, first.ts, first.seq)
        self.blob = None

    def events(self) -> list[Event]:
        """All the session's events in walk order."""
        return list(heapq.merge(*(th.events for th in self.threads.values()), key=_order))


class SessionCache(Protocol):
    """What a view needs from the JSON cache (`summaries.BlobCache`): forgetting."""

    def discard(self, agg: SessionAgg) -> None:
        """Forget a session whose aggregate changed or vanished."""


def _group(evs: Iterable[Event]) -> dict[str, dict[str, list[Event]]]:
    out: dict[str, dict[str, list[Event]]] = {}
    for ev in evs:
        assert ev.ws_id is not None
        per = out.get(ev.ws_id)
        if per is None:
            per = out[ev.ws_id] = {}
        lst = per.get(ev.thread)
        if lst is None:
            per[ev.thread] = [ev]
        else:
            lst.append(ev)
    for per in out.values():
        for lst in per.values():
            if len(lst) > 1:
                lst.sort(key=_order)
    return out


def build_session(ws_id: str, events: Iterable[Event]) -> SessionAgg | None:
    """A one-off aggregate of the given events of one session (None if there are none)."""
    groups = _group(events)
    per = groups.get(ws_id)
    if not per:
        return None
    agg = SessionAgg(ws_id)
    agg.apply(per, {})
    return agg


class View:
    """All work sessions under one filter, kept up to date with deltas."""

    def __init__(self, flt: Filter, cache: SessionCache) -> None:
        self.filter = flt
        self.cache = cache
        self.sessions: dict[str, SessionAgg] = {}
        self.order: SortedKeyList = SortedKeyList(key=_sort_key)
        #: Sessions per aggregate category, and those whose latest event is terminal.
        self.cat_counts: dict[str, int] = {}
        self.term_counts: dict[str, int] = {}
        #: Store generation this view reflects; bumped by the store.
        self.gen = -1
        #: Bumped on every change (memo key for derived figures).
        self.version = 0
        self._memo: tuple[tuple[int, int, int], dict[str, dict[str, int]]] | None = None

    def __len__(self) -> int:
        return len(self.sessions)

    def apply(self, added: Iterable[Event], evicted: Iterable[Event]) -> None:
        """Apply one delta of the store: events added and events evicted."""
        match = self.filter.matches
        plus = _group(e for e in added if match(e))
        minus = _group(e for e in evicted if match(e))
        if not plus and not minus:
            return
        self.version += 1
        empty: dict[str, list[Event]] = {}
        for ws_id in plus.keys() | minus.keys():
            agg = self.sessions.get(ws_id)
            if agg is None:
                agg = self.sessions[ws_id] = SessionAgg(ws_id)
            else:
                self._unlink(agg)
            agg.apply(plus.get(ws_id, empty), minus.get(ws_id, empty))
            if agg.threads:
                self._link(agg)
            else:
                del self.sessions[ws_id]

    def _unlink(self, agg: SessionAgg) -> None:
        self.order.remove(agg)
        self.cat_counts[agg.category] -= 1
        if agg.terminal:
            self.term_counts[agg.category] -= 1
        self.cache.discard(agg)

    def _link(self, agg: SessionAgg) -> None:
        self.order.add(agg)
        cat = agg.category
        self.cat_counts[cat] = self.cat_counts.get(cat, 0) + 1
        if agg.terminal:
            self.term_counts[cat] = self.term_counts.get(cat, 0) + 1

    def clear(self) -> None:
        """Drop every session (before a rebuild)."""
        for agg in self.sessions.values():
            self.cache.discard(agg)
        self.sessions.clear()
        self.order.clear()
        self.cat_counts.clear()
        self.term_counts.clear()
        self.version += 1

    # ------------------------------------------------------------------ reading

    def live_count(self, now_ms: float) -> int:
        """How many sessions are not ARCHIVED at `now_ms` (they form a prefix)."""
        return int(self.order.bisect_key_right((ARCHIVE_AFTER_MS - now_ms, _INF, _INF)))

    def iter_sessions(
        self, now_ms: float, *, after: tuple[float, float, int] | None = None,
        live: bool = True, archived: bool = True,
    ) -> Iterator[SessionAgg]:
        """Sessions in order, after the cursor key, limited to live and/or archived."""
        order = self.order
        lo = 0 if after is None else order.bisect_key_right(after)
        hi = len(order)
        if not (live and archived):
            b = self.live_count(now_ms)
            if live:
                hi = b
            else:
                lo = max(lo, b)
        if lo < hi:
            yield from order.islice(lo, hi)

    def status_counts(
        self, now_ms: float, overrides: Mapping[str, str], overrides_version: int
    ) -> dict[str, dict[str, int]]:
        """Status → category → number of sessions, overrides applied (read-only result).

        ARCHIVED sessions are a suffix of the order, so only the smaller side of the
        boundary is walked; the rest comes from the per-category counters.
        """
        b = self.live_count(now_ms)
        key = (self.version, overrides_version, b)
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        order = self.order
        n = len(order)
        active: dict[str, int] = {}
        quiet: dict[str, int] = {}
        archived: dict[str, int] = {}
        if b <= n - b:
            for agg in order.islice(0, b):
                d = quiet if agg.terminal else active
                d[agg.category] = d.get(agg.category, 0) + 1
            for cat, total in self.cat_counts.items():
                archived[cat] = total - active.get(cat, 0) - quiet.get(cat, 0)
        else:
            arch_term: dict[str, int] = {}
            for agg in order.islice(b, n):
                archived[agg.category] = archived.get(agg.category, 0) + 1
                if agg.terminal:
                    arch_term[agg.category] = arch_term.get(agg.category, 0) + 1
            for cat, total in self.cat_counts.items():
                quiet[cat] = self.term_counts.get(cat, 0) - arch_term.get(cat, 0)
                active[cat] = total - quiet[cat] - archived.get(cat, 0)
        out = {"ACTIVE": active, "QUIET": quiet, "ARCHIVED": archived}
        sessions = self.sessions
        for ws_id, cat in overrides.items():
            agg = sessions.get(ws_id)
            if agg is None or agg.category == cat:
                continue
            d = out[agg.status(now_ms)]
            d[agg.category] -= 1
            d[cat] = d.get(cat, 0) + 1
        for d in out.values():
            for cat in [c for c, v in d.items() if v <= 0]:
                del d[cat]
        self._memo = (key, out)
        return out
