"""MongoDB documents and indexes: the old monitor's schema plus what coordd adds.

Pure: builds dicts and index specifications, talks to no database (no pymongo import).

**Events** (`coordination_events`). The old monitor's recipe, unchanged, so a database it
filled keeps working and the same event is never stored twice (`eventHash`, unique):
`{type, agentId (S() or "unknown"), ts (TS), createdAt (Date(TS)), data (enriched), eventRole,
collabCategory, collabSubTags, categoryConfidence, categorySource, fromSessionType,
toSessionType, eventHash}`. coordd adds:

* `seq`, `epoch` — the event's place in coordd's sequence space (cursor paging, follower
  polling and warm restart read by `(epoch, seq)`);
* `insertedAt` — when coordd wrote it (retention counts from insertion, not from the
  event's own time, so old events re-inserted at a restart are not expired at once);
* `workSessionId` — `S(data.workSessionId)`, the exact key its session document has
  (`data.workSessionId` may carry white space);
* `retention` — `"session"` when the event belongs to a session that has a document (it is
  removed together with that session, never on its own), `"ttl"` otherwise (a TTL index on
  `insertedAt` removes it `ttl_days` after insertion). A TTL index cannot be limited to
  "documents without a session" (`$exists: false` is not allowed in a partial index), hence
  the explicit field;
* `enriched` — the enriched event exactly as coordd stores it (its compact JSON, UTF-8
  bytes: BSON binary, so neither side decodes it): a warm restart and a follower rebuild
  `Event`s from it byte for byte, and the query routes answer with it (a string there,
  from an earlier coordd, is read too);
* `derived` — what coordd derives from the event and the aggregation pipelines group on
  (`/api/stats`): `{role, category, thread, fromAgent, toAgent, conversationId, outcome}`,
  the values of `Event` (null where the event has none).

A document the old monitor wrote has none of these until coordd meets its event (the sink
stamps them on): `mongo_load.document_event` still reads it, rebuilding the enriched event
from the legacy fields (seq 0).

A text index over the searched fields (`coordd_text`, no language: no stemming, no stop
words) lets a search skip most documents; see `coordd.mongo.queries` for when it is used
(only where it cannot change the answer).

**Work sessions** (`work_sessions`): see `coordd.mongo.sessiondocs`.

**Marker** (`coordd_meta`, `_id: "sync"`): `{epoch, seq, updatedAt}` — every event of that epoch
up to `seq` is in the database. It lives next to the data, so it is exact across restarts.

Dates are naive `datetime`s in UTC, truncated to milliseconds, as BSON stores them: pymongo
(`tz_aware=False`, its default) and mongomock then hand back exactly what was written.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from coordd.core.event import Event
from coordd.core.eventindex import event_outcome
from coordd.core.jsvalues import S, event_hash, event_time, loads

__all__ = [
    "COORDD_EVENT_FIELDS",
    "EVENTS",
    "LEGACY_EVENT_FIELDS",
    "MARKER_ID",
    "META",
    "SEARCH_FIELDS",
    "SESSIONS",
    "TEXT_INDEX",
    "TTL_INDEX",
    "IndexSpec",
    "bson_safe",
    "derived_fields",
    "event_document",
    "event_indexes",
    "is_legacy_ttl_index",
    "js_date",
    "legacy_event_document",
    "marker_document",
    "prepare_document",
    "session_indexes",
    "utc_now",
]

EVENTS: Final = "coordination_events"
SESSIONS: Final = "work_sessions"
META: Final = "coordd_meta"
MARKER_ID: Final = "sync"
#: Name of coordd's insertion-time TTL index (the old monitor's was `createdAt_1`).
TTL_INDEX: Final = "coordd_insertedAt_ttl"
#: Name of coordd's text index over the searched fields.
TEXT_INDEX: Final = "coordd_text"
#: The fields the search routes match, in the text index too.
SEARCH_FIELDS: Final = ("data.message", "data.replyPreview", "data.fromAgent", "data.toAgent",
                        "type")

#: The fields of the old monitor's event document, in its order.
LEGACY_EVENT_FIELDS: Final = (
    "type", "agentId", "ts", "createdAt", "data", "eventRole", "collabCategory",
    "collabSubTags", "categoryConfidence", "categorySource", "fromSessionType",
    "toSessionType", "eventHash",
)

#: The fields coordd adds to an event document.
COORDD_EVENT_FIELDS: Final = ("seq", "epoch", "insertedAt", "workSessionId", "retention",
                               "enriched", "derived")

_DAY_S: Final = 86_400
_EPOCH: Final = _dt.datetime(1970, 1, 1)
_MS: Final = _dt.timedelta(milliseconds=1)
_MAX_DATE_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: datetime's ceiling
_MIN_DATE_MS: Final = -62_135_596_800_000  # 0001-01-01T00:00:00Z: its floor


# ---------------------------------------------------------------------------- dates


def js_date(ms: float) -> _dt.datetime | None:
    """`new Date(ms)` as a naive UTC datetime (whole milliseconds, truncated toward zero
    like JavaScript's TimeClip); None where Python's datetime cannot hold it."""
    if ms.__class__ is int:  # nearly always: skip the float checks
        whole = ms
    else:
        if ms != ms or ms in (float("inf"), float("-inf")):
            return None
        whole = int(ms)
    if not _MIN_DATE_MS <= whole <= _MAX_DATE_MS:
        return None
    return _EPOCH + _MS * whole  # a timedelta times an int: half the cost of building one


def utc_now() -> _dt.datetime:
    """The wall clock as BSON stores it: naive UTC, whole milliseconds."""
    now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# ---------------------------------------------------------------------------- BSON

_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def bson_safe(value: Any) -> Any:
    """A JSON-like value as the old monitor's Node driver would have stored it.

    BSON strings are UTF-8, so a lone surrogate (which JSON.parse accepts and real logs
    contain) becomes U+FFFD, as `Buffer.from(text, "utf8")` makes it; an integer beyond
    int64 becomes a double, as every JavaScript number is. Everything else is unchanged.
    `event_document` applies it to events with an escaped surrogate, the sink to a batch
    the driver still could not encode. The event hash is never affected: it is taken
    from the event as it is.
    """
    t = type(value)
    if t is str:
        return _SURROGATE.sub("\ufffd", value)
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            return math.copysign(math.inf, value)
    if t is dict:
        return {bson_safe(k): bson_safe(v) for k, v in value.items()}
    if t is list:
        return [bson_safe(v) for v in value]
    return value


# ---------------------------------------------------------------------------- indexes


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One index: key pattern, name and options, as `create_index` takes them."""

    keys: tuple[tuple[str, int | str], ...]
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


def _auto(*keys: tuple[str, int | str], **options: Any) -> IndexSpec:
    # The driver's default name (`field_dir_...`): the old monitor created these, and the
    # same name and key pattern make create_index a no-op on its database.
    name = "_".join(f"{k}_{d}" for k, d in keys)
    return IndexSpec(tuple(keys), name, options)


def event_indexes(ttl_days: int) -> list[IndexSpec]:
    """The indexes of `coordination_events`: the old monitor's (except its TTL on the event's
    own time, which expired a session's events one by one) and coordd's. `ttl_days == 0`
    means no TTL index."""
    specs = [
        _auto(("ts", -1)),
        _auto(("type", 1), ("ts", -1)),
        _auto(("agentId", 1), ("ts", -1)),
        _auto(("data.conversationId", 1), ("ts", 1)),
        _auto(("data.workSessionId", 1), ("ts", 1)),
        _auto(("eventRole", 1), ("ts", -1)),
        _auto(("collabCategory", 1), ("ts", -1)),
        _auto(("eventHash", 1), unique=True),
        IndexSpec((("epoch", 1), ("seq", 1)), "coordd_epoch_seq"),
        IndexSpec((("workSessionId", 1), ("ts", 1)), "coordd_workSessionId_ts"),
        # Retention of documents the old monitor wrote (no `retention` field: null in the
        # index), which its createdAt TTL no longer covers once coordd took over.
        IndexSpec((("retention", 1), ("createdAt", 1)), "coordd_retention_createdAt"),
        # No language: words are split, never stemmed nor dropped as stop words, so the
        # search can use the index as an exact prefilter. `language_override` names a
        # field no event has: a document's own `language` must not pick an analyser (an
        # unknown one would make its insertion fail).
        IndexSpec(tuple((f, "text") for f in SEARCH_FIELDS), TEXT_INDEX,
                  {"default_language": "none", "language_override": "coordd_language"}),
    ]
    if ttl_days > 0:
        specs.append(IndexSpec(
            (("insertedAt", 1),), TTL_INDEX,
            {"expireAfterSeconds": ttl_days * _DAY_S,
             "partialFilterExpression": {"retention": "ttl"}},
        ))
    return specs


def session_indexes() -> list[IndexSpec]:
    """The indexes of `work_sessions` (the old monitor's)."""
    return [
        _auto(("status", 1), ("lastTime", -1)),
        _auto(("collabCategory", 1), ("lastTime", -1)),
        _auto(("threads.conversationId", 1)),
        _auto(("updatedAt", -1)),
    ]


def is_legacy_ttl_index(info: Mapping[str, Any]) -> bool:
    """Whether an `index_information()` entry is the old monitor's TTL on `createdAt`: it
    expires events by their own time, one by one, cutting sessions in half."""
    return list(info.get("key", ())) == [("createdAt", 1)] and "expireAfterSeconds" in info


# ---------------------------------------------------------------------------- events


def legacy_event_document(enriched: Mapping[str, Any],
                          ts: int | float | None = None) -> dict[str, Any]:
    """The document the old monitor wrote for an enriched event, field for field.

    `ts`: `TS(enriched)` when the caller has it already (`Event.ts`: parsing an ISO
    `timestamp` again costs more than the rest of the document).
    """
    if ts is None:
        ts = event_time(enriched)
    return _legacy_document(enriched, ts, S(enriched.get("agentId")), event_hash(enriched, ts))


_LEGACY_COPIED: Final = ("eventRole", "collabCategory", "collabSubTags", "categoryConfidence",
                         "categorySource", "fromSessionType", "toSessionType")


def _legacy_document(enriched: Mapping[str, Any], ts: int | float, agent: str | None,
                     ev_hash: str) -> dict[str, Any]:
    # `agent`: S(agentId), which the caller may have already (`Event.agent_id`).
    doc: dict[str, Any] = {"type": enriched.get("type"), "agentId": agent or "unknown",
                           "ts": ts}
    created = js_date(ts)
    if created is not None:
        doc["createdAt"] = created
    doc["data"] = enriched.get("data")
    for key in _LEGACY_COPIED:
        if key in enriched:  # JavaScript drops undefined fields
            doc[key] = enriched[key]
    doc["eventHash"] = ev_hash
    return doc


def derived_fields(ev: Event, enriched: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `derived` sub-document: what the stats pipelines group on (see the module
    docstring). `enriched`: the event's dict, when the caller has it."""
    return {"role": ev.role, "category": ev.category, "thread": ev.thread,
            "fromAgent": ev.from_agent, "toAgent": ev.to_agent,
            "conversationId": ev.conversation_id,
            "outcome": event_outcome(ev, enriched)}


def prepare_document(ev: Event, enriched: dict[str, Any],
                     data_json: bytes | None) -> dict[str, Any] | None:
    """The event's document but for the fields known only when it is written (`seq`,
    `epoch`, `insertedAt`, `retention`): the pipeline's `Prepare` when a sync worker
    runs (`Event.source`), called right after the event was serialised, when its parts
    are fresh in the cache (building it there costs a fraction of building it in the
    worker later). `data_json` is orjson's serialisation of `data`, spliced into
    `ev.json`: the event hash needs nothing else. None when the event needed the
    fallback serialiser (lone surrogates: `event_document` makes it BSON-safe)."""
    if data_json is None:
        return None
    return _template(ev, enriched, event_hash(enriched, ev.ts, data_json))


def _template(ev: Event, enriched: Mapping[str, Any], ev_hash: str) -> dict[str, Any]:
    doc = _legacy_document(enriched, ev.ts, ev.agent_id, ev_hash)
    if ev.ws_id is not None:
        doc["workSessionId"] = ev.ws_id
    doc["enriched"] = ev.json
    doc["derived"] = derived_fields(ev, enriched)
    return doc


def event_document(
    ev: Event, *, epoch: str, inserted_at: _dt.datetime, has_session: bool,
) -> dict[str, Any]:
    """The document coordd writes for a stored event: the old recipe plus coordd's fields.

    `has_session`: whether the event's work session has a document (see the module
    docstring for what that decides). From the document the pipeline prepared
    (`ev.source`, see `prepare_document`) when there is one, else from `json` parsed
    again.
    """
    pre = ev.source
    fallback = pre is None
    if fallback:
        enriched = loads(ev.json)
        pre = _template(ev, enriched, event_hash(enriched, ev.ts))
    doc: dict[str, Any] = {**pre, "seq": ev.seq, "epoch": epoch, "insertedAt": inserted_at,
                           "retention": "session" if has_session else "ttl"}
    # Real logs hold lone surrogates (escaped in `json`): make those documents BSON-safe
    # here, cheaply found, so the sink's retry on an encoding error (which may follow a
    # partly inserted batch) stays for the rare rest. The hash above is unaffected. A
    # prepared document was serialised by orjson, which refuses lone surrogates.
    if fallback and (b"\\ud" in ev.json or b"\\uD" in ev.json):
        safe: dict[str, Any] = bson_safe(doc)
        return safe
    return doc


# ---------------------------------------------------------------------------- marker


def marker_document(epoch: str, seq: int, at: _dt.datetime) -> dict[str, Any]:
    """The sync marker's fields (`_id` is `MARKER_ID`)."""
    return {"epoch": epoch, "seq": seq, "updatedAt": at}
