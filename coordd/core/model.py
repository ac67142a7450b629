"""The event record and the value helpers every other module uses.

Pure: no I/O, no trio, no pymongo. The helpers reproduce the old monitor's JavaScript
semantics exactly: `S` trims with JavaScript's `String.prototype.trim`,
`N` accepts finite numbers but not booleans, `O` accepts objects only, and
`event_time` is the spec's `TS(event)`.

`Event` is the compact record the store keeps per accepted line: the fields the
indexes and the work-session builder need, plus the enriched event serialised once
(`Event.json`), from which every REST and WebSocket answer is assembled.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

import orjson

__all__ = [
    "BUILTIN_VOCABULARY",
    "CATEGORIES",
    "DEFAULT_CATEGORY",
    "LINE_RULES_VERSION",
    "RECORD_FIELDS",
    "ROLES",
    "STATUSES",
    "CategoryVocabulary",
    "Event",
    "N",
    "O",
    "ParseResult",
    "Prepare",
    "S",
    "dumps",
    "event_from_enriched",
    "event_from_parts",
    "event_from_record",
    "event_hash",
    "event_record",
    "event_time",
    "hash_input",
    "is_terminal",
    "js_number",
    "js_stringify",
    "js_trim",
    "loads",
    "parse_js_date",
    "parse_line",
    "thread_key",
]

ROLES: Final = (
    "conversation.main",
    "delegation.subagent",
    "orchestration.task",
    "system.observability",
)
ROLE_SET: Final = frozenset(ROLES)

#: Canonical order: it breaks ties in the keyword classifier (the first category wins).
CATEGORIES: Final = (
    "engineering_build",
    "infra_ops",
    "qa_validation",
    "planning_decision",
    "research_analysis",
    "docs_knowledge",
    "growth_marketing",
    "customer_community",
    "legal_compliance",
    "biz_strategy",
)
DEFAULT_CATEGORY: Final = "engineering_build"


@dataclass(frozen=True, slots=True, init=False)
class CategoryVocabulary:
    """The valid collaboration categories: the ten built-in ones in canonical order, then
    those the enabled plugins declare (`coordd_categories`), in the order declared.

    Built once at start from the plugin host and handed to everything that validates,
    filters, counts or lists categories (events, sessions, filters, overrides, stats,
    OpenAPI), so that they all agree. Immutable; `in` is a set lookup.
    """

    names: tuple[str, ...]
    members: frozenset[str]

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = list(CATEGORIES)
        for name in extra:
            if name not in names:
                names.append(name)
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "members", frozenset(names))

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def extra(self) -> tuple[str, ...]:
        """The plugin-declared categories."""
        return self.names[len(CATEGORIES):]

    def listing(self) -> str:
        """The valid names, comma-separated, for error messages."""
        return ", ".join(self.names)

    def ordered(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Counts in vocabulary order (any other name after them), zero counts dropped."""
        out = {c: counts[c] for c in self.names if counts.get(c)}
        out.update((c, n) for c, n in counts.items() if n and c not in out)
        return out


#: The built-in ten alone (no plugin declared anything).
BUILTIN_VOCABULARY: Final = CategoryVocabulary()

STATUSES: Final = ("ACTIVE", "QUIET", "ARCHIVED")

ARCHIVE_AFTER_MS: Final = 86_400_000
THREAD_BUCKET_MS: Final = 300_000

# ---------------------------------------------------------------------------- value helpers

#: White space removed by JavaScript's String.prototype.trim(): differs from str.strip()
#: (U+FEFF is stripped, U+001C..U+001F and U+0085 are not).
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """`text.trim()` as JavaScript does it."""
    return text.strip(JS_WHITESPACE)


def S(value: object) -> str | None:
    """Trimmed non-empty string, or None (absent) for anything else."""
    if type(value) is str:
        value = value.strip(JS_WHITESPACE)
        return value or None
    return None


def N(value: object) -> int | float | None:
    """A finite JSON number (booleans are not numbers), or None."""
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return value
    return None


_EMPTY: Final[Mapping[str, Any]] = {}


