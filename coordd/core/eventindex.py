"""Secondary indexes over the held events, behind the `/api/events` filters and stats.

* the ring: every held event in log order;
* per role, per type and per category: the events in log order. Each is a `_SeqList`, a
  list with a moving head, so evicting from the front is O(1) amortised — the evicted
  events are always the oldest in log order, hence at the front of every list;
* by `(ts, seq)` (`SortedKeyList`) for `since`/`until` ranges;
* counters per (role, type, category), per agent pair and per outcome, so that the
  counts of an unbounded time range never touch the events.

A query walks the smallest candidate list (or the time slice when that is smaller),
newest first, and stops as soon as its page is full.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from operator import attrgetter
from typing import Any, Final

from sortedcontainers import SortedKeyList

from coordd.core.event import Event
from coordd.core.jsvalues import O, S, loads

__all__ = ["EventIndex", "event_outcome"]

_OUTCOME_TYPES: Final = frozenset({"a2a.response", "a2a.complete"})
#: Evicted references a `_SeqList` keeps at least before compacting.
_COMPACT_MIN: Final = 64
_seq = attrgetter("seq")
#: Key of the time index: `ts` alone. Events are inserted in seq order and the sorted
#: list keeps equal keys in insertion order, so the order is `(ts, seq)` without a key
#: tuple per event (5.6 MiB at 100k events).
_ts = attrgetter("ts")


def event_outcome(ev: Event, enriched: Mapping[str, Any] | None = None) -> str | None:
    """`S(data.outcome)` of an `a2a.response` / `a2a.complete` (`no_reply`, `blocked`,
    `failed`), read from `enriched` (the event's dict) when given, else parsed from the
    stored JSON, only when it mentions an outcome."""
    if ev.type not in _OUTCOME_TYPES or b'"outcome"' not in ev.json:
        return None
    return S(O(O(enriched if enriched is not None else loads(ev.json)).get("data"))
             .get("outcome"))


class _SeqList:
    """Events in log order; eviction advances a head index, compacted now and then.

    The evicted references before the head keep those events alive until compaction, so
    it runs once they are more than an eighth of the list (or 64): the list keeps at most
    ~12 % dead weight, and compacting (a pointer `memmove`) costs at most eight moves per
    evicted event. (Compacting at a half kept up to a whole store of evicted events alive
    in the ring: ~+120 MiB RSS after 100,000 events went through a full 100,000-event
    store.)
    """

    __slots__ = ("head", "items")

    def __init__(self) -> None:
        self.items: list[Event] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def append(self, ev: Event) -> None:
        self.items.append(ev)

    def popfront(self, n: int) -> None:
        self.head += n
        if self.head > _COMPACT_MIN and self.head * 8 > len(self.items):
            del self.items[: self.head]
            self.head = 0

    def first(self) -> Event:
        return self.items[self.head]

    def __iter__(self) -> Iterator[Event]:
        return islice(self.items, self.head, None)

    def after(self, seq: int) -> list[Event]:
        """Events with a seq greater than `seq`."""
        return self.items[bisect_right(self.items, seq, lo=self.head, key=_seq):]

    def iter_desc(self, before_seq: int | None = None) -> Iterator[Event]:
        """Newest first, only events with seq < `before_seq` when given."""
        items = self.items
        hi = len(items) if before_seq is None else bisect_left(
            items, before_seq, lo=self.head, key=_seq)
        for i in range(hi - 1, self.head - 1, -1):
            yield items[i]


class EventIndex:
    """The held events and their indexes; `add` new ones, `evict` the oldest."""

    def __init__(self) -> None:
        self._ring = _SeqList()
        self._by_role: dict[str | None, _SeqList] = {}
        self._by_type: dict[str, _SeqList] = {}
        self._by_cat: dict[str, _SeqList] = {}
        self._by_time: SortedKeyList = SortedKeyList(key=_ts)
        self._triples: dict[tuple[str | None, str, str], int] = {}
        self._pairs: dict[tuple[str, str], int] = {}
        self._outcomes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ring)

    def first(self) -> Event:
        """The oldest held event (the index must not be empty)."""
        return self._ring.first()

    def after(self, seq: int) -> list[Event]:
        """Held events with a seq greater than `seq`, in log order."""
        return self._ring.after(seq)

    def oldest(self, k: int) -> list[Event]:
        """The `k` oldest held events."""
        ring = self._ring
        return ring.items[ring.head : ring.head + k]

    def add(self, evs: Sequence[Event]) -> None:
        """Index new events (the newest in log order)."""
        self._ring.items.extend(evs)
        by_role, by_type, by_cat = self._by_role, self._by_type, self._by_cat
        triples, pairs = self._triples, self._pairs
        for ev in evs:
            # Inlined (no per-index method calls): this loop runs for every event.
            lst = by_role.get(ev.role)
            if lst is None:
                lst = by_role[ev.role] = _SeqList()
            lst.items.append(ev)
            lst = by_type.get(ev.type)
            if lst is None:
                lst = by_type[ev.type] = _SeqList()
            lst.items.append(ev)
            lst = by_cat.get(ev.category)
            if lst is None:
                lst = by_cat[ev.category] = _SeqList()
            lst.items.append(ev)
            t = (ev.role, ev.type, ev.category)
            triples[t] = triples.get(t, 0) + 1
            p = (ev.from_agent, ev.to_agent)
            pairs[p] = pairs.get(p, 0) + 1
            if ev.type in _OUTCOME_TYPES and b'"outcome"' in ev.json:
                outcome = event_outcome(ev)
                if outcome is not None:
                    self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        # One sort and rebuild when the batch is large (cold start), else insertions.
        self._by_time.update(evs)

    def evict(self, evs: list[Event]) -> None:
        """Drop the oldest events (`oldest(k)`), updating every index."""
        # The evicted events are the oldest in log order, hence at the front of every
        # index list they belong to: count them per key and advance the heads.
        self._ring.popfront(len(evs))
        per_role: dict[str | None, int] = {}
        per_type: dict[str, int] = {}
        per_cat: dict[str, int] = {}
        triples = self._triples
        remove = self._by_time.remove
        for ev in evs:
            per_role[ev.role] = per_role.get(ev.role, 0) + 1
            per_type[ev.type] = per_type.get(ev.type, 0) + 1
            per_cat[ev.category] = per_cat.get(ev.category, 0) + 1
            t = (ev.role, ev.type, ev.category)
            n = triples[t] - 1
            if n:
                triples[t] = n
            else:
                del triples[t]
            _decrement(self._pairs, (ev.from_agent, ev.to_agent))
            if ev.type in _OUTCOME_TYPES and b'"outcome"' in ev.json:
                outcome = event_outcome(ev)
                if outcome is not None:
                    _decrement(self._outcomes, outcome)
            remove(ev)
        _advance(self._by_role, per_role)
        _advance(self._by_type, per_type)
        _advance(self._by_cat, per_cat)

    def _lists(
        self, roles: frozenset[str] | None, types: frozenset[str] | None, category: str | None
    ) -> list[_SeqList]:
        """The smallest set of index lists that holds every candidate event."""
        options: list[list[_SeqList]] = [[self._ring]]
        if roles is not None:
            options.append([lst for r in roles if (lst := self._by_role.get(r)) is not None])
        if types is not None:
            options.append([lst for t in types if (lst := self._by_type.get(t)) is not None])
        if category is not None:
            lst = self._by_cat.get(category)
            options.append([lst] if lst is not None else [])
        return min(options, key=lambda ls: sum(map(len, ls)))

    def candidates(
        self, roles: frozenset[str] | None, types: frozenset[str] | None, category: str | None
    ) -> Iterable[Event]:
        """Every event that may match these filters (from the smallest index lists)."""
        lists = self._lists(roles, types, category)
        if len(lists) == 1:
            return iter(lists[0])
        return (ev for lst in lists for ev in lst)

    def _time_bounds(self, since: float | None, until: float | None) -> tuple[int, int]:
        bt = self._by_time
        lo = 0 if since is None else bt.bisect_key_left(since)
        hi = len(bt) if until is None else bt.bisect_key_left(until)
        return lo, max(lo, hi)

    def count(
        self, *, roles: frozenset[str] | None = None, types: frozenset[str] | None = None,
        category: str | None = None, since: float | None = None, until: float | None = None,
    ) -> tuple[int, dict[str, int]]:
        """(matches, matches per category) of a filter over the held events."""
        cats: dict[str, int] = {}
        for (r, t, c), n in self._triples.items():
            if ((roles is None or r in roles) and (types is None or t in types)
                    and (category is None or c == category)):
                cats[c] = cats.get(c, 0) + n
        if since is not None or until is not None:
            lo, hi = self._time_bounds(since, until)
            n = len(self._by_time)
            inside = hi - lo
            if inside <= n - inside:
                cats = {}
                step, parts = 1, [(lo, hi)]
            else:
                step, parts = -1, [(0, lo), (hi, n)]
            for a, b in parts:
                for ev in self._by_time.islice(a, b):
                    if ((roles is None or ev.role in roles) and (types is None or ev.type in types)
                            and (category is None or ev.category == category)):
                        cats[ev.category] = cats.get(ev.category, 0) + step
            cats = {c: k for c, k in cats.items() if k > 0}
        return sum(cats.values()), cats

    def select(
        self, *, limit: int, roles: frozenset[str] | None = None,
        types: frozenset[str] | None = None, category: str | None = None,
        since: float | None = None, until: float | None = None, before_seq: int | None = None,
        matches: int | None = None,
    ) -> tuple[list[Event], bool]:
        """The last `limit` matches in log order (seq < `before_seq` when given), and
        whether older matches exist. `matches`, when known, lets the walk stop early."""
        def ok(ev: Event) -> bool:
            return ((roles is None or ev.role in roles) and (types is None or ev.type in types)
                    and (category is None or ev.category == category)
                    and (since is None or ev.ts >= since) and (until is None or ev.ts < until)
                    and (before_seq is None or ev.seq < before_seq))

        want = limit + 1
        if matches is not None and before_seq is None:
            want = min(want, matches)
        lists = self._lists(roles, types, category)
        size = sum(map(len, lists))
        if since is not None or until is not None:
            lo, hi = self._time_bounds(since, until)
            if hi - lo < size:
                found = sorted((ev for ev in self._by_time.islice(lo, hi) if ok(ev)), key=_seq)
                page = found[-limit:] if limit else []
                return page, len(found) > len(page)
        if len(lists) == 1:
            it: Iterator[Event] = lists[0].iter_desc(before_seq)
        else:
            it = heapq.merge(*(lst.iter_desc(before_seq) for lst in lists), key=_seq,
                             reverse=True)
        out: list[Event] = []
        if want > 0:
            for ev in it:
                if ok(ev):
                    out.append(ev)
                    if len(out) >= want:
                        break
        more = len(out) > limit or (matches is not None and before_seq is None
                                    and matches > len(out))
        out = out[:limit]
        out.reverse()
        return out, more

    def iter_log(self) -> Iterator[Event]:
        """Held events in log order."""
        return iter(self._ring)

    def iter_by_time(
        self, since: float | None = None, until: float | None = None, *, reverse: bool = False
    ) -> Iterator[Event]:
        """Held events in `(ts, seq)` order within [since, until)."""
        lo, hi = self._time_bounds(since, until)
        return self._by_time.islice(lo, hi, reverse=reverse)  # type: ignore[no-any-return]  # untyped library

    def type_counts(self) -> dict[str, int]:
        """Held events per type."""
        return {t: len(lst) for t, lst in self._by_type.items()}

    def counters(self) -> tuple[dict[tuple[str | None, str, str], int],
                                dict[tuple[str, str], int], dict[str, int]]:
        """Held events per (role, type, category), per (fromAgent, toAgent) and per
        outcome (read-only views, kept up to date by `add` and `evict`)."""
        return self._triples, self._pairs, self._outcomes


def _decrement(counts: dict[Any, int], key: Any) -> None:
    n = counts[key] - 1
    if n:
        counts[key] = n
    else:
        del counts[key]


def _advance(index: dict[Any, _SeqList], counts: dict[Any, int]) -> None:
    """Drop `counts[key]` events from the front of each index list; forget empty lists."""
    for key, n in counts.items():
        lst = index[key]
        lst.popfront(n)
        if not len(lst):
            del index[key]
