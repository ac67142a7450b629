"""The bounded in-memory event store: ring, indexes, seq bookkeeping, work-session views.

Events arrive in batches in log order (strictly increasing `seq`). The store keeps the
newest `max_events` (spec §5.1 cap, applied everywhere: §9 C7) and, per event, only the
compact `model.Event` record. Secondary indexes serve the REST filters without scanning:

* per role, per type and per category: the events in log order (`_SeqList`, a list with
  a moving head so eviction from the front is O(1) amortised);
* by `(ts, seq)` (`SortedKeyList`) for `since`/`until` ranges;
* counts per (role, type, category) so `totalMatched`/`categoryCounts` of an unbounded
  time range never touch the events.

Work sessions live in `sessions.View`s. The unfiltered view and the pinned ones (by
default Task-Hub's conversations view) are updated by every `extend`; other filtered views
(role set × type set, LRU of `max_views`) catch up lazily from a short delta log of what
each generation added and evicted, and rebuild from the indexes only when they fell
further behind than the log reaches.
"""

from __future__ import annotations

import heapq
import secrets
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter
from typing import Any, Final

from sortedcontainers import SortedKeyList

from coordd.model import Event, O, S, loads
from coordd.overrides import Overrides
from coordd.sessions import TASK_HUB_VIEW, UNFILTERED, BlobCache, Filter, View

__all__ = ["Applied", "Store", "StoreStats", "event_outcome"]

_OUTCOME_TYPES: Final = frozenset({"a2a.response", "a2a.complete"})
_seq = attrgetter("seq")
_order = attrgetter("order")
_NEG_INF: Final = float("-inf")


def event_outcome(ev: Event) -> str | None:
    """`S(data.outcome)` of an `a2a.response` / `a2a.complete` (`no_reply`, `blocked`,
    `failed`), parsed from the stored JSON only when it mentions an outcome."""
    if ev.type not in _OUTCOME_TYPES or b'"outcome"' not in ev.json:
        return None
    return S(O(O(loads(ev.json)).get("data")).get("outcome"))


