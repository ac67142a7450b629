"""The bounded in-memory event store: seq bookkeeping, eviction, work-session views.

Events arrive in batches in log order (strictly increasing `seq`). The store keeps the
newest `max_events` (applied at start, on reload and on every append) and, per event, only the
compact `event.Event` record, indexed by `eventindex.EventIndex` for the REST filters.

Work sessions live in `sessions.View`s. The unfiltered view and the pinned ones (by
default Task-Hub's conversations view) are updated by every `extend`; other filtered views
(role set × type set, LRU of `max_views`) catch up lazily from a short delta log of what
each generation added and evicted, and rebuild from the indexes only when they fell
further behind than the log reaches.
"""

from __future__ import annotations

import gc
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from coordd.core.event import Event
from coordd.core.eventindex import EventIndex, event_outcome
from coordd.core.overrides import Overrides
from coordd.core.sessions import TASK_HUB_VIEW, UNFILTERED, Filter, View
from coordd.core.summaries import BlobCache

__all__ = ["Store", "StoreStats", "event_outcome"]

#: Batches at least this large are applied with the cyclic GC paused.
_GC_PAUSE_BATCH = 5_000

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
        self._index = EventIndex()
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
        return self._index.first().seq if len(self._index) else self.last_seq + 1

    def __len__(self) -> int:
        return len(self._index)

    def extend(self, events: Sequence[Event]) -> None:
        """Append a batch (seq strictly increasing, after `last_seq`), evict beyond the
        cap, and update the work sessions the batch and the eviction touched.

        A large batch (the history at start-up) runs with the cyclic garbage collector
        paused: building 100k records creates no cycles, yet triggers collections that
        would walk the growing heap again and again (~40 % of the time).
        """
        if not events:
            return
        if len(events) >= _GC_PAUSE_BATCH and gc.isenabled():
            gc.disable()
            try:
                self._extend(events)
            finally:
                gc.enable()
            return
        self._extend(events)

    def _extend(self, events: Sequence[Event]) -> None:
        prev = self.last_seq
        for ev in events:
            if ev.seq <= prev:
                raise ValueError(f"seq {ev.seq} is not after {prev}")
            prev = ev.seq
        index = self._index
        overflow = len(index) + len(events) - self.max_events
        evicted: list[Event] = []
        survivors: Sequence[Event] = events
        dropped = 0
        if overflow > 0:
            k = min(overflow, len(index))
            if k:
                evicted = index.oldest(k)
                index.evict(evicted)
                self._evicted_upto = evicted[-1].seq
            dropped = overflow - k
            if dropped:
                survivors = events[dropped:]
                self._evicted_upto = events[dropped - 1].seq
        index.add(survivors)
        self.last_seq = events[-1].seq
        self.generation += 1
        self.evicted_total += len(evicted) + dropped
        self._log_delta(survivors, evicted)
        for v in self._eager.values():
            v.apply(survivors, evicted)
            v.gen = self.generation

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
        return self._index.after(seq)

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
        v.apply(self._index.candidates(v.filter.roles, v.filter.types, None), ())
        v.gen = self.generation

    # ------------------------------------------------------------------ event queries

    def count_events(
        self, *, roles: frozenset[str] | None = None, types: frozenset[str] | None = None,
        category: str | None = None, since: float | None = None, until: float | None = None,
    ) -> tuple[int, dict[str, int]]:
        """(matches, matches per category) of a filter over the held events."""
        return self._index.count(roles=roles, types=types, category=category, since=since,
                                 until=until)

    def select_events(
        self, *, limit: int, roles: frozenset[str] | None = None,
        types: frozenset[str] | None = None, category: str | None = None,
        since: float | None = None, until: float | None = None, before_seq: int | None = None,
        matches: int | None = None,
    ) -> tuple[list[Event], bool]:
        """The last `limit` matches in log order (seq < `before_seq` when given), and
        whether older matches exist. `matches`, when known, lets the walk stop early."""
        return self._index.select(limit=limit, roles=roles, types=types, category=category,
                                  since=since, until=until, before_seq=before_seq,
                                  matches=matches)

    def iter_events(self) -> Iterator[Event]:
        """Held events in log order."""
        return self._index.iter_log()

    def iter_by_time(
        self, since: float | None = None, until: float | None = None, *, reverse: bool = False
    ) -> Iterator[Event]:
        """Held events in `(ts, seq)` order within [since, until)."""
        return self._index.iter_by_time(since, until, reverse=reverse)

    def type_counts(self) -> dict[str, int]:
        """Held events per type."""
        return self._index.type_counts()

    def counters(self) -> tuple[dict[tuple[str | None, str, str], int],
                                dict[tuple[str, str], int], dict[str, int]]:
        """Held events per (role, type, category), per (fromAgent, toAgent) and per
        outcome (read-only views, kept up to date by `extend`)."""
        return self._index.counters()

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
