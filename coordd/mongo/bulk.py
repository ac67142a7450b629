"""What the sync worker does in its worker thread: one batch written, one retention pass.

Blocking functions over a `Sink` (`coordd.mongo.sink`), called through
`trio.to_thread.run_sync` by `coordd.mongo.sync.SyncWorker`; `now` is the wall-clock time
the documents are stamped with.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

from coordd.core.event import Event
from coordd.mongo.schema import event_document
from coordd.mongo.sink import RetentionResult, Sink, SyncMarker, WriteResult

__all__ = ["expire", "write_batch"]


def write_batch(sink: Sink, batch: Sequence[Event], docs: Sequence[Mapping[str, Any]],
                ws_ids: set[str], epoch: str, now: _dt.datetime) -> tuple[WriteResult, int]:
    """The session documents `docs` of the sessions `ws_ids` the batch touched, then the
    events, then the marker "synced up to the batch's last seq". Returns the events'
    `WriteResult` and how many session documents were written."""
    docs = [{**d, "updatedAt": now} for d in docs]
    n_sessions = sink.upsert_sessions(docs) if docs else 0
    with_doc = {d["workSessionId"] for d in docs}
    missing = ws_ids - with_doc
    if missing:
        # Sessions the store no longer holds: keep an existing document alive (its
        # events stay with it); without one, the events expire on their own.
        existing = sink.existing_sessions(missing)
        if existing:
            sink.touch_sessions(existing, now)
            with_doc |= existing
    ev_docs = [event_document(ev, epoch=epoch, inserted_at=now,
                              has_session=ev.ws_id in with_doc) for ev in batch]
    res = sink.write_events(ev_docs) if ev_docs else WriteResult(0, 0)
    if batch:
        sink.write_marker(SyncMarker(epoch, batch[-1].seq), now)
    return res, n_sessions


def expire(sink: Sink, now: _dt.datetime, ttl_days: int, limit: int) -> RetentionResult:
    """One retention pass: at most `limit` sessions older than `ttl_days`, with their
    events (see `Sink.expire`)."""
    return sink.expire(now - _dt.timedelta(days=ttl_days), limit)
