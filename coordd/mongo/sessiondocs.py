"""MongoDB work-session documents, and their status computed at read time.

**Work sessions** (`work_sessions`, `_id` = the work-session id). The old monitor's `$set`
fields, `status` included for old readers, plus `latestTerminal` and `latestType` (with
`lastTime` they let a query compute the status at read time: `status_expression`,
`status_filter`), `roleCounts`, `lastSeq` and `epoch`. `updatedAt` is when coordd last
wrote the session: a session whose `updatedAt` is older than `ttl_days` is removed
together with its events.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from coordd.core.event import Event
from coordd.core.sessions import status_of
from coordd.core.vocabulary import ARCHIVE_AFTER_MS, ROLES
from coordd.mongo.schema import utc_now

__all__ = ["SessionLike", "ThreadLike", "session_document", "session_documents",
           "status_expression", "status_filter"]


class ThreadLike(Protocol):
    """What `session_document` reads of a thread (`coordd.core.sessions.ThreadAgg`)."""

    @property
    def events(self) -> Sequence[Event]: ...  # in walk order, never empty
    @property
    def category(self) -> str: ...


class SessionLike(Protocol):
    """What `session_document` reads of a session (`coordd.core.sessions.SessionAgg`)."""

    @property
    def ws_id(self) -> str: ...
    @property
    def threads(self) -> Mapping[str, ThreadLike]: ...
    @property
    def count(self) -> int: ...
    @property
    def role_counts(self) -> Sequence[int]: ...
    @property
    def category(self) -> str: ...
    @property
    def sub_tags(self) -> tuple[str, ...]: ...
    @property
    def first(self) -> Event | None: ...
    @property
    def latest(self) -> Event | None: ...


def _thread_doc(key: str, th: ThreadLike) -> dict[str, Any]:
    evs = th.events
    first = evs[0]
    doc: dict[str, Any] = {"id": key}
    # An event with a conversation id always lands in that conversation's thread, so the
    # first event's id is the thread's (the thread's id is filled only while still absent).
    if first.conversation_id is not None:
        doc["conversationId"] = first.conversation_id
    doc.update(fromAgent=first.from_agent, toAgent=first.to_agent, startTime=first.ts,
               lastTime=evs[-1].ts, eventCount=len(evs), collabCategory=th.category)
    return doc


def session_document(
    agg: SessionLike, *, now_ms: float, epoch: str, override: str | None = None,
    updated_at: _dt.datetime | None = None,
) -> dict[str, Any]:
    """The `$set` part of a session's upsert (the old monitor's fields + coordd's), `_id` not
    included.

    `override`: the manual category (category override), if any. `status` is computed at
    `now_ms` for old readers; coordd's queries recompute it at read time (`status_expression`).
    """
    first, latest = agg.first, agg.latest
    if first is None or latest is None:
        raise ValueError(f"work session {agg.ws_id!r} has no events")
    threads = sorted(agg.threads.items(), key=lambda kv: (
        -kv[1].events[-1].ts, kv[1].events[0].ts, kv[1].events[0].seq))
    return {
        "workSessionId": agg.ws_id,
        "status": status_of(latest.ts, latest.terminal, now_ms),
        "startTime": first.ts,
        "lastTime": latest.ts,
        "durationMs": max(0, latest.ts - first.ts),
        "threadCount": len(threads),
        "eventCount": agg.count,
        "collabCategory": override if override is not None else agg.category,
        "collabSubTags": list(agg.sub_tags),
        "categorySource": "manual_override" if override is not None else "event",
        "threads": [_thread_doc(k, th) for k, th in threads],
        "updatedAt": updated_at if updated_at is not None else utc_now(),
        "latestTerminal": latest.terminal,
        "latestType": latest.type,
        "roleCounts": dict(zip(ROLES, agg.role_counts, strict=True)),
        "lastSeq": latest.seq,
        "epoch": epoch,
    }


def session_documents(
    sessions: Mapping[str, SessionLike], ws_ids: Iterable[str], *,
    override: Callable[[str], str | None], epoch: str, now_ms: float,
) -> list[dict[str, Any]]:
    """Documents for the ids found in `sessions` (e.g. the store's unfiltered view); ids
    not found are left out. Meant as the sync worker's `session_docs` callable."""
    out = []
    for ws_id in ws_ids:
        agg = sessions.get(ws_id)
        if agg is not None and agg.latest is not None:
            out.append(session_document(agg, now_ms=now_ms, epoch=epoch,
                                        override=override(ws_id)))
    return out


def _legacy_terminal() -> dict[str, Any]:
    # A session the old monitor wrote has no `latestTerminal`; its stored status says QUIET
    # exactly when its latest event was terminal (and it was not yet archived).
    return {"$ifNull": ["$latestTerminal", {"$eq": ["$status", "QUIET"]}]}


def status_expression(now_ms: float) -> dict[str, Any]:
    """An aggregation expression giving a session document's status at `now_ms` (ACTIVE, QUIET
    after a terminal event, ARCHIVED after 24 hours without events)."""
    return {"$switch": {
        "branches": [
            {"case": {"$gt": [{"$subtract": [now_ms, "$lastTime"]}, ARCHIVE_AFTER_MS]},
             "then": "ARCHIVED"},
            {"case": _legacy_terminal(), "then": "QUIET"},
        ],
        "default": "ACTIVE",
    }}


def status_filter(statuses: Collection[str], now_ms: float) -> dict[str, Any]:
    """A `find` filter for sessions whose status at `now_ms` is one of `statuses`."""
    cutoff = now_ms - ARCHIVE_AFTER_MS
    terminal = {"$or": [{"latestTerminal": True},
                        {"latestTerminal": {"$exists": False}, "status": "QUIET"}]}
    live_not = {"$or": [{"latestTerminal": False},
                        {"latestTerminal": {"$exists": False}, "status": {"$ne": "QUIET"}}]}
    parts: list[dict[str, Any]] = []
    if "ARCHIVED" in statuses:
        parts.append({"lastTime": {"$lt": cutoff}})
    if "QUIET" in statuses:
        parts.append({"$and": [{"lastTime": {"$gte": cutoff}}, terminal]})
    if "ACTIVE" in statuses:
        parts.append({"$and": [{"lastTime": {"$gte": cutoff}}, live_not]})
    if not parts:
        return {"_id": {"$in": []}}
    return parts[0] if len(parts) == 1 else {"$or": parts}
