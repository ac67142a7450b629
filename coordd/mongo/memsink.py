"""`MemorySink`: an in-memory `Sink` (`coordd.mongo.sink`) with MongoDB's semantics, for
the tests and benchmarks of the sync worker."""

from __future__ import annotations

import datetime as _dt
import threading
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from coordd.errors import SinkUnavailable
from coordd.mongo.schema import COORDD_EVENT_FIELDS
from coordd.mongo.sink import RetentionResult, SyncMarker, WriteResult, is_stale

__all__ = ["MemorySink"]


class MemorySink:
    """An in-memory `Sink` with MongoDB's semantics, for tests and benchmarks.

    Failure injection: while `down` holds a message every call raises `SinkUnavailable`
    with it; otherwise each call first pops `failures` (an exception to raise) if any.
    `calls` counts calls by method name. Documents are kept as given (no copy of nested
    values), keyed by `eventHash` / `_id`.
    """

    def __init__(self, *, ttl_days: int = 90) -> None:
        self.ttl_days = ttl_days
        self.events: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.marker: SyncMarker | None = None
        self.schema_ready = False
        self.down: str | None = None
        self.failures: list[BaseException] = []
        self.calls: Counter[str] = Counter()
        self.closed = False
        self._lock = threading.Lock()

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if self.down is not None:
            raise SinkUnavailable(self.down)
        if self.failures:
            raise self.failures.pop(0)

    def ensure_schema(self) -> None:
        with self._lock:
            self._enter("ensure_schema")
            self.schema_ready = True

    def read_marker(self) -> SyncMarker | None:
        with self._lock:
            self._enter("read_marker")
            return self.marker

    def write_marker(self, marker: SyncMarker, at: _dt.datetime) -> None:
        with self._lock:
            self._enter("write_marker")
            self.marker = marker

    def upsert_sessions(self, docs: Sequence[Mapping[str, Any]]) -> int:
        with self._lock:
            self._enter("upsert_sessions")
            for doc in docs:
                ws_id = doc["workSessionId"]
                self.sessions.setdefault(ws_id, {"_id": ws_id}).update(doc)
            return len(docs)

    def existing_sessions(self, ws_ids: Collection[str]) -> set[str]:
        with self._lock:
            self._enter("existing_sessions")
            return {w for w in ws_ids if w in self.sessions}

    def touch_sessions(self, ws_ids: Collection[str], at: _dt.datetime) -> int:
        with self._lock:
            self._enter("touch_sessions")
            found = [self.sessions[w] for w in ws_ids if w in self.sessions]
            for doc in found:
                doc["updatedAt"] = at
            return len(found)

    def write_events(self, docs: Sequence[Mapping[str, Any]]) -> WriteResult:
        with self._lock:
            self._enter("write_events")
            inserted = dups = stamped = 0
            events = self.events
            for doc in docs:
                old = events.get(doc["eventHash"])
                if old is None:
                    # The worker builds fresh documents for every attempt: no copy needed.
                    events[doc["eventHash"]] = doc if type(doc) is dict else dict(doc)
                    inserted += 1
                    continue
                dups += 1
                if is_stale(old, doc.get("epoch")):
                    old.update({k: doc[k] for k in COORDD_EVENT_FIELDS if k in doc})
                    stamped += 1
            return WriteResult(inserted, dups, stamped)

    def expire(self, cutoff: _dt.datetime, limit: int) -> RetentionResult:
        with self._lock:
            self._enter("expire")
            old = [k for k, s in self.sessions.items() if s.get("updatedAt", cutoff) < cutoff]
            ids = set(old[:limit])

            def doomed(doc: Mapping[str, Any]) -> bool:
                data = doc.get("data")
                raw_ws = data.get("workSessionId") if isinstance(data, dict) else None
                if doc.get("workSessionId") in ids:
                    return True
                if doc.get("retention") is None:
                    if raw_ws in ids:
                        return True
                    created = doc.get("createdAt")
                    return (not isinstance(raw_ws, str) or raw_ws == "") and (
                        created is not None and created < cutoff)
                inserted = doc.get("insertedAt")
                return (doc.get("retention") == "ttl" and inserted is not None
                        and inserted < cutoff)

            gone = [h for h, d in self.events.items() if doomed(d)]
            for h in gone:
                del self.events[h]
            for ws_id in ids:
                del self.sessions[ws_id]
            return RetentionResult(len(ids), len(gone))

    def close(self) -> None:
        self.closed = True