def O(value: object) -> Mapping[str, Any]:  # noqa: E743 - the spec's name
    """The value if it is a JSON object, else an empty (read-only) mapping."""
    return value if type(value) is dict else _EMPTY


_ISO_RE: Final = re.compile(
    r"^([+-]\d{6}|\d{4})(?:-(\d{2})(?:-(\d{2}))?)?"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_js_date(text: str, *, naive_is_utc: bool = False) -> float | None:
    """Epoch milliseconds of an ISO-8601 date or date-time, or None (JavaScript's NaN).

    Follows `Date.parse` for the ISO forms: a date-only string is UTC, a date-time
    without an offset is local time (unless `naive_is_utc`, which the REST layer uses).
    """
    m = _ISO_RE.match(text.strip())
    if m is None:
        return None
    year_s, mon_s, day_s, hh, mm, ss, frac, zone = m.groups()
    try:
        year = int(year_s)
        month = int(mon_s or 1)
        day = int(day_s or 1)
        hour, minute, sec = int(hh or 0), int(mm or 0), int(ss or 0)
        micro = int((frac or "0")[:6].ljust(6, "0"))
        if not 1 <= year <= 9999:
            return None
        if hour == 24 and minute == 0 and sec == 0 and micro == 0:
            base = _dt.datetime(year, month, day) + _dt.timedelta(days=1)
        else:
            base = _dt.datetime(year, month, day, hour, minute, sec, micro)
    except ValueError:
        return None
    if zone is not None:
        if zone in ("Z", "z"):
            tz = _dt.UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            tz = _dt.timezone(sign * offset)
        when = base.replace(tzinfo=tz)
    elif hh is None or naive_is_utc:
        when = base.replace(tzinfo=_dt.UTC)
    else:
        when = base.astimezone()  # naive date-time: local time, as JavaScript does
    return when.timestamp() * 1000.0


def event_time(event: Mapping[str, Any]) -> int | float:
    """`TS(event)`: `timestampMs`, else `ts` (each only when non-zero), else ISO `timestamp`."""
    v = N(event.get("timestampMs"))
    if v:
        return v
    v = N(event.get("ts"))
    if v:
        return v
    text = S(event.get("timestamp"))
    if text is not None:
        parsed = parse_js_date(text)
        if parsed is not None:
            return int(parsed) if parsed.is_integer() else parsed
    return 0


# ---------------------------------------------------------------------------- JSON


def loads(data: bytes | str) -> Any:
    """Parse JSON like JavaScript's `JSON.parse`.

    orjson first; lone UTF-16 surrogate escapes (which JSON.parse accepts and real logs
    contain) fall back to the stdlib parser. `NaN`/`Infinity` are rejected by both.
    Raises `ValueError` on anything that is not JSON.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data).decode("utf-8")  # UnicodeDecodeError is a ValueError
        return json.loads(data, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (non-ASCII raw, as JavaScript's JSON.stringify writes it).

    Strings holding lone surrogates are written as `\\udXXX` escapes, like
    JSON.stringify. The result is a fresh, exactly-sized `bytes` object: orjson's own
    buffers cost several KiB of RSS each when kept, which matters at 100k events.
    """
    try:
        out = orjson.dumps(value)
    except TypeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8", "backslashreplace")
    return _exact(out)


def _exact(out: bytes) -> bytes:
    # A fresh, exactly-sized copy of orjson's output (see `dumps`).
    return bytes(bytearray(out))


def js_number(value: int | float) -> str:
    """`String(n)` for a finite number, as JavaScript formats it."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mant, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


def _js_normalise(value: Any) -> Any:
    if type(value) is float:
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value
    if type(value) is dict:
        return {k: _js_normalise(v) for k, v in value.items()}
    if type(value) is list:
        return [_js_normalise(v) for v in value]
    return value


#: What orjson writes for an integral float (`2.0`, `1e+16`): JSON.stringify writes these
#: without the fraction, so only output that may hold one takes the slow normalising path.
#: A match inside a string costs only speed, never correctness. (One literal-prefixed
#: pattern plus `in` tests: an alternation here cost more than the dump itself.)
_INTEGRAL_FLOAT_RE: Final = re.compile(rb"\.0[,\]}]")


def js_stringify(value: Any) -> str:
    """`JSON.stringify(value)` (compact) for JSON-like values, for the event hash."""
    out = _plain_stringify(value)
    if out is not None:
        return out.decode("utf-8")
    return _normalised_stringify(value)


def _normalised_stringify(value: Any) -> str:
    # JSON.stringify by way of the normalising walk (integral floats, lone surrogates).
    return dumps(_js_normalise(value)).decode("utf-8")


def _plain_stringify(value: Any) -> bytes | None:
    """`JSON.stringify(value)` as UTF-8 when orjson writes it as is (no integral float to
    normalise, no lone surrogate); None when the caller must normalise first."""
    try:
        out = orjson.dumps(value)
    except TypeError:
        return None
    return out if _is_plain(out) else None


def _is_plain(out: bytes) -> bool:
    """Whether orjson's output needs no normalising to be JSON.stringify's (no integral
    float): then `_js_normalise` would be an identity."""
    # One-byte `in` tests are memchr calls; two-byte ones (and alternations) cost several
    # times more on text full of "e".
    return ((b"+" not in out or b"e+" not in out) and not out.endswith(b".0")
            and _INTEGRAL_FLOAT_RE.search(out) is None)


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


# ---------------------------------------------------------------------------- event hash


def hash_input(enriched: Mapping[str, Any], ts: int | float | None = None) -> str:
    """The string the old monitor hashed: `type|agentId|TS|JSON.stringify(data)`.

    `ts`: `event_time(enriched)` when the caller has it already (`Event.ts`).
    """
    return _hash_head(enriched, ts) + js_stringify(enriched.get("data"))


def _hash_head(enriched: Mapping[str, Any], ts: int | float | None) -> str:
    """`type|agentId|TS|`: what `hash_input` puts before the data."""
    if ts is None:
        ts = event_time(enriched)
    return f"{enriched.get('type')}|{S(enriched.get('agentId')) or ''}|{js_number(ts)}|"


def event_hash(enriched: Mapping[str, Any], ts: int | float | None = None,
               data_json: bytes | None = None) -> str:
    """Lower-case hex SHA-256 of `hash_input` (MongoDB's dedup key, the old monitor's recipe).

    Hashed as bytes: orjson's UTF-8 output for `data` goes to SHA-256 as it is, without
    the round trip through a Python string (decoding and re-encoding non-ASCII text cost
    as much as the rest of the hash). `data_json`: that output when the caller has it
    (`prepare_document`).
    """
    data = enriched.get("data")
    if data_json is None:
        body = _plain_stringify(data)
    else:
        body = data_json if _is_plain(data_json) else None
    head = _hash_head(enriched, ts)
    if body is None:
        text = head + _normalised_stringify(data)
        return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()
    h = hashlib.sha256(head.encode("utf-8", "backslashreplace"))
    h.update(body)
    return h.hexdigest()


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


def _sub_tags_of(event: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[str, ...]:
    tags = event.get("collabSubTags")
    if type(tags) is not list:
        tags = data.get("collabSubTags")
        if type(tags) is not list:
            return ()
    out = []
    for tag in tags:
        t = S(tag)
        if t is not None:
            out.append(_intern(t))
            if len(out) == 5:
                break
    return tuple(out)


def agents_of(event: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[str, str]:
    """Thread agents: sender (`fromAgent`, `senderAgentId`, else `agentId`) and recipient
    (`toAgent`, else `targetAgentId`), `"unknown"` standing for absent."""
    src = (S(data.get("fromAgent")) or S(data.get("senderAgentId"))
           or S(event.get("agentId")) or "unknown")
    dst = S(data.get("toAgent")) or S(data.get("targetAgentId")) or "unknown"
    return src, dst


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
    #: What the pipeline's `Prepare` made of the event while it was fresh in the cache
    #: (the MongoDB document, all but its write-time fields), kept only while the sync
    #: worker has the event buffered (then dropped); None otherwise. Read it once into a
    #: local: the worker may clear it.
    source: Any

    def __init__(self, seq: int, enriched: Mapping[str, Any], json_bytes: bytes | None = None,
                 categories: CategoryVocabulary = BUILTIN_VOCABULARY):
        """`categories`: the valid categories; any other `collabCategory` is taken as
        `engineering_build` (the enriched JSON keeps what it says)."""
        data = O(enriched.get("data"))
        ts = event_time(enriched)
        self.seq = seq
        self.ts = ts
        self.type = _intern(str(enriched.get("type")))
        self.agent_id = _interned(S(enriched.get("agentId")))
        self.role = _role_of(enriched, data)
        self.category = _category_of(enriched, data, categories.members)
        self.sub_tags = _sub_tags_of(enriched, data)
        self.ws_id = _interned(S(data.get("workSessionId")))
        # Interned: thread keys, conversation ids and tags repeat across events
        # (~25 MiB saved at 100k events).
        self.thread = _intern(thread_key(enriched, data, ts))
        self.conversation_id = _interned(S(data.get("conversationId")))
        src, dst = agents_of(enriched, data)
        self.from_agent = _intern(src)
        self.to_agent = _intern(dst)
        self.terminal = is_terminal(enriched)
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
        return loads(self.json)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Event(seq={self.seq}, type={self.type!r}, ts={self.ts}, ws={self.ws_id!r})"


def event_from_enriched(seq: int, enriched: Mapping[str, Any],
                        categories: CategoryVocabulary = BUILTIN_VOCABULARY) -> Event:
    """Build the store's record for an enriched event."""
    return Event(seq, enriched, categories=categories)


_new_event = Event.__new__


def event_from_parts(seq: int, enriched: dict[str, Any], data: Mapping[str, Any],
                     etype: str, role: str, category: str, sub_tags: list[str], *,
                     prepare: Prepare | None = None,
                     categories: CategoryVocabulary = BUILTIN_VOCABULARY) -> Event:
    """`Event(seq, enriched, categories=categories)` from what the enricher just computed,
    without re-reading it.

    `etype` is the enriched `type`, `role` its `eventRole` (one of `ROLES`), `category`
    and `sub_tags` its `collabCategory` / `collabSubTags`, `data` its `data` (or the
    original data: the enrichment keys are not read). The result is field for field what
    `Event(seq, enriched)` builds (tests/test_enrich.py checks it over generated and
    hypothesis events); this path skips re-extracting the enrichment fields and the
    double agent lookup, which cost a third of the record's construction.
    """
    ev = _new_event(Event)
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
    # agents_of, inlined: only present values are trimmed.
    src = (((v := get("fromAgent")) is not None and S(v))
           or ((v := get("senderAgentId")) is not None and S(v))
           or ((v := enriched.get("agentId")) is not None and S(v)) or "unknown")
    dst = (((v := get("toAgent")) is not None and S(v))
           or ((v := get("targetAgentId")) is not None and S(v)) or "unknown")
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
    if prepare is not None:
        ev.json, data_json = _dumps_splitting_data(enriched)
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


_NO_DATA: Final = object()


def _dumps_splitting_data(enriched: dict[str, Any]) -> tuple[bytes, bytes | None]:
    """`dumps(enriched)`, and orjson's serialisation of its `data` on the side (spliced
    into the whole as an `orjson.Fragment`, so it is serialised once); None for that when
    the whole is not orjson's (lone surrogates)."""
    data = enriched.get("data", _NO_DATA)
    if data is _NO_DATA:
        try:
            return _exact(orjson.dumps(enriched)), b"null"
        except TypeError:
            return dumps(enriched), None
    try:
        data_json = orjson.dumps(data)
    except TypeError:
        return dumps(enriched), None
    enriched["data"] = orjson.Fragment(data_json)
    try:
        out = orjson.dumps(enriched)
    except TypeError:
        return dumps({**enriched, "data": data}), None
    finally:
        enriched["data"] = data
    return _exact(out), data_json
