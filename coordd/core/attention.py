"""What needs attention: stuck work, computed incrementally, and session status changes.

`Attention` is fed every accepted event (`observe`) and the clock (`tick`); both return the
changes they caused, in order: attention items that opened or closed, and work sessions
whose status (ACTIVE / QUIET / ARCHIVED) changed. Nothing here scans the store: each event
costs a few dict operations, and clock-driven changes come from a heap of deadlines, so the
caller's timer only has to sleep until `next_deadline()`.

The kinds of item:

- `awaiting_reply`: an `a2a.send` on a thread with no `a2a.response` / `a2a.complete` on
  that thread within `reply_timeout_ms`. It opens at the send's time plus the timeout and
  closes when a reply arrives (or the session is archived).
- `failed`: an `a2a.response` / `a2a.complete` whose outcome is `no_reply`, `blocked` or
  `failed` (keyed by the thread), or a `task.*` event whose status is `failed` or `blocked`
  or a `task.blocked` (keyed by the task id). It closes when the thread or the task moves
  on: a later event on the same thread (task) that does not fail again.
- `silent_session`: an ACTIVE session whose latest event is not terminal and that has had no
  event for `silent_after_ms`. It closes with the session's next event, or when the session
  is archived.

Times are epoch milliseconds of the events and of the caller's clock. A history replayed
through `observe` and then one `tick(now)` gives the same open items as if they had been
followed live, which is what a restart, a snapshot load or a warm start does.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from coordd.core.event import Event
from coordd.core.jsvalues import O, S, loads
from coordd.core.vocabulary import ARCHIVE_AFTER_MS

__all__ = ["KINDS", "Attention", "AttentionItem", "ItemChange", "StatusChange", "replay"]

KINDS: Final = ("awaiting_reply", "failed", "silent_session")
_REPLY_TYPES: Final = frozenset({"a2a.response", "a2a.complete"})
_FAILED_OUTCOMES: Final = frozenset({"no_reply", "blocked", "failed"})
_FAILED_TASK_STATUS: Final = frozenset({"failed", "blocked"})


@dataclass(frozen=True, slots=True)
class AttentionItem:
    """One open (or recently closed) item. `since` is when the condition began (the send,
    the failing event, the session's last event); `seq` is the event that opened it."""

    id: str
    kind: str
    work_session_id: str | None
    thread_id: str | None
    from_agent: str | None
    to_agent: str | None
    since: float
    seq: int
    detail: str
    opened_at: float
    closed_at: float | None = None

    def as_json(self, now_ms: float) -> dict[str, object]:
        """The wire shape (`/api/attention`, the `attention` push)."""
        doc: dict[str, object] = {
            "id": self.id, "kind": self.kind, "workSessionId": self.work_session_id,
            "threadId": self.thread_id, "fromAgent": self.from_agent, "toAgent": self.to_agent,
            "since": self.since, "ageMs": max(0, int(now_ms - self.since)), "seq": self.seq,
            "detail": self.detail, "openedAt": self.opened_at,
        }
        if self.closed_at is not None:
            doc["closedAt"] = self.closed_at
        return doc


@dataclass(frozen=True, slots=True)
class ItemChange:
    """An item opened (`op == "open"`) or closed (`"close"`)."""

    op: str
    item: AttentionItem


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A work session's status changed from `old` to `new` at `at` (ms)."""

    work_session_id: str
    old: str
    new: str
    at: float


Change = ItemChange | StatusChange


@dataclass(slots=True)
class _Session:
    last_ts: float
    last_seq: int
    terminal: bool
    status: str


@dataclass(slots=True)
class _Pending:
    """The oldest unanswered send of a thread."""

    ev_seq: int
    ts: float
    from_agent: str
    to_agent: str


class Attention:
    """The incremental tracker; not thread-safe (one owner, the event loop)."""

    def __init__(self, *, reply_timeout_ms: float = 600_000, silent_after_ms: float = 1_800_000,
                 closed_kept: int = 1_000) -> None:
        if reply_timeout_ms <= 0 or silent_after_ms <= 0:
            raise ValueError("reply_timeout_ms and silent_after_ms must be positive")
        self.reply_timeout_ms = reply_timeout_ms
        self.silent_after_ms = silent_after_ms
        self._open: dict[str, AttentionItem] = {}
        self._closed: deque[AttentionItem] = deque(maxlen=closed_kept)
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[tuple[str | None, str], _Pending] = {}
        # (deadline, check, key): at most one entry per (check, key), in `_scheduled`. A
        # deadline only moves later (a newer event), so an entry that comes due early is
        # pushed again for the real deadline: the heap holds O(sessions + threads waiting).
        self._heap: list[tuple[float, int, str]] = []
        self._scheduled: set[tuple[int, str]] = set()
        self._now = float("-inf")
        self._opened = dict.fromkeys(KINDS, 0)

    # ------------------------------------------------------------------ reading

    def open_items(self) -> list[AttentionItem]:
        """Open items, newest first (by the time the condition began, then seq)."""
        return sorted(self._open.values(), key=lambda i: (i.since, i.seq), reverse=True)

    def closed_items(self) -> list[AttentionItem]:
        """Recently closed items (the last `closed_kept`), most recently closed first."""
        return list(reversed(self._closed))

    def status_of(self, ws_id: str) -> str | None:
        """The status the tracker last reported for a session (None: never seen)."""
        s = self._sessions.get(ws_id)
        return None if s is None else s.status

    def next_deadline(self) -> float | None:
        """The earliest clock time at which `tick` may change something, or None."""
        return self._heap[0][0] if self._heap else None

    def statistics(self) -> dict[str, int]:
        """Open items per kind (every kind present, zeros included)."""
        counts = dict.fromkeys(KINDS, 0)
        for item in self._open.values():
            counts[item.kind] += 1
        return counts

    def oldest_age_ms(self, now_ms: float) -> dict[str, float]:
        """Per kind, how long the oldest open item's condition has lasted (0: none open)."""
        ages = dict.fromkeys(KINDS, 0.0)
        for item in self._open.values():
            ages[item.kind] = max(ages[item.kind], now_ms - item.since)
        return ages

    def opened_totals(self) -> dict[str, int]:
        """Items opened per kind since the tracker started (the history included)."""
        return dict(self._opened)

    # ------------------------------------------------------------------ feeding

    def observe(self, ev: Event, now_ms: float) -> list[Change]:
        """Account for one accepted event (in seq order); the changes it causes, followed
        by whatever the clock at `now_ms` makes due."""
        out: list[Change] = []
        self._now = max(self._now, now_ms)
        if ev.ws_id is not None:
            self._session_event(ev, out)
        key = (ev.ws_id, ev.thread)
        if ev.type == "a2a.send":
            self._close(f"failed:{ev.ws_id}:{ev.thread}", ev.ts, out)
            if key not in self._pending:
                self._pending[key] = _Pending(ev.seq, ev.ts, ev.from_agent, ev.to_agent)
                self._push(ev.ts + self.reply_timeout_ms, 0, _pending_key(key))
        elif ev.type in _REPLY_TYPES:
            self._pending.pop(key, None)
            self._close(f"awaiting_reply:{ev.ws_id}:{ev.thread}", ev.ts, out)
            self._thread_outcome(ev, out)
        elif ev.type.startswith("task."):
            self._task_event(ev, out)
        out.extend(self.tick(now_ms))
        return out

    def tick(self, now_ms: float) -> list[Change]:
        """Apply what the clock makes due up to `now_ms`: overdue replies open, sessions
        fall silent, sessions are archived."""
        out: list[Change] = []
        self._now = max(self._now, now_ms)
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            _, check, key = heapq.heappop(heap)
            self._scheduled.discard((check, key))
            due = (self._reply_due, self._silence_due, self._archive_due)[check]
            later = due(key, now_ms, out)
            if later is not None:
                self._push(later, check, key)
        return out

    # ------------------------------------------------------------------ sessions

    def _session_event(self, ev: Event, out: list[Change]) -> None:
        ws_id = ev.ws_id
        assert ws_id is not None
        s = self._sessions.get(ws_id)
        if s is not None and (ev.ts, ev.seq) < (s.last_ts, s.last_seq):
            return  # an older event (log out of time order): the latest one still decides
        new_status = _status(ev.ts, ev.terminal, self._now)
        if s is None:
            s = self._sessions[ws_id] = _Session(ev.ts, ev.seq, ev.terminal, new_status)
        else:
            old = s.status
            s.last_ts, s.last_seq, s.terminal, s.status = ev.ts, ev.seq, ev.terminal, new_status
            if old != new_status:
                out.append(StatusChange(ws_id, old, new_status, max(ev.ts, self._now)))
        self._close(f"silent_session:{ws_id}", ev.ts, out)
        if new_status != "ARCHIVED":
            # ARCHIVED strictly after 24 h (the store's rule): 1 ms past the boundary.
            self._push(ev.ts + ARCHIVE_AFTER_MS + 1, 2, ws_id)
            if not ev.terminal:
                self._push(ev.ts + self.silent_after_ms, 1, ws_id)

    def _silence_due(self, ws_id: str, now_ms: float, out: list[Change]) -> float | None:
        """Open the session's silence item when due; else the later deadline, or None."""
        s = self._sessions.get(ws_id)
        if s is None or s.terminal or s.status != "ACTIVE":
            return None
        deadline = s.last_ts + self.silent_after_ms
        if deadline > now_ms:
            return deadline  # a newer event moved it
        if f"silent_session:{ws_id}" not in self._open:
            self._open_item(AttentionItem(
                id=f"silent_session:{ws_id}", kind="silent_session", work_session_id=ws_id,
                thread_id=None, from_agent=None, to_agent=None, since=s.last_ts,
                seq=s.last_seq, detail=f"no event for {_minutes(self.silent_after_ms)}",
                opened_at=deadline), out)
        return None

    def _archive_due(self, ws_id: str, now_ms: float, out: list[Change]) -> float | None:
        """Archive the session when due (closing its items); else the later deadline."""
        s = self._sessions.get(ws_id)
        if s is None or s.status == "ARCHIVED":
            return None
        deadline = s.last_ts + ARCHIVE_AFTER_MS + 1
        if deadline > now_ms:
            return deadline
        old, s.status = s.status, "ARCHIVED"
        out.append(StatusChange(ws_id, old, "ARCHIVED", max(deadline, min(now_ms, self._now))))
        for item in [i for i in self._open.values() if i.work_session_id == ws_id]:
            self._close(item.id, deadline, out)
        for key in [k for k in self._pending if k[0] == ws_id]:
            del self._pending[key]
        return None

    # ------------------------------------------------------------------ threads and tasks

    def _reply_due(self, pkey: str, now_ms: float, out: list[Change]) -> float | None:
        """Open the thread's awaiting-reply item when due; else the later deadline."""
        key = _unpending_key(pkey)
        p = self._pending.get(key)
        if p is None:
            return None
        deadline = p.ts + self.reply_timeout_ms
        if deadline > now_ms:
            return deadline
        ws_id, thread = key
        if f"awaiting_reply:{ws_id}:{thread}" in self._open:
            return None
        self._open_item(AttentionItem(
            id=f"awaiting_reply:{ws_id}:{thread}", kind="awaiting_reply",
            work_session_id=ws_id, thread_id=thread, from_agent=p.from_agent,
            to_agent=p.to_agent, since=p.ts, seq=p.ev_seq,
            detail=f"{p.to_agent} has not answered {p.from_agent} for "
                   f"{_minutes(self.reply_timeout_ms)}", opened_at=deadline), out)
        return None

    def _thread_outcome(self, ev: Event, out: list[Change]) -> None:
        item_id = f"failed:{ev.ws_id}:{ev.thread}"
        outcome = None
        if b'"outcome"' in ev.json:
            outcome = S(O(O(loads(ev.json)).get("data")).get("outcome"))
        if outcome not in _FAILED_OUTCOMES:
            self._close(item_id, ev.ts, out)
            return
        self._close(item_id, ev.ts, out)  # a new failure replaces the old one
        self._open_item(AttentionItem(
            id=item_id, kind="failed", work_session_id=ev.ws_id, thread_id=ev.thread,
            from_agent=ev.from_agent, to_agent=ev.to_agent, since=ev.ts, seq=ev.seq,
            detail=f"{ev.type} outcome {outcome}", opened_at=ev.ts), out)

    def _task_event(self, ev: Event, out: list[Change]) -> None:
        doc = O(loads(ev.json))
        data = O(doc.get("data"))
        task_id = S(data.get("taskId")) or S(doc.get("taskId"))
        if task_id is None:
            return
        item_id = f"failed:task:{task_id}"
        status = S(data.get("status")) or S(doc.get("status"))
        self._close(item_id, ev.ts, out)
        if ev.type != "task.blocked" and status not in _FAILED_TASK_STATUS:
            return
        why = S(data.get("reason"))
        what = "blocked" if ev.type == "task.blocked" else f"status {status}"
        self._open_item(AttentionItem(
            id=item_id, kind="failed", work_session_id=ev.ws_id, thread_id=ev.thread,
            from_agent=ev.agent_id, to_agent=None, since=ev.ts, seq=ev.seq,
            detail=f"task {task_id} {what}" + (f": {why}" if why else ""), opened_at=ev.ts),
            out)

    # ------------------------------------------------------------------ items

    def _open_item(self, item: AttentionItem, out: list[Change]) -> None:
        self._open[item.id] = item
        self._opened[item.kind] += 1
        out.append(ItemChange("open", item))

    def _close(self, item_id: str, at: float, out: list[Change]) -> None:
        item = self._open.pop(item_id, None)
        if item is None:
            return
        closed = replace(item, closed_at=max(at, item.opened_at))
        self._closed.append(closed)
        out.append(ItemChange("close", closed))

    def _push(self, deadline: float, check: int, key: str) -> None:
        if (check, key) not in self._scheduled:
            self._scheduled.add((check, key))
            heapq.heappush(self._heap, (deadline, check, key))


def _status(last_ts: float, terminal: bool, now_ms: float) -> str:
    if now_ms - last_ts > ARCHIVE_AFTER_MS:
        return "ARCHIVED"
    return "QUIET" if terminal else "ACTIVE"


def _pending_key(key: tuple[str | None, str]) -> str:
    ws_id, thread = key
    return ("-" if ws_id is None else "+" + ws_id) + "\x00" + thread


def _unpending_key(pkey: str) -> tuple[str | None, str]:
    ws, thread = pkey.split("\x00", 1)
    return (None if ws == "-" else ws[1:]), thread


def _minutes(ms: float) -> str:
    minutes = ms / 60_000
    return f"{minutes:g} min" if minutes >= 1 else f"{ms / 1000:g} s"


def replay(events: Iterable[Event], now_ms: float, *, reply_timeout_ms: float = 600_000,
           silent_after_ms: float = 1_800_000) -> Attention:
    """A tracker that has seen `events` (seq order) and the clock up to `now_ms`: the
    state after a restart, a snapshot load or a warm start."""
    att = Attention(reply_timeout_ms=reply_timeout_ms, silent_after_ms=silent_after_ms)
    for ev in events:
        att.observe(ev, float("-inf"))
    att.tick(now_ms)
    return att
