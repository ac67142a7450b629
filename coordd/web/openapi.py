"""The OpenAPI 3.1 document served at `/openapi.json`.

It describes the routes Task-Hub uses (wire-compatible with the old monitor) and the new
ones (cursor pagination, `until`, `/api/stats`, `/-/plugins`, `/metrics`, `/ws`). Built
once at start-up from the route table (`coordd.web.routes`: each route's summary and the
operation function named there, which this module provides); the valid category list
includes plugin-introduced categories.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from coordd import __version__
from coordd.core.vocabulary import ROLES, STATUSES


class Documented(Protocol):
    """What the document reads of a route-table entry (`coordd.web.routes.Route`)."""

    @property
    def pattern(self) -> str: ...

    @property
    def methods(self) -> tuple[str, ...]: ...

    @property
    def summary(self) -> str: ...

    @property
    def doc(self) -> Callable[[Parts], dict[str, Any]] | None: ...

__all__ = ["Parts", "openapi_document"]


def _param(name: str, description: str, schema: dict[str, Any] | None = None,
           *, where: str = "query", required: bool = False, explode: bool | None = None
           ) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "required": required,
                         "description": description, "schema": schema or {"type": "string"}}
    if explode is not None:
        p["explode"] = explode
    return p


_ERROR = {"description": "Invalid request", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}


_VIEW = _param("view", "`full` (the default: each thread with its events) or `summary` (the "
               "same sessions, counts and cursor; each thread summarised as a "
               "`ThreadSummary`, no events).",
               {"type": "string", "enum": ["full", "summary"], "default": "full"})


def _ok(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{schema_ref}"}}}}


@dataclass(frozen=True, slots=True)
class Parts:
    """What several operations share: the common parameters and the valid categories."""

    categories: Sequence[str]
    limit: dict[str, Any]
    since: dict[str, Any]
    until: dict[str, Any]
    cursor: dict[str, Any]
    csv_roles: dict[str, Any]
    csv_types: dict[str, Any]
    view_category: dict[str, Any]
    ws_id: dict[str, Any]

    @classmethod
    def of(cls, categories: Sequence[str]) -> Parts:
        return cls(
            categories=categories,
            limit=_param("limit", "Plain non-negative decimal integer; 0 or absent means the "
                         "default.", {"type": "integer", "minimum": 0}),
            since=_param("since", "Lower time bound (inclusive): ISO-8601 (a naive time is "
                         "UTC) or epoch milliseconds."),
            until=_param("until", "Upper time bound (exclusive): ISO-8601 (naive = UTC) or "
                         "epoch ms."),
            cursor=_param("cursor", "Opaque cursor from a previous answer's `nextCursor`."),
            csv_roles=_param("role", "Event roles, comma-separated or repeated: "
                             + ", ".join(ROLES), explode=True),
            csv_types=_param("type", "Event types, comma-separated or repeated (free-form).",
                             explode=True),
            view_category=_param("viewCategory", "`all` or one category.",
                                 {"type": "string", "enum": ["all", *categories]}),
            ws_id=_param("id", "The work-session id (percent-encoded): the `workSessionId`, "
                         "or the list's `id` (`ws:<workSessionId>`).", where="path",
                         required=True),
        )


# ---------------------------------------------------------------------------- operations
# One per documented route, named in the route table; each without its summary.


def health(p: Parts) -> dict[str, Any]:
    return {"responses": {"200": _ok("Health", "Healthy (warnings possible)"),
                          "503": _ok("Health", "A check is critical")}}


def events(p: Parts) -> dict[str, Any]:
    return {"parameters": [p.limit, p.since, p.until, p.csv_roles, p.csv_types,
                           p.view_category, p.cursor],
            "responses": {"200": _ok("Events", "Matching events"), "400": _ERROR}}


def work_sessions(p: Parts) -> dict[str, Any]:
    return {"parameters": [
                p.limit, p.csv_roles, p.csv_types, p.view_category, p.cursor, p.since, p.until,
                _param("status", "Comma-separated or repeated: " + ", ".join(STATUSES),
                       explode=True),
                _param("subTag", "Keep sessions with this sub-tag (case-insensitive)."),
                _VIEW,
            ],
            "responses": {"200": _ok("WorkSessions", "Matching sessions"), "400": _ERROR}}


def work_session(p: Parts) -> dict[str, Any]:
    return {"parameters": [p.ws_id, _param("role", "One role filter."), p.csv_types],
            "responses": {"200": _ok("WorkSessionDetail", "The session"), "400": _ERROR,
                          "404": _ERROR}}


def category(p: Parts) -> dict[str, Any]:
    return {
        "description": "Needs `X-Task-Monitor-Token` when a write token is configured; "
                       "otherwise only loopback peers may write. A browser page may "
                       "write only from an origin in `[server] allowed_origins` "
                       "(else 403).",
        "parameters": [p.ws_id, _param("X-Task-Monitor-Token", "Write token.", where="header"),
                       _param("create", "`1`: store the override even though no such "
                              "session is held (its events are still to come); "
                              "otherwise an unknown session is a 404.",
                              {"type": "string", "enum": ["0", "1"]})],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["collabCategory"],
            "properties": {"collabCategory": {"type": "string", "enum": list(p.categories)},
                           "updatedBy": {"type": "string"}}}}}},
        "responses": {"200": _ok("OverrideResult", "Stored"), "400": _ERROR,
                      "401": _ERROR, "403": _ERROR, "404": _ERROR, "413": _ERROR}}


def search_events(p: Parts) -> dict[str, Any]:
    return {"parameters": [_param("q", "Search text (literal, not a regular expression)."),
                           p.limit, _param("offset", "Skip this many.", {"type": "integer"}),
                           _param("role", "One role."), p.view_category],
            "responses": {"200": _ok("EventSearch", "Matches, newest first")}}


def search_work_sessions(p: Parts) -> dict[str, Any]:
    return {"parameters": [_param("q", "Search text (literal)."), p.limit, _VIEW],
            "responses": {"200": _ok("SessionSearch", "Matches, most recent first"),
                          "400": _ERROR}}


def stats(p: Parts) -> dict[str, Any]:
    return {"parameters": [p.since, p.until],
            "responses": {"200": {"description": "Statistics", "content": {
                "application/json": {"schema": {"type": "object"}}}}, "400": _ERROR}}


def export(p: Parts) -> dict[str, Any]:
    return {
        "description": "Streamed (chunked) in log order, filtered like `/api/events`. NDJSON: "
                       "one event per line, as `/api/events` carries it. CSV: a header row "
                       "and the columns seq, ts (ISO-8601 UTC), tsMs, type, agentId, role, "
                       "fromAgent, toAgent, workSessionId, threadId, conversationId, "
                       "collabCategory, collabSubTags (`;`-joined), outcome, message.",
        "parameters": [
            _param("format", "`ndjson` (the default) or `csv`.",
                   {"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"}),
            p.since, p.until,
            _param("workSessionId", "Work-session ids, comma-separated or repeated.",
                   explode=True),
            p.csv_types],
        "responses": {
            "200": {"description": "The events, as an attachment (`Content-Disposition`)",
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                "text/csv": {"schema": {"type": "string"}}}},
            "400": _ERROR}}


def plugins(p: Parts) -> dict[str, Any]:
    return {"responses": {"200": {
        "description": "name, version, hooks, enabled",
        "content": {"application/json": {"schema": {"type": "object"}}}}}}


def metrics(p: Parts) -> dict[str, Any]:
    return {"responses": {"200": {
        "description": "Prometheus text format",
        "content": {"text/plain": {"schema": {"type": "string"}}}}}}


_ATTENTION_ITEM: Final = {"type": "object", "properties": {
    "id": {"type": "string"},
    "kind": {"type": "string", "enum": ["awaiting_reply", "failed", "silent_session"]},
    "workSessionId": {"type": ["string", "null"]}, "threadId": {"type": ["string", "null"]},
    "fromAgent": {"type": ["string", "null"]}, "toAgent": {"type": ["string", "null"]},
    "since": {"type": "number", "description": "When the condition began (epoch ms)."},
    "ageMs": {"type": "integer"},
    "seq": {"type": "integer", "description": "The event that opened it."},
    "detail": {"type": "string"},
    "openedAt": {"type": "number"}, "closedAt": {"type": "number"}}}


def attention(p: Parts) -> dict[str, Any]:
    csv = {"type": "array", "items": {"type": "string"}}
    return {"parameters": [
        _param("state", "open (default) or closed (recently closed items).",
               {"type": "string", "enum": ["open", "closed"]}),
        _param("since", "ISO-8601 or epoch ms: items opened (open) or closed (closed) "
               "at or after it."),
        _param("kind", "Comma-separated kinds.", {"type": "array", "items": {
            "type": "string", "enum": ["awaiting_reply", "failed", "silent_session"]}},
            explode=False),
        _param("agent", "Comma-separated agents (fromAgent or toAgent).", csv, explode=False),
        _param("workSessionId", "Comma-separated work session ids.", csv, explode=False),
        _param("limit", "At most this many items (default 500).", {"type": "integer"}),
    ], "responses": {"200": {"description": "Items, newest first", "content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "items": {"type": "array", "items": _ATTENTION_ITEM},
            "count": {"type": "integer"}, "total": {"type": "integer"},
            "state": {"type": "string"},
            "open": {"type": "object", "additionalProperties": {"type": "integer"}},
            "now": {"type": "number"}}}}}}, "400": _ERROR}}


def websocket(p: Parts) -> dict[str, Any]:
    csv = {"type": "array", "items": {"type": "string"}, "maxItems": 100}
    return {
        "description": (
            "Messages: connected {message, epoch, seq, notice}; event_log; "
            "coordination_event_new {events, affectedWorkSessions}; continuation_event; "
            "resync_required {reason, epoch, seq}; work_session_status {workSessionId, from, "
            "to, at, seq, notice} when a session's status changes (also by the clock); "
            "attention {op: open|close, item, seq, notice}. Notices are numbered per "
            "daemon run and replayed on resume like events. A subscription parameter "
            "narrows the stream (values comma-separated, at most 100 each; more is a 400): "
            "events must match every parameter given; notices match session and agent."),
        "parameters": [
            _param("since", "Last seq received.", {"type": "integer"}),
            _param("epoch", "Epoch of that seq."),
            _param("notice", "Last notice number received: resume notices exactly.",
                   {"type": "integer"}),
            _param("session", "Only these work sessions.", csv, explode=False),
            _param("type", "Only events of these types.", csv, explode=False),
            _param("agent", "Only events and items of these agents.", csv, explode=False),
            _param("role", "Only events of these roles.", csv, explode=False),
            _param("notices", "0: no work_session_status / attention messages.",
                   {"type": "integer", "enum": [0, 1]}),
        ],
        "responses": {"101": {"description": "Switching protocols"}, "400": _ERROR,
                      "404": _ERROR}}


# ---------------------------------------------------------------------------- the document


def _path(pattern: str) -> str:
    """`/api/work-sessions/:id` → `/api/work-sessions/{id}`."""
    return "/".join("{" + s[1:] + "}" if s.startswith(":") else s for s in pattern.split("/"))


def openapi_document(routes: Sequence[Documented], categories: Sequence[str]) -> dict[str, Any]:
    """Build the document for the routes of the table that have an operation;
    `categories` are the valid `collabCategory` values (the vocabulary: the built-in
    ones, then those the enabled plugins declare)."""
    parts = Parts.of(categories)
    paths: dict[str, Any] = {}
    for route in routes:
        if route.doc is None:
            continue
        method = route.methods[0]
        # The WebSocket upgrade is a GET.
        verb = "get" if method == "WS" else method.lower()
        paths[_path(route.pattern)] = {verb: {"summary": route.summary,
                                              **route.doc(parts)}}
    event_schema = {"type": "object", "description": "An enriched event plus `seq`.",
                    "additionalProperties": True,
                    "properties": {"type": {"type": "string"}, "agentId": {"type": "string"},
                                   "ts": {"type": "number"}, "data": {"type": "object"},
                                   "eventRole": {"type": "string", "enum": list(ROLES)},
                                   "collabCategory": {"type": "string"},
                                   "seq": {"type": "integer"}}}
    category_counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "coordd", "version": __version__,
                 "description": "Work sessions and coordination events of a multi-agent system. "
                                "Wire-compatible with the TypeScript task monitor."},
        "paths": paths,
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}}},
            "Event": event_schema,
            "Health": {"type": "object", "required": ["status", "timestamp"], "properties": {
                "status": {"type": "string"}, "timestamp": {"type": "string"},
                "checks": {"type": "object"}}},
            "Events": {"type": "object", "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                "count": {"type": "integer"}, "total": {"type": "integer"},
                "totalMatched": {"type": "integer"}, "role": {"type": ["string", "null"]},
                "type": {"type": "array", "items": {"type": "string"}},
                "viewCategory": {"type": ["string", "null"]}, "categoryCounts": category_counts,
                "tier": {"type": "string", "enum": ["memory", "mongo"],
                         "description": "Which storage tier answered."},
                "degraded": {"type": "string",
                             "description": "Present when MongoDB failed and memory answered."},
                "epoch": {"type": "string"}, "seq": {"type": "integer"},
                "nextCursor": {"type": ["string", "null"]}}},
            "WorkSession": {"type": "object", "additionalProperties": True, "properties": {
                "id": {"type": "string"}, "workSessionId": {"type": "string"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "startTime": {"type": "number"}, "lastTime": {"type": "number"},
                "durationMs": {"type": "number"}, "threadCount": {"type": "integer"},
                "eventCount": {"type": "integer"},
                "collabCategory": {"type": "string", "enum": list(categories)},
                "collabSubTags": {"type": "array", "items": {"type": "string"}},
                "categorySource": {"type": "string"}, "roleCounts": {"type": "object"},
                "threads": {"type": "array", "description": "Each thread with its events; "
                            "a `ThreadSummary` with `view=summary`.",
                            "items": {"type": "object"}}}},
            "ThreadSummary": {"type": "object", "properties": {
                "id": {"type": "string"}, "fromAgent": {"type": "string"},
                "toAgent": {"type": "string"}, "eventCount": {"type": "integer"},
                "startTime": {"type": "number"}, "lastTime": {"type": "number"},
                "lastEventType": {"type": "string"},
                "lastOutcome": {"type": ["string", "null"],
                                "description": "`data.outcome` of the thread's last event "
                                               "that has one."},
                "lastMessagePreview": {"type": ["string", "null"],
                                       "description": "The last `data.message`, at most 160 "
                                                      "characters (a longer one ends in "
                                                      "`…`)."}}},
            "WorkSessions": {"type": "object", "properties": {
                "sessions": {"type": "array",
                             "items": {"$ref": "#/components/schemas/WorkSession"}},
                "count": {"type": "integer"}, "totalMatched": {"type": "integer"},
                "totalSessions": {"type": "integer"}, "categoryCounts": category_counts,
                "nextCursor": {"type": ["string", "null"]}}},
            "WorkSessionDetail": {"type": "object", "properties": {
                "session": {"$ref": "#/components/schemas/WorkSession"},
                "role": {"type": ["string", "null"]},
                "type": {"type": "array", "items": {"type": "string"}}}},
            "OverrideResult": {"type": "object", "properties": {
                "ok": {"type": "boolean"}, "workSessionId": {"type": "string"},
                "override": {"type": "object"}}},
            "EventSearch": {"type": "object", "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                "count": {"type": "integer"}, "total": {"type": "integer"},
                "offset": {"type": "integer"}, "limit": {"type": "integer"},
                "tier": {"type": "string", "enum": ["memory", "mongo"],
                         "description": "Which storage tier answered."},
                "degraded": {"type": "string",
                             "description": "Present when MongoDB failed and memory answered."},
                "query": {"type": "string"}}},
            "SessionSearch": {"type": "object", "properties": {
                "sessions": {"type": "array", "items": {"type": "object"}},
                "count": {"type": "integer"}, "total": {"type": "integer"},
                "tier": {"type": "string", "enum": ["memory", "mongo"],
                         "description": "Which storage tier answered."},
                "degraded": {"type": "string",
                             "description": "Present when MongoDB failed and memory answered."},
                "query": {"type": "string"}}},
        }},
    }
