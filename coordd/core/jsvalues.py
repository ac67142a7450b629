"""JavaScript value semantics in Python: the helpers every module reading events uses.

Pure: no I/O, no trio, no pymongo. They reproduce the old monitor's JavaScript exactly:
`S` trims with JavaScript's `String.prototype.trim`, `N` accepts finite numbers but not
booleans, `O` accepts objects only; `parse_js_date` is `Date.parse` for the ISO forms and
`iso_ms` is `Date.prototype.toISOString`; `event_time` is the spec's `TS(event)`; `loads`
and `dumps` are `JSON.parse` and `JSON.stringify` (lone surrogates included), and the
event hash is the old monitor's recipe over `JSON.stringify`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = [
    "JS_WHITESPACE",
    "N",
    "O",
    "S",
    "dumps",
    "dumps_splitting_data",
    "event_hash",
    "event_time",
    "hash_input",
    "iso_ms",
    "js_number",
    "js_stringify",
    "js_trim",
    "loads",
    "parse_js_date",
]

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


_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_MS: Final = _dt.timedelta(milliseconds=1)


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
        # A JavaScript time value is whole milliseconds: digits beyond them are dropped.
        micro = int((frac or "0")[:3].ljust(3, "0")) * 1000
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
    # Exact integer arithmetic (`timestamp() * 1000` turns 1.001 s into 1000.9999999999999).
    return float((when - _EPOCH) // _MS)


def iso_ms(ms: float) -> str:
    """`new Date(ms).toISOString()`: UTC, milliseconds, `Z`.

    As JavaScript does, the time value is truncated towards zero to whole milliseconds
    first (`-1.5` is `1969-12-31T23:59:59.999Z`), then split into seconds and
    milliseconds with the remainder always positive. Years 1 to 9999 (JavaScript writes
    the others with six digits and a sign).
    """
    secs, millis = divmod(int(ms), 1000)
    t = time.gmtime(secs)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - faster than an f-string here
        t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, millis)


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


_NO_DATA: Final = object()


def dumps_splitting_data(enriched: dict[str, Any]) -> tuple[bytes, bytes | None]:
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
