"""The event record: `Event`, what the store keeps per accepted line, and its builders.

Pure: no I/O, no trio, no pymongo. `Event` holds the fields the indexes and the
work-session builder need, plus the enriched event serialised once (`Event.json`), from
which every REST and WebSocket answer is assembled. `parse_line` turns one log line into a
JSON value; what makes it an event is the enrichment's decision (`coordd.core.enrich`).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

import orjson

from coordd.core.jsvalues import (
    O,
    S,
    dumps,
    dumps_splitting_data,
    event_time,
    js_trim,
    loads,
)
from coordd.core.vocabulary import (
    BUILTIN_VOCABULARY,
    DEFAULT_CATEGORY,
    ROLE_SET,
    CategoryVocabulary,
)

__all__ = [
    "LINE_RULES_VERSION",
    "RECORD_FIELDS",
    "THREAD_BUCKET_MS",
    "Event",
    "ParseResult",
    "Prepare",
    "agents_of",
    "event_from_enrichment",
    "event_from_record",
    "event_record",
    "is_terminal",
    "parse_line",
    "resolve_agents",
    "thread_key",
]

#: Width of the time buckets that thread events with neither a conversation nor agents.
THREAD_BUCKET_MS: Final = 300_000

# ---------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class ParseResult:
    """One line, parsed: `value` is set when the line is JSON, else `reason` says why not.

    Reasons: `blank`, `malformed_json`, `non_finite` (NaN/Infinity). `repaired`: the line
    held invalid UTF-8, decoded with U+FFFD per invalid sequence (as the old monitor's
    UTF-8 read does) before it parsed. Whether the value is an acceptable event (an
    object with a type) is the enrichment stage's decision.
    """

    value: Any = None
    reason: str | None = None
    repaired: bool = False


#: Which lines `parse_line` accepts and how it decodes them, as a number that changes with
#: those rules: a snapshot of events parsed under other rules is not used
#: (`coordd.tail.snapshot`). 2: invalid UTF-8 is replaced instead of skipping the line.
LINE_RULES_VERSION: Final = 2

_BLANK: Final = ParseResult(reason="blank")
_NON_FINITE_RE: Final = re.compile(rb"(?<![\"\w])-?(?:NaN|Infinity)(?![\"\w])")


def parse_line(raw: bytes) -> ParseResult:
    """Parse one complete log line (without its newline).

    CRLF, surrounding JavaScript white space and a BOM (at the start of the file or of
    any line) are stripped first; a blank line is reported as `blank`. Invalid UTF-8 is
    replaced, one U+FFFD per invalid sequence (`bytes.decode("utf-8", "replace")`, the
    WHATWG decoder's rule): the line is kept when it is JSON then (`repaired`).
    """
    try:
        return ParseResult(orjson.loads(raw))
    except orjson.JSONDecodeError:
        pass
    repaired = False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        repaired = True
    text = js_trim(text)
    if not text:
        return _BLANK
    try:
        return ParseResult(loads(text), repaired=repaired)
    except ValueError:
        if _NON_FINITE_RE.search(raw):
            return ParseResult(reason="non_finite")
        return ParseResult(reason="malformed_json")


# ---------------------------------------------------------------------------- the record

_TERMINAL_TASK_STATUS: Final = frozenset({"completed", "cancelled", "abandoned", "failed"})
#: Deliberate fix: the real task.completed / task.cancelled events carry no
#: status, so upstream never treated them as terminal. coordd does.
_TERMINAL_TYPES: Final = frozenset(
    {"a2a.complete", "continuation.complete", "continuation.completed",
     "task.completed", "task.cancelled"}
)


def is_terminal(event: Mapping[str, Any]) -> bool:
    """Whether an (enriched) event ends a work session's activity: a terminal `status`, or
    a `task.completed` / `task.cancelled` event."""
    etype = event.get("type")
    if etype in _TERMINAL_TYPES:
        return True
    data = O(event.get("data"))
    if etype == "a2a.spawn_result":
        return S(data.get("status")) == "error"
    if isinstance(etype, str) and etype.startswith("task."):
        status = S(data.get("status")) or S(event.get("status"))
        return status in _TERMINAL_TASK_STATUS
    return False


def _role_of(event: Mapping[str, Any], data: Mapping[str, Any]) -> str | None:
    role = event.get("eventRole")
    if role in ROLE_SET:
        return role  # type: ignore[no-any-return]  # a str: it is one of ROLE_SET
    role = data.get("eventRole")
    return role if role in ROLE_SET else None


def _category_of(event: Mapping[str, Any], data: Mapping[str, Any],
                 categories: frozenset[str]) -> str:
    for cat in (event.get("collabCategory"), data.get("collabCategory")):
        if type(cat) is str and cat in categories:
            return cat
    return DEFAULT_CATEGORY


def _raw_sub_tags(event: Mapping[str, Any], data: Mapping[str, Any]) -> Sequence[Any]:
    """`collabSubTags` as the event (else its data) lists them, untrimmed."""
    tags = event.get("collabSubTags")
    if type(tags) is not list:
        tags = data.get("collabSubTags")
        if type(tags) is not list:
            return ()
    return tags


def resolve_agents(event: Mapping[str, Any],
                   data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The agents an event names: sender (`data.fromAgent`, `data.senderAgentId`, else
    `agentId`) and recipient (`data.toAgent`, else `data.targetAgentId`), trimmed; None
    when absent. (`coordd.core.enrich` resolves them inline, the same way.)"""
    src = S(data.get("fromAgent")) or S(data.get("senderAgentId")) or S(event.get("agentId"))
    dst = S(data.get("toAgent")) or S(data.get("targetAgentId"))
    return src, dst


def agents_of(event: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[str, str]:
    """Thread agents: `resolve_agents`, `"unknown"` standing for absent."""
    src, dst = resolve_agents(event, data)
    return src or "unknown", dst or "unknown"


def thread_key(event: Mapping[str, Any], data: Mapping[str, Any], ts: int | float) -> str:
    """`conv:<id>`, else `pair:<a>_<b>` (sorted), else `event:<type>:<5-minute bucket>`."""
    conv = S(data.get("conversationId"))
    if conv is not None:
        return "conv:" + conv
    a, b = sorted(agents_of(event, data))
    pair = f"{a}_{b}"
    if pair != "unknown_unknown":
        return "pair:" + pair
    return f"event:{event.get('type')}:{math.floor(ts / THREAD_BUCKET_MS)}"


_intern = sys.intern


def _interned(value: str | None) -> str | None:
    return None if value is None else _intern(value)


#: Makes `Event.source` from a new event, its enriched dict and orjson's serialisation of
#: its `data` (None when the event needed the fallback serialiser): see
#: `coordd.mongo.schema.prepare_document`.
Prepare = Callable[["Event", dict[str, Any], bytes | None], Any]


class Event:
    """One accepted, enriched event as the store keeps it.

    `json` is the enriched event, compact; the other fields are what indexes, filters
    and the work-session builder read, extracted once. Instances are treated as
    immutable after construction, except `seq` (numbered on the event loop) and the
    transient `source`.

    Two ways in, one builder (`_assemble`): `Event(seq, enriched)` extracts the fields from
    an enriched event as stored (read back from MongoDB, tests); the enricher hands on what
    it computed instead (`event_from_enrichment`).
    """

    __slots__ = (
        "agent_id",
        "category",
        "conversation_id",
        "from_agent",
        "json",
        "role",
        "seq",
        "source",
        "sub_tags",
        "terminal",
        "thread",
        "to_agent",
        "ts",
        "type",
        "ws_id",
    )

    seq: int
    ts: int | float
    type: str
    agent_id: str | None
    role: str | None
    category: str
    sub_tags: tuple[str, ...]
    ws_id: str | None
    thread: str
    conversation_id: str | None
    from_agent: str
    to_agent: str
    terminal: bool
    json: bytes
    #: What the enricher's `Prepare` made of the event while it was fresh in the cache
    #: (the MongoDB document, all but its write-time fields), kept only while the sync
    #: worker has the event buffered (then dropped); None otherwise. Read it once into a
    #: local: the worker may clear it.
    source: Any

    def __init__(self, seq: int, enriched: Mapping[str, Any], json_bytes: bytes | None = None,
                 categories: CategoryVocabulary = BUILTIN_VOCABULARY):
        """The record of an enriched event as stored. `json_bytes`: its compact JSON when
        the caller has it. `categories`: the valid categories; any other `collabCategory`
        is taken as `engineering_build` (the enriched JSON keeps what it says)."""
        data = O(enriched.get("data"))
        src, dst = resolve_agents(enriched, data)
        _assemble(self, seq, enriched, data, str(enriched.get("type")), _role_of(enriched, data),
                  _category_of(enriched, data, categories.members),
                  _raw_sub_tags(enriched, data), src, dst, categories)
        self.json = json_bytes if json_bytes is not None else dumps(enriched)
        self.source = None

    @property
    def order(self) -> tuple[int | float, int]:
        """Sort key of the work-session walk: time, then log order."""
        return (self.ts, self.seq)

    def json_with_seq(self) -> bytes:
        """`json` with `"seq": <seq>` appended by splicing bytes, never re-serialising (last,
        so it wins over a `seq` in the log line)."""
        if self.json == b"{}":
            return b'{"seq":%d}' % self.seq
        return b"%s,\"seq\":%d}" % (self.json[:-1], self.seq)

    def as_dict(self) -> dict[str, Any]:
        """The enriched event as a fresh dict (parsed from `json`)."""
        return loads(self.json)  # type: ignore[no-any-return]  # a JSON object

    def __repr__(self) -> str:
        return f"Event(seq={self.seq}, type={self.type!r}, ts={self.ts}, ws={self.ws_id!r})"


_new_event = Event.__new__


def _assemble(ev: Event, seq: int, enriched: Mapping[str, Any], data: Mapping[str, Any],
              etype: str, role: str | None, category: str, sub_tags: Sequence[Any],
              from_agent: str | None, to_agent: str | None,
              categories: CategoryVocabulary) -> None:
    """Every field of `ev` but `json` and `source`, from the extracted ones: the category
    checked against `categories`, the sub-tags trimmed (at most 5), the agents defaulted,
    the thread keyed, the repeating strings interned (~25 MiB saved at 100k events)."""
    ev.seq = seq
    ev.ts = ts = event_time(enriched)
    ev.type = _intern(etype)
    v = enriched.get("agentId")
    ev.agent_id = None if v is None else _interned(S(v))
    ev.role = role
    ev.category = category if category.__class__ is str and category in categories.members \
        else DEFAULT_CATEGORY
    if sub_tags:
        tags = []
        for tag in sub_tags:
            t = S(tag)
            if t is not None:
                tags.append(_intern(t))
                if len(tags) == 5:
                    break
        ev.sub_tags = tuple(tags)
    else:
        ev.sub_tags = ()
    get = data.get
    v = get("workSessionId")
    ev.ws_id = None if v is None else _interned(S(v))
    v = get("conversationId")
    conv = None if v is None else S(v)
    src = from_agent or "unknown"
    dst = to_agent or "unknown"
    ev.from_agent = _intern(src)
    ev.to_agent = _intern(dst)
    if conv is not None:
        ev.conversation_id = conv = _intern(conv)
        ev.thread = _intern("conv:" + conv)
    else:
        ev.conversation_id = None
        pair = f"{src}_{dst}" if src <= dst else f"{dst}_{src}"
        if pair != "unknown_unknown":
            ev.thread = _intern("pair:" + pair)
        else:
            ev.thread = _intern(f"event:{etype}:{math.floor(ts / THREAD_BUCKET_MS)}")
    ev.terminal = is_terminal(enriched)


def event_from_enrichment(seq: int, enriched: dict[str, Any], data: Mapping[str, Any],
                          etype: str, role: str, category: str, sub_tags: list[str],
                          from_agent: str | None, to_agent: str | None, *,
                          categories: CategoryVocabulary,
                          prepare: Prepare | None = None) -> Event:
    """The record of an event the enricher just enriched, from what it computed (no
    second extraction).

    `etype` is the enriched `type`, `role` its `eventRole` (one of `ROLES`), `category`
    and `sub_tags` its `collabCategory` / `collabSubTags`, `from_agent` / `to_agent` what
    `resolve_agents` gives for it, `data` its `data` (or the original data: the enrichment
    keys are not read). The result is field for field what `Event(seq, enriched)` builds
    (tests/core/test_enrich.py checks it over generated and hypothesis events).
    `prepare`: makes `Event.source`, from orjson's serialisation of `data` taken on the
    side of the event's own (`dumps_splitting_data`).
    """
    ev = _new_event(Event)
    _assemble(ev, seq, enriched, data, etype, role, category, sub_tags, from_agent, to_agent,
              categories)
    if prepare is not None:
        ev.json, data_json = dumps_splitting_data(enriched)
        ev.source = prepare(ev, enriched, data_json)
    else:
        ev.json = dumps(enriched)
        ev.source = None
    return ev


#: The fields of an `Event` as `event_record` lists them (`source` is transient: not kept).
RECORD_FIELDS: Final = ("seq", "ts", "type", "agent_id", "role", "category", "sub_tags",
                        "ws_id", "thread", "conversation_id", "from_agent", "to_agent",
                        "terminal", "json")
_record_of = attrgetter(*RECORD_FIELDS)


def event_record(ev: Event) -> tuple[Any, ...]:
    """The event as a plain tuple (`RECORD_FIELDS`), for `coordd.tail.snapshot`."""
    return _record_of(ev)


def event_from_record(record: tuple[Any, ...]) -> Event:
    """The event `event_record` gave (no re-extraction: trusted input). Raises
    `ValueError`/`TypeError` when `record` is not a tuple of `RECORD_FIELDS`' length."""
    if type(record) is not tuple:
        raise TypeError(f"an event record is a tuple, not {type(record).__name__}")
    ev = _new_event(Event)
    (ev.seq, ev.ts, ev.type, ev.agent_id, ev.role, ev.category, ev.sub_tags, ev.ws_id,
     ev.thread, ev.conversation_id, ev.from_agent, ev.to_agent, ev.terminal,
     ev.json) = record
    ev.source = None
    return ev

