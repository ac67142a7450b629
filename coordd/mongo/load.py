"""Reading stored events back from MongoDB: warm restart and the follower's feed.

Blocking functions over a `pymongo.database.Database` (or mongomock's): callers run them
in `trio.to_thread.run_sync`. Events are rebuilt by `document_event`, byte for byte what
the tailing instance stored (the document's `enriched`), with the seqs it gave them.

Warm restart (`warm_history`): with a checkpoint whose epoch MongoDB's sync marker shares
and whose seq the marker covers, the newest `max_events` events up to the checkpoint's
seq come from MongoDB instead of parsing and enriching the log again; the pipeline then
drops the log lines up to the checkpoint unparsed (`Pipeline.run(history=...)`).
Anything else — no checkpoint, its file gone, no marker, another epoch, a marker behind
the checkpoint, documents written before coordd kept the enriched event, a window MongoDB
does not hold whole (retention, a gap), MongoDB unreachable within the bound — means a
cold start from the log, logged with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import trio

from coordd.core.event import Event
from coordd.core.jsvalues import loads
from coordd.core.vocabulary import BUILTIN_VOCABULARY, CategoryVocabulary
from coordd.mongo.schema import EVENTS
from coordd.mongo.sink import PymongoSink, SyncMarker
from coordd.tail.checkpoint import Checkpoint
from coordd.tail.logfile import resumes_from as log_resumes

__all__ = ["EVENT_PROJECTION", "document_event", "document_json", "events_after",
           "latest_events", "load_warm_history", "log_resumes", "warm_history"]

log = logging.getLogger(__name__)

#: What an event query reads of a document (the legacy fields for the old monitor's).
EVENT_PROJECTION: Final = {"_id": 0, "insertedAt": 0, "createdAt": 0, "derived": 0,
                      "eventHash": 0, "retention": 0}
_BATCH: Final = 5000
#: What a warm restart reads of a document: its seq and the enriched event, nothing else
#: (the other fields, `data` above all, repeat what `enriched` holds: half the bytes on the
#: wire and to decode).
_WARM_PROJECTION: Final = {"_id": 0, "seq": 1, "enriched": 1}


#: The enriched fields of the old monitor's document, in its order.
_LEGACY_ENRICHED: Final = ("eventRole", "fromSessionType", "toSessionType", "collabCategory",
                           "collabSubTags", "categoryConfidence", "categorySource")


def _legacy_enriched(doc: Mapping[str, Any]) -> dict[str, Any]:
    # The old monitor kept no copy of the event: rebuild it from its fields (an agentId it
    # stored as "unknown" may have been absent).
    out: dict[str, Any] = {"type": doc.get("type")}
    agent = doc.get("agentId")
    if agent is not None and agent != "unknown":
        out["agentId"] = agent
    out["ts"] = doc.get("ts")
    out["data"] = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    out.update((k, doc[k]) for k in _LEGACY_ENRICHED if k in doc)
    return out


def document_event(doc: Mapping[str, Any],
                   categories: CategoryVocabulary = BUILTIN_VOCABULARY) -> Event:
    """The stored `Event` an event document stands for: byte for byte what coordd stored
    when the document has `enriched`; rebuilt from the legacy fields otherwise. A
    document without `seq` (the old monitor's) gets seq 0. `categories`: the valid ones
    (a category outside them counts as `engineering_build`, as for a log line)."""
    seq = doc.get("seq")
    seq = seq if type(seq) is int else 0
    raw = _enriched_json(doc)
    if raw is not None:
        return Event(seq, loads(raw), raw, categories)
    return Event(seq, _legacy_enriched(doc), categories=categories)


def _enriched_json(doc: Mapping[str, Any]) -> bytes | None:
    """The document's `enriched` JSON: bytes (BSON binary), or a string as an earlier
    coordd wrote it; None when it has none."""
    value = doc.get("enriched")
    if isinstance(value, bytes):  # pymongo's Binary (subtype 0) is read as bytes
        return bytes(value)
    if type(value) is str:
        return value.encode("utf-8")
    return None


def document_json(doc: Mapping[str, Any]) -> bytes:
    """The event of a document as the REST answers show it: the enriched event with its
    `seq` (`Event.json_with_seq`; seq 0 for the old monitor's documents)."""
    raw = _enriched_json(doc)
    if raw is not None:
        seq = doc.get("seq")
        return b"%s,\"seq\":%d}" % (raw[:-1], seq if type(seq) is int else 0)
    return document_event(doc).json_with_seq()


def _events(cursor: Any, categories: CategoryVocabulary) -> list[Event]:
    return [document_event(d, categories) for d in cursor.batch_size(_BATCH)]


def latest_events(db: Any, epoch: str, *, upto: int | None, limit: int,
                  categories: CategoryVocabulary = BUILTIN_VOCABULARY) -> list[Event]:
    """The newest `limit` events of `epoch` (seq ≤ `upto` when given), in seq order."""
    flt: dict[str, Any] = {"epoch": epoch}
    if upto is not None:
        flt["seq"] = {"$lte": upto}
    cursor = db[EVENTS].find(flt, EVENT_PROJECTION).sort("seq", -1).limit(limit)
    out = _events(cursor, categories)
    out.reverse()
    return out


def events_after(db: Any, epoch: str, after: int, *, upto: int | None = None,
                 limit: int = 1000,
                 categories: CategoryVocabulary = BUILTIN_VOCABULARY) -> list[Event]:
    """Events of `epoch` with `after` < seq (≤ `upto`), in seq order, at most `limit`."""
    rng: dict[str, Any] = {"$gt": after}
    if upto is not None:
        rng["$lte"] = upto
    cursor = db[EVENTS].find({"epoch": epoch, "seq": rng}, EVENT_PROJECTION).sort("seq", 1)
    return _events(cursor.limit(limit), categories)


def warm_history(sink: PymongoSink, cp: Checkpoint, *, max_events: int,
                 categories: CategoryVocabulary = BUILTIN_VOCABULARY) -> list[Event] | None:
    """Blocking: the history for a warm restart from `cp`, or None (reason logged)."""
    started = time.perf_counter()
    marker: SyncMarker | None = sink.read_marker()
    if marker is None or marker.epoch != cp.epoch:
        log.info("warm start: MongoDB holds no events of epoch %s (marker %s): reading the log",
                 cp.epoch, marker)
        return None
    if marker.seq < cp.seq:
        log.info("warm start: MongoDB is synced to seq %d only, the checkpoint is at %d: "
                 "reading the log", marker.seq, cp.seq)
        return None
    with sink.errors():
        # One query: whether every document of the window has `enriched` is seen in what
        # it returns (no second scan of the collection for the documents without).
        cursor = sink.db()[EVENTS].find({"epoch": cp.epoch, "seq": {"$lte": cp.seq}},
                                        _WARM_PROJECTION).sort("seq", -1).limit(max_events)
        docs = list(cursor.batch_size(_BATCH))
    missing = sum(1 for d in docs if _enriched_json(d) is None)
    if missing:
        log.info("warm start: %d documents were written before coordd kept the enriched "
                 "event: reading the log", missing)
        return None
    docs.reverse()
    events = [document_event(d, categories) for d in docs]
    # The whole window or nothing: a cold start would read it all from the log, so a
    # MongoDB missing some of it (retention, a gap it never got) is not a warm start.
    first = max(1, cp.seq - max_events + 1)
    if len(events) != cp.seq - first + 1 or (events and events[0].seq != first):
        log.info("warm start: MongoDB holds %d of the %d events %d..%d: reading the log",
                 len(events), cp.seq - first + 1, first, cp.seq)
        return None
    log.info("warm start: %d events of epoch %s loaded from MongoDB in %.2f s",
             len(events), cp.epoch, time.perf_counter() - started)
    return events


async def load_warm_history(
    sink: PymongoSink, cp: Checkpoint | None, log_path: Path, *, max_events: int,
    max_wait: float, run_sync: Callable[..., Any] | None = None,
    categories: CategoryVocabulary = BUILTIN_VOCABULARY,
) -> list[Event] | None:
    """`warm_history` off the event loop, bounded by `max_wait` seconds; None (a cold
    start) when there is no usable checkpoint or MongoDB fails or is too slow.
    Cancellation abandons the worker thread (it only reads)."""
    if cp is None:
        return None
    run = run_sync or trio.to_thread.run_sync
    try:
        if not await run(log_resumes, log_path, cp):
            log.info("warm start: the checkpointed file is gone: reading the log")
            return None
        with trio.move_on_after(max_wait) as scope:
            events: list[Event] | None = await run(
                lambda: warm_history(sink, cp, max_events=max_events, categories=categories),
                abandon_on_cancel=True)
            return events
        if scope.cancelled_caught:
            log.warning("warm start: MongoDB did not answer within %.1f s: reading the log",
                        max_wait)
    except Exception as e:
        log.warning("warm start: MongoDB failed (%s): reading the log", e)
    return None
