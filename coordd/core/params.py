"""The REST API's query parameters: parsing, validation, cursors.

Every parser takes the query parameters as decoded `(key, value)` pairs (repeats and order
kept) and raises `coordd.errors.BadRequest` with a message saying what is wrong (the
routes answer it as a 400); unknown parameters are ignored.

Parameter rules (upstream's, with the fixes the parity comparison accepts):

* `limit`: a plain non-negative decimal integer after trimming, else 400; 0 or empty
  means the default; no upper cap. (Upstream: JS `Number()`, so `2.5`, `0x10`, `-3`.)
* `since` / `until` (new): ISO-8601 (a naive time is UTC, a date alone is UTC midnight)
  or epoch milliseconds, else 400; `since` is inclusive, `until` exclusive.
* `role`: CSV/repeated, every value must be one of the four roles, else 400. On
  `/api/events` the echo `role` stays a string (the first role) and `roles` lists them
  all; on the detail route `role` is a single role.
* `status` and `viewCategory`: validated, else 400; `type` and `subTag` are free-form.
* `cursor` (new): opaque; `nextCursor` in the answer fetches the next (older) page.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from coordd.core.jsvalues import S, dumps, js_trim, loads, parse_js_date
from coordd.core.store import Store
from coordd.core.vocabulary import BUILTIN_VOCABULARY, ROLES, STATUSES, CategoryVocabulary
from coordd.errors import BadRequest

__all__ = [
    "EventsQuery",
    "Params",
    "count_param",
    "create_param",
    "csv_param",
    "decode_cursor",
    "decode_segment",
    "encode_cursor",
    "events_query",
    "instant_param",
    "limit_param",
    "roles_param",
    "sessions_cursor",
    "statuses_param",
    "text_param",
    "view_category_param",
]

Params = Sequence[tuple[str, str]]

_PLAIN_INT: Final = re.compile(r"[0-9]+")
_EPOCH_MS: Final = re.compile(r"-?[0-9]+")
_BAD_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HUGE: Final = 10**18


def _values(params: Params, key: str) -> list[str]:
    return [v for k, v in params if k == key]


def _first(params: Params, key: str) -> str | None:
    for k, v in params:
        if k == key:
            return v
    return None


def text_param(params: Params, key: str) -> str | None:
    """First value, trimmed; None when absent or empty."""
    v = _first(params, key)
    return S(v)


def csv_param(params: Params, key: str) -> list[str]:
    """Every occurrence split on commas, pieces trimmed, empty pieces dropped."""
    out: list[str] = []
    for v in _values(params, key):
        out.extend(p for p in (js_trim(x) for x in v.split(",")) if p)
    return out


def count_param(params: Params, key: str, default: int) -> int:
    """A non-negative integer parameter (`default` when absent or empty)."""
    raw = _first(params, key)
    if raw is None:
        return default
    text = js_trim(raw)
    if not text:
        return default
    if _PLAIN_INT.fullmatch(text) is None:
        raise BadRequest(f"{key} must be a non-negative integer, got {raw!r}")
    # Huge is fine ("no upper cap"); int() would refuse thousands of digits.
    return int(text) if len(text) <= 18 else _HUGE


def limit_param(params: Params, default: int) -> int:
    """`limit`: 0 or absent means `default`."""
    return count_param(params, "limit", 0) or default


def instant_param(params: Params, key: str) -> float | None:
    """An instant (`since`/`until`): ISO-8601 or epoch ms; None when absent."""
    raw = _first(params, key)
    if raw is None:
        return None
    text = js_trim(raw)
    if not text:
        return None
    if _EPOCH_MS.fullmatch(text):
        digits = text.lstrip("-")
        if len(digits) > 18:  # far beyond any date; int() would refuse thousands of digits
            return -float(_HUGE) if text.startswith("-") else float(_HUGE)
        return int(text)
    ms = parse_js_date(text, naive_is_utc=True)
    if ms is None:
        raise BadRequest(f"{key} must be an ISO-8601 date/time or epoch milliseconds, got {raw!r}")
    return ms


def _choices(params: Params, key: str, allowed: tuple[str, ...]) -> list[str]:
    """A CSV/repeated parameter whose every value must be one of `allowed`."""
    values = csv_param(params, key)
    for v in values:
        if v not in allowed:
            raise BadRequest(f"invalid {key} {v!r}: expected one of {', '.join(allowed)}")
    return values


def roles_param(params: Params) -> list[str]:
    """`role`: CSV/repeated, each one of the four roles."""
    return _choices(params, "role", ROLES)


def statuses_param(params: Params) -> list[str]:
    """`status`: CSV/repeated, each one of the session statuses."""
    return _choices(params, "status", STATUSES)


def view_category_param(store: Store, params: Params) -> str | None:
    """`viewCategory`: `all` or a category of the store's vocabulary (the built-in ones
    and the plugins'); None when absent. The error lists the valid values."""
    cat = text_param(params, "viewCategory")
    categories = store.overrides.categories
    if cat is not None and cat != "all" and cat not in categories:
        raise BadRequest(f"invalid viewCategory {cat!r}: expected all or one of "
                         f"{categories.listing()}")
    return cat


