"""`GET /api/export`: the enriched events as NDJSON or CSV, produced in bounded chunks.

Pure: the web layer streams what `export_chunks` yields (one HTTP body part per chunk), so
an export never builds its whole answer in memory. The events are a snapshot taken by the
caller (events are immutable: appends and evictions during the export change nothing), in
log order (`seq`), filtered like `/api/events`:

* `format`: `ndjson` (the default) or `csv`, else 400;
* `since` / `until`: ISO-8601 or epoch milliseconds (`coordd.core.params.instant_param`),
  on the event time, `since` inclusive, `until` exclusive; `since` after `until` is a 400;
* `workSessionId`, `type`: CSV/repeated, an event matches one of the values.

NDJSON: each line is the event exactly as `/api/events` carries it (the enriched event
with its `seq`). CSV (RFC 4180, `\\r\\n`, a header row) has the fixed columns of
`CSV_COLUMNS`:

    seq, ts (ISO-8601 UTC with ms), tsMs, type, agentId, role (eventRole), fromAgent,
    toAgent (resolved as for threads, `unknown` when absent), workSessionId, threadId
    (the thread key of /api/work-sessions), conversationId, collabCategory,
    collabSubTags (joined with `;`), outcome (`data.outcome`), message (`data.message`,
    in full)

An absent value is an empty field; text is written as it is, UTF-8 (a lone surrogate
becomes `?`; a spreadsheet may read a field starting with `=` as a formula: import the
file as text).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from coordd.core.event import Event
from coordd.core.jsvalues import O, S, iso_ms, js_number, loads
from coordd.core.params import Params, csv_param, instant_param, text_param
from coordd.errors import BadRequest

__all__ = ["CHUNK_BYTES", "CSV_COLUMNS", "FORMATS", "ExportQuery", "csv_row",
           "export_chunks", "export_query"]

FORMATS: Final = ("ndjson", "csv")
CSV_COLUMNS: Final = ("seq", "ts", "tsMs", "type", "agentId", "role", "fromAgent", "toAgent",
                      "workSessionId", "threadId", "conversationId", "collabCategory",
                      "collabSubTags", "outcome", "message")
#: A chunk is yielded once it holds at least this many bytes (the last may hold fewer).
CHUNK_BYTES: Final = 64 * 1024

_CONTENT_TYPES: Final = {"ndjson": b"application/x-ndjson", "csv": b"text/csv; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class ExportQuery:
    """A validated `/api/export` request; None: no filter."""

    format: str = "ndjson"
    since: float | None = None
    until: float | None = None
    ws_ids: frozenset[str] | None = None
    types: frozenset[str] | None = None

    def matches(self, ev: Event) -> bool:
        """Whether the event is part of the export."""
        if self.since is not None and ev.ts < self.since:
            return False
        if self.until is not None and ev.ts >= self.until:
            return False
        if self.types is not None and ev.type not in self.types:
            return False
        return self.ws_ids is None or ev.ws_id in self.ws_ids

    @property
    def content_type(self) -> bytes:
        """The answer's `Content-Type`."""
        return _CONTENT_TYPES[self.format]

    @property
    def filename(self) -> str:
        """The `Content-Disposition` attachment's file name."""
        return f"coordd-events.{self.format}"


def export_query(params: Params) -> ExportQuery:
    """Validate `/api/export`'s parameters; BadRequest says what is wrong and how to fix it."""
    fmt = text_param(params, "format") or "ndjson"
    if fmt not in FORMATS:
        raise BadRequest(f"invalid format {fmt!r}: expected ndjson (one event per line, the "
                         "default) or csv")
    since = instant_param(params, "since")
    until = instant_param(params, "until")
    if since is not None and until is not None and since > until:
        raise BadRequest(f"since ({since:g}) is after until ({until:g}): swap them, or "
                         "leave one out")
    ws_ids = csv_param(params, "workSessionId")
    types = csv_param(params, "type")
    return ExportQuery(fmt, since, until, frozenset(ws_ids) or None, frozenset(types) or None)


def csv_row(ev: Event) -> list[str]:
    """The `CSV_COLUMNS` fields of one event."""
    data = O(loads(ev.json).get("data")) if b'"data"' in ev.json else {}
    return [
        str(ev.seq), iso_ms(ev.ts), js_number(ev.ts), ev.type, ev.agent_id or "",
        ev.role or "", ev.from_agent, ev.to_agent, ev.ws_id or "", ev.thread,
        ev.conversation_id or "", ev.category, ";".join(ev.sub_tags),
        S(data.get("outcome")) or "", _text(data.get("message")),
    ]


def _text(value: object) -> str:
    return value if type(value) is str else ""


def export_chunks(events: Iterable[Event], q: ExportQuery, *, header: bool = True,
                  chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The answer's body in chunks of about `chunk_bytes`: the matching events of
    `events` (log order) in `q.format`; `header`: the CSV header row first (False for a
    part after the first). Reads only immutable events: safe in a worker thread, one
    chunk at a time."""
    match = q.matches
    if q.format == "ndjson":
        parts: list[bytes] = []
        size = 0
        for ev in events:
            if match(ev):
                line = ev.json_with_seq()
                parts.append(line)
                size += len(line) + 1
                if size >= chunk_bytes:
                    parts.append(b"")
                    yield b"\n".join(parts)
                    parts, size = [], 0
        if parts:
            parts.append(b"")
            yield b"\n".join(parts)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for ev in events:
        if match(ev):
            writer.writerow(csv_row(ev))
            if buf.tell() >= chunk_bytes:  # characters: at least as many bytes
                yield buf.getvalue().encode("utf-8", "replace")
                buf.seek(0)
                buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode("utf-8", "replace")