@dataclass(frozen=True, slots=True)
class Applied:
    """What one `Store.extend` did.

    `affected_ws_ids`: distinct work-session ids of the batch in first-seen order (the
    WebSocket's `affectedWorkSessions`); `evicted`: events dropped to respect the cap
    (including batch events that never fitted); `first_seq`/`last_seq`: the batch's range.
    """

    affected_ws_ids: tuple[str, ...]
    evicted: int
    first_seq: int = 0
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of the store for `/metrics` and `--check`."""

    events: int
    sessions: int
    sessions_by_status: dict[str, int]
    evicted: int
    views_cached: int
    first_seq: int
    last_seq: int
    epoch: str
    generation: int
    blob_cache_bytes: int
    rebuilds: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class _SeqList:
    """Events in log order; eviction advances a head index, compacted now and then."""

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
        if self.head > 1024 and self.head * 2 > len(self.items):
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


class Store:
    """Bounded event store with indexes and incrementally maintained work sessions."""

    def __init__(
        self,
        *,
        max_events: int = 100_000,
        overrides: Overrides | None = None,
        epoch: str | None = None,
        max_views: int = 32,
        blob_cache_bytes: int = 8 << 20,
        delta_log_events: int = 20_000,
        pinned: Iterable[Filter] = (TASK_HUB_VIEW,),
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.max_events = max_events
        self.overrides = overrides if overrides is not None else Overrides()
        self.epoch = epoch if epoch is not None else secrets.token_hex(8)
        self.max_views = max_views
        self.last_seq = 0
        self.evicted_total = 0
        self.generation = 0
        self.rebuilds = 0
        self._evicted_upto = 0
        self._ring = _SeqList()
        self._by_role: dict[str | None, _SeqList] = {}
        self._by_type: dict[str, _SeqList] = {}
        self._by_cat: dict[str, _SeqList] = {}
        self._by_time: SortedKeyList = SortedKeyList(key=_order)
        self._triples: dict[tuple[str | None, str, str], int] = {}
        #: Held events per (fromAgent, toAgent) and per outcome, for `/api/stats`.
        self._pairs: dict[tuple[str, str], int] = {}
        self._outcomes: dict[str, int] = {}
        self._log: deque[tuple[int, Sequence[Event], Sequence[Event]]] = deque()
        self._log_events = 0
        self._log_budget = delta_log_events
        self.cache = BlobCache(blob_cache_bytes)
        self._unfiltered = View(UNFILTERED, self.cache)
        #: Views updated by every `extend` (never evicted): the unfiltered one and the
        #: pinned filters (by default Task-Hub's conversations view).
        self._eager: dict[Filter, View] = {UNFILTERED: self._unfiltered}
        for flt in pinned:
            self._eager.setdefault(flt, View(flt, self.cache))
        for v in self._eager.values():
            v.gen = 0
        #: Lazily maintained filtered views, least recently used first.
        self._views: OrderedDict[Filter, View] = OrderedDict()

    # ------------------------------------------------------------------ ingest

    @property
    def first_seq(self) -> int:
        """Seq of the oldest event held (last_seq + 1 when empty)."""
        return self._ring.first().seq if len(self._ring) else self.last_seq + 1

    def __len__(self) -> int:
        return len(self._ring)

    def extend(self, events: Sequence[Event]) -> Applied:
        """Append a batch (seq strictly increasing, after `last_seq`), evict beyond the
        cap, and update the work sessions the batch and the eviction touched."""
        if not events:
            return Applied((), 0)
        prev = self.last_seq
        for ev in events:
            if ev.seq <= prev:
                raise ValueError(f"seq {ev.seq} is not after {prev}")
            prev = ev.seq
        ring = self._ring
        overflow = len(ring) + len(events) - self.max_events
        evicted: list[Event] = []
        survivors: Sequence[Event] = events
        dropped = 0
        if overflow > 0:
            k = min(overflow, len(ring))
            if k:
                evicted = ring.items[ring.head : ring.head + k]
                self._unindex(evicted)
            dropped = overflow - k
            if dropped:
                survivors = events[dropped:]
                self._evicted_upto = events[dropped - 1].seq
        for ev in survivors:
            self._index(ev)
        self.last_seq = events[-1].seq
        self.generation += 1
        self.evicted_total += len(evicted) + dropped
        self._log_delta(survivors, evicted)
        for v in self._eager.values():
            v.apply(survivors, evicted)
            v.gen = self.generation
        affected = dict.fromkeys(ev.ws_id for ev in events if ev.ws_id is not None)
        return Applied(tuple(affected), len(evicted) + dropped, events[0].seq, events[-1].seq)

    def _index(self, ev: Event) -> None:
        self._ring.append(ev)
        for index, key in ((self._by_role, ev.role), (self._by_type, ev.type),
                           (self._by_cat, ev.category)):
            lst = index.get(key)  # type: ignore[attr-defined]
            if lst is None:
                lst = index[key] = _SeqList()  # type: ignore[index]
            lst.append(ev)
        self._by_time.add(ev)
        t = (ev.role, ev.type, ev.category)
        self._triples[t] = self._triples.get(t, 0) + 1
        p = (ev.from_agent, ev.to_agent)
        self._pairs[p] = self._pairs.get(p, 0) + 1
        outcome = event_outcome(ev)
        if outcome is not None:
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1

    def _unindex(self, evs: list[Event]) -> None:
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
            outcome = event_outcome(ev)
            if outcome is not None:
                _decrement(self._outcomes, outcome)
            remove(ev)
        for index, counts in ((self._by_role, per_role), (self._by_type, per_type),
                              (self._by_cat, per_cat)):
            for key, n in counts.items():
                lst = index[key]  # type: ignore[index]
                lst.popfront(n)
                if not len(lst):
                    del index[key]  # type: ignore[attr-defined]
        self._evicted_upto = evs[-1].seq

    def _log_delta(self, added: Sequence[Event], evicted: Sequence[Event]) -> None:
        # Only lazy views read the log, and only the entries after their generation:
        # keep nothing older (evicted events stay alive while the log holds them), and
        # at most the budget (a view further behind rebuilds).
        log = self._log
        floor = min((v.gen for v in self._views.values()), default=self.generation)
        log.append((self.generation, added, evicted))
        self._log_events += len(added) + len(evicted)
        while log and (log[0][0] <= floor or self._log_events > self._log_budget):
            _, a, e = log.popleft()
            self._log_events -= len(a) + len(e)

    # ------------------------------------------------------------------ resume

    def events_since(self, seq: int) -> list[Event] | None:
        """Events after `seq` in log order; None when some of them were already evicted."""
        if seq < self._evicted_upto:
            return None
        return self._ring.after(seq)

    # ------------------------------------------------------------------ views

    def view(self, flt: Filter) -> View:
        """The up-to-date work-session view for a filter (created on first use)."""
        eager = self._eager.get(flt)
        if eager is not None:
            return eager
        v = self._views.get(flt)
        if v is None:
            v = View(flt, self.cache)
            self._rebuild(v)
            self._views[flt] = v
            while len(self._views) > self.max_views:
                _, old = self._views.popitem(last=False)
                old.clear()
        else:
            self._views.move_to_end(flt)
            self._catch_up(v)
        return v

    def peek_view(self, flt: Filter) -> View | None:
        """The view for a filter if it is cached (brought up to date), else None."""
        eager = self._eager.get(flt)
        if eager is not None:
            return eager
        v = self._views.get(flt)
        if v is not None:
            self._views.move_to_end(flt)
            self._catch_up(v)
        return v

    def _catch_up(self, v: View) -> None:
        if v.gen == self.generation:
            return
        floor = self._log[0][0] if self._log else self.generation + 1
        if v.gen + 1 < floor:
            self._rebuild(v)
            return
        for gen, added, evicted in self._log:
            if gen > v.gen:
                v.apply(added, evicted)
        v.gen = self.generation

    def _rebuild(self, v: View) -> None:
        self.rebuilds += 1
        v.clear()
        v.apply(self._candidates(v.filter.roles, v.filter.types, None), ())
        v.gen = self.generation

    # ------------------------------------------------------------------ event queries

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

    def _candidates(
        self, roles: frozenset[str] | None, types: frozenset[str] | None, category: str | None
    ) -> Iterable[Event]:
        lists = self._lists(roles, types, category)
        if len(lists) == 1:
            return iter(lists[0])
        return (ev for lst in lists for ev in lst)

    def _time_bounds(self, since: float | None, until: float | None) -> tuple[int, int]:
        bt = self._by_time
        lo = 0 if since is None else bt.bisect_key_left((since, _NEG_INF))
        hi = len(bt) if until is None else bt.bisect_key_left((until, _NEG_INF))
        return lo, max(lo, hi)

    def count_events(
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

    def select_events(
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

    def iter_events(self) -> Iterator[Event]:
        """Held events in log order."""
        return iter(self._ring)

    def iter_by_time(
        self, since: float | None = None, until: float | None = None, *, reverse: bool = False
    ) -> Iterator[Event]:
        """Held events in `(ts, seq)` order within [since, until)."""
        lo, hi = self._time_bounds(since, until)
        return self._by_time.islice(lo, hi, reverse=reverse)  # type: ignore[no-any-return]

    def type_counts(self) -> dict[str, int]:
        """Held events per type."""
        return {t: len(lst) for t, lst in self._by_type.items()}

    def counters(self) -> tuple[dict[tuple[str | None, str, str], int],
                                dict[tuple[str, str], int], dict[str, int]]:
        """Held events per (role, type, category), per (fromAgent, toAgent) and per
        outcome (read-only views, kept up to date by `extend`)."""
        return self._triples, self._pairs, self._outcomes

    # ------------------------------------------------------------------ statistics

    def statistics(self, now_ms: float | None = None) -> StoreStats:
        """Figures for `/metrics` and `--check` (session statuses as of `now_ms`)."""
        if now_ms is None:
            now_ms = time.time() * 1000.0
        ov = self.overrides
        counts = self._unfiltered.status_counts(
            now_ms, ov.categories_by_session(), ov.version)
        return StoreStats(
            events=len(self),
            sessions=len(self._unfiltered),
            sessions_by_status={s: sum(d.values()) for s, d in counts.items()},
            evicted=self.evicted_total,
            views_cached=len(self._views),
            first_seq=self.first_seq,
            last_seq=self.last_seq,
            epoch=self.epoch,
            generation=self.generation,
            blob_cache_bytes=self.cache.size,
            rebuilds=self.rebuilds,
            by_type=self.type_counts(),
        )


def _decrement(counts: dict[Any, int], key: Any) -> None:
    n = counts[key] - 1
    if n:
        counts[key] = n
    else:
        del counts[key]