def create_param(params: Params) -> bool:
    """`create` (PATCH): `1`/`true` or `0`/`false`/absent."""
    raw = text_param(params, "create")
    if raw in (None, "", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise BadRequest(f"invalid create {raw!r}: expected 1 (store the override even though "
                     "no such work session is held) or 0")


def decode_segment(segment: str | bytes) -> str:
    """`decodeURIComponent` of one raw path segment; BadRequest when malformed.

    A `str` holding only code points below 256 is taken as the latin-1 decoding of the
    raw path bytes (what the web layer passes from ASGI's `raw_path`).
    """
    if isinstance(segment, str):
        try:
            raw = segment.encode("latin-1")
        except UnicodeEncodeError:
            raw = segment.encode("utf-8", "surrogatepass")
    else:
        raw = segment
    if _BAD_ESCAPE.search(raw) is None:
        try:
            return unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise BadRequest("malformed percent-encoding in the work session id")


def encode_cursor(value: list[Any]) -> str:
    """An opaque cursor for a JSON list."""
    return base64.urlsafe_b64encode(dumps(value)).rstrip(b"=").decode("ascii")


def decode_cursor(params: Params, kind: str) -> list[Any] | None:
    """The `cursor` parameter of `kind` ("e" or "s"), None when absent."""
    raw = text_param(params, "cursor")
    if raw is None:
        return None
    try:
        value = loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        value = None
    if type(value) is not list or not value or value[0] != kind:
        raise BadRequest("invalid cursor")
    return value


def _is_num(v: object) -> bool:
    return type(v) in (int, float)


def sessions_cursor(params: Params) -> tuple[float, float, int] | None:
    """The `cursor` of `/api/work-sessions`: the sort key of the previous page's last
    session (the next page starts after it); None when absent."""
    cursor = decode_cursor(params, "s")
    if cursor is None:
        return None
    if len(cursor) != 4 or not all(_is_num(x) for x in cursor[1:]):
        raise BadRequest("invalid cursor")
    return (cursor[1], cursor[2], cursor[3])


@dataclass(frozen=True, slots=True)
class EventsQuery:
    """A validated `GET /api/events` request (`before`: the cursor's seq, exclusive)."""

    limit: int
    since: float | None
    until: float | None
    roles: list[str]
    types: list[str]
    view_category: str | None
    before: int | None
    #: The vocabulary `view_category` was checked against (orders `categoryCounts`).
    categories: CategoryVocabulary = BUILTIN_VOCABULARY

    def filters(self) -> dict[str, Any]:
        """The store's filter keywords (`Store.count_events` / `select_events`)."""
        return {
            "roles": frozenset(self.roles) or None,
            "types": frozenset(self.types) or None,
            "category": self.view_category if self.view_category != "all" else None,
            "since": self.since,
            "until": self.until,
        }


def events_query(store: Store, params: Params) -> EventsQuery:
    """Validate `/api/events` parameters; BadRequest says what is wrong. A cursor must be
    of the store's epoch."""
    limit = limit_param(params, 100)
    since = instant_param(params, "since")
    until = instant_param(params, "until")
    roles = roles_param(params)
    types = csv_param(params, "type")
    view_cat = view_category_param(store, params)
    cursor = decode_cursor(params, "e")
    before: int | None = None
    if cursor is not None:
        if len(cursor) != 3 or type(cursor[2]) is not int:
            raise BadRequest("invalid cursor")
        if cursor[1] != store.epoch:
            raise BadRequest("cursor is from another epoch: start again without cursor")
        before = cursor[2]
    return EventsQuery(limit, since, until, roles, types, view_cat, before,
                       store.overrides.categories)
