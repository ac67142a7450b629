"""Aggregate figures over a time range for `GET /api/stats` (new in coordd).

Over the events held in memory with `since <= TS < until`:

* counts by category, role (`"unknown"` when the event has none), type, and agent pair
  (the thread agents of spec §4.4, `"unknown"` standing for absent);
* per-session figures: number of sessions, and events and threads per session
  (min / p50 / p99 / max / mean), counted over the events in range;
* response time between an `a2a.send` and the next real `a2a.response` (one without an
  `outcome`) in the same conversation, in ms (p50 / p99 / max / mean); a response that
  carries an outcome closes the pending send without a figure;
* outcome counts `no_reply` / `blocked` / `failed` (`data.outcome` of `a2a.response` and
  `a2a.complete` events, parsed lazily from the stored JSON).

Results are memoised per (store generation, since, until).
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict, deque
from typing import Any, Final

from coordd.model import O, S, loads
from coordd.store import Store

__all__ = ["OUTCOMES", "compute_stats", "percentile"]

OUTCOMES: Final = ("no_reply", "blocked", "failed")
_OUTCOME_TYPES: Final = frozenset({"a2a.response", "a2a.complete"})
_MEMO_SIZE: Final = 8
_memo: weakref.WeakKeyDictionary[Store, OrderedDict[tuple[Any, ...], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _summary(values: list[Any]) -> dict[str, float | int | None]:
    values.sort()
    return {
        "count": len(values),
        "min": values[0] if values else None,
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": values[-1] if values else None,
        "mean": round(sum(values) / len(values), 3) if values else None,
    }


def _outcome(json_bytes: bytes) -> str | None:
    if b'"outcome"' not in json_bytes:
        return None
    return S(O(O(loads(json_bytes)).get("data")).get("outcome"))


def compute_stats(
    store: Store, since: float | None, until: float | None, now_ms: float
) -> dict[str, Any]:
    """The `/api/stats` body for [since, until) (either bound optional)."""
    key = (store.generation, store.epoch, since, until)
    memo = _memo.setdefault(store, OrderedDict())
    hit = memo.get(key)
    if hit is not None:
        memo.move_to_end(key)
        return hit
    by_cat: dict[str, int] = {}
    by_role: dict[str, int] = {}
    by_type: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    ws_events: dict[str, int] = {}
    ws_threads: dict[str, set[str]] = {}
    pending: dict[str, deque[float]] = {}
    replies: list[float] = []
    outcomes = dict.fromkeys(OUTCOMES, 0)
    n = 0
    for ev in store.iter_by_time(since, until):
        n += 1
        by_cat[ev.category] = by_cat.get(ev.category, 0) + 1
        role = ev.role or "unknown"
        by_role[role] = by_role.get(role, 0) + 1
        by_type[ev.type] = by_type.get(ev.type, 0) + 1
        pair = (ev.from_agent, ev.to_agent)
        pairs[pair] = pairs.get(pair, 0) + 1
        if ev.ws_id is not None:
            ws_events[ev.ws_id] = ws_events.get(ev.ws_id, 0) + 1
            ws_threads.setdefault(ev.ws_id, set()).add(ev.thread)
        outcome = _outcome(ev.json) if ev.type in _OUTCOME_TYPES else None
        if outcome in outcomes:
            outcomes[outcome] += 1  # type: ignore[index]
        conv = ev.conversation_id
        if conv is None:
            continue
        if ev.type == "a2a.send":
            pending.setdefault(conv, deque()).append(ev.ts)
        elif ev.type == "a2a.response":
            waiting = pending.get(conv)
            if waiting:
                sent = waiting.popleft()
                if outcome is None:
                    replies.append(ev.ts - sent)
    top_pairs = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    result: dict[str, Any] = {
        "since": since,
        "until": until,
        "events": n,
        "byCategory": dict(sorted(by_cat.items(), key=lambda kv: (-kv[1], kv[0]))),
        "byRole": dict(sorted(by_role.items(), key=lambda kv: (-kv[1], kv[0]))),
        "byType": dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        "agentPairs": [{"fromAgent": a, "toAgent": b, "count": c} for (a, b), c in top_pairs],
        "sessions": {
            "count": len(ws_events),
            "events": _summary(list(ws_events.values())),
            "threads": _summary([len(v) for v in ws_threads.values()]),
        },
        "responseTimeMs": _summary(replies),
        "outcomes": outcomes,
        "epoch": store.epoch,
        "seq": store.last_seq,
    }
    memo[key] = result
    while len(memo) > _MEMO_SIZE:
        memo.popitem(last=False)
    return result
