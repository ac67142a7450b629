"""Aggregate figures for `GET /api/stats?since=&until=` (new in coordd).

Over the held events with `since <= TS < until` (either bound optional):

* counts by category, role (`"unknown"` when the event has none), type, and agent pair
  (the thread agents: sender and recipient, `"unknown"` standing for absent);
* per-session figures: the number of work sessions, and events and threads per session
  (count / min / p50 / p99 / max / mean), over the events in range;
* response time between an `a2a.send` and the next real `a2a.response` (one without an
  `outcome`) of the same conversation in the same work session, in ms; a response that
  carries an outcome closes the pending send without a figure;
* outcome counts `no_reply` / `blocked` / `failed` (`data.outcome` of `a2a.response` and
  `a2a.complete` events).

Without a range the answer comes from what the store maintains anyway — its counters, the
unfiltered work-session view, and per-thread response times memoised on each conversation
thread — so it costs O(sessions + threads), not O(events). With a range, one pass over the
events in it. Results are memoised per range and reused for `max_age_ms` even when new
events arrived (`seq` in the answer says how far they reach), so a dashboard polling
during heavy ingestion does not recompute on every request.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any, Final

from coordd.core.event import Event
from coordd.core.sessions import UNFILTERED
from coordd.core.store import Store, event_outcome

__all__ = ["OUTCOMES", "compute_stats", "percentile"]

OUTCOMES: Final = ("no_reply", "blocked", "failed")
_MEMO_SIZE: Final = 8
_memo: weakref.WeakKeyDictionary[
    Store, OrderedDict[tuple[Any, ...], tuple[int, str, float, dict[str, Any]]]
] = weakref.WeakKeyDictionary()


def percentile(sorted_values: list[Any], q: float) -> Any:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _summary(values: list[Any]) -> dict[str, Any]:
    values.sort()
    return {
        "count": len(values),
        "min": values[0] if values else None,
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": values[-1] if values else None,
        "mean": round(sum(values) / len(values), 3) if values else None,
    }


def _ranked(counts: dict[Any, int]) -> dict[Any, int]:
    return dict(sorted(((k, v) for k, v in counts.items() if v > 0),
                       key=lambda kv: (-kv[1], kv[0])))


def _replies(events: Iterable[Event]) -> list[float]:
    """Send → reply delays of one conversation's events, in walk order."""
    pending: deque[float] = deque()
    out: list[float] = []
    for ev in events:
        if ev.type == "a2a.send":
            pending.append(ev.ts)
        elif ev.type == "a2a.response" and pending:
            sent = pending.popleft()
            if event_outcome(ev) is None:
                out.append(ev.ts - sent)
    return out


def _all(store: Store) -> dict[str, Any]:
    triples, pairs, outcomes = store.counters()
    by_cat: dict[str, int] = {}
    by_role: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for (role, etype, cat), n in triples.items():
        by_cat[cat] = by_cat.get(cat, 0) + n
        r = role or "unknown"
        by_role[r] = by_role.get(r, 0) + n
        by_type[etype] = by_type.get(etype, 0) + n
    view = store.view(UNFILTERED)
    ws_events: list[int] = []
    ws_threads: list[int] = []
    replies: list[float] = []
    for agg in view.sessions.values():
        ws_events.append(agg.count)
        ws_threads.append(len(agg.threads))
        for th in agg.threads.values():
            if th.key.startswith("conv:"):
                memo = th.derived
                if not isinstance(memo, list):
                    memo = th.derived = _replies(th.events)
                replies.extend(memo)
    return _result(store, sum(by_type.values()), by_cat, by_role, by_type, dict(pairs),
                   ws_events, ws_threads, replies, outcomes)


def _ranged(store: Store, since: float | None, until: float | None) -> dict[str, Any]:
    by_cat: dict[str, int] = {}
    by_role: dict[str, int] = {}
    by_type: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    ws_events: dict[str, int] = {}
    ws_threads: dict[str, set[str]] = {}
    convs: dict[tuple[str, str], list[Event]] = {}
    outcomes: dict[str, int] = {}
    n = 0
    for ev in store.iter_by_time(since, until):
        n += 1
        by_cat[ev.category] = by_cat.get(ev.category, 0) + 1
        role = ev.role or "unknown"
        by_role[role] = by_role.get(role, 0) + 1
        by_type[ev.type] = by_type.get(ev.type, 0) + 1
        pair = (ev.from_agent, ev.to_agent)
        pairs[pair] = pairs.get(pair, 0) + 1
        outcome = event_outcome(ev)
        if outcome is not None:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        ws = ev.ws_id
        if ws is None:
            continue
        ws_events[ws] = ws_events.get(ws, 0) + 1
        ws_threads.setdefault(ws, set()).add(ev.thread)
        if ev.conversation_id is not None and ev.type in ("a2a.send", "a2a.response"):
            convs.setdefault((ws, ev.conversation_id), []).append(ev)
    replies = [d for evs in convs.values() for d in _replies(evs)]
    return _result(store, n, by_cat, by_role, by_type, pairs, list(ws_events.values()),
                   [len(v) for v in ws_threads.values()], replies, outcomes)


def _result(
    store: Store, n: int, by_cat: dict[str, int], by_role: dict[str, int],
    by_type: dict[str, int], pairs: dict[tuple[str, str], int], ws_events: list[int],
    ws_threads: list[int], replies: list[float], outcomes: dict[str, int],
) -> dict[str, Any]:
    return {
        "events": n,
        "byCategory": _ranked(by_cat),
        "byRole": _ranked(by_role),
        "byType": _ranked(by_type),
        "agentPairs": [{"fromAgent": a, "toAgent": b, "count": c}
                       for (a, b), c in _ranked(pairs).items()],
        "sessions": {
            "count": len(ws_events),
            "events": _summary(ws_events),
            "threads": _summary(ws_threads),
        },
        "responseTimeMs": _summary(replies),
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "epoch": store.epoch,
        "seq": store.last_seq,
    }


def compute_stats(
    store: Store, since: float | None, until: float | None, now_ms: float,
    *, max_age_ms: float = 1000.0,
) -> dict[str, Any]:
    """The `/api/stats` body for [since, until); see the module docstring."""
    memo = _memo.setdefault(store, OrderedDict())
    key = (since, until)
    hit = memo.get(key)
    if hit is not None:
        gen, epoch, at, result = hit
        if epoch == store.epoch and (gen == store.generation or 0 <= now_ms - at <= max_age_ms):
            memo.move_to_end(key)
            return result
    result = _all(store) if since is None and until is None else _ranged(store, since, until)
    result = {"since": since, "until": until, **result}
    memo[key] = (store.generation, store.epoch, now_ms, result)
    memo.move_to_end(key)
    while len(memo) > _MEMO_SIZE:
        memo.popitem(last=False)
    return result
