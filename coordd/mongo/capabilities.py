"""What the connected server can do, probed once at connect.

MongoDB-compatible servers (FerretDB, DocumentDB, Cosmos DB) speak the wire protocol but lack
parts of it: `$text` indexes, change streams, TTL indexes, expression operators such as
`$switch`/`$cond`, accumulators beyond `$sum`/`$count`, stages such as `$facet`. coordd uses
each where the server has it and a documented fallback where it does not:

| feature | used for | fallback |
| --- | --- | --- |
| `text_index` | `/api/events/search` and session search | a regex prefilter over a bounded cursor |
| `change_streams` | a follower hears new events at once | polling the sync marker |
| `ttl_index` | `[mongo] ttl_days` retention | the retention pass deletes old events itself |
| `expressions` | status and stats on the server | computed in Python over a bounded cursor |
| `accumulators` | `/api/stats` groups on the server | computed in Python over a bounded cursor |
| `dotted_keys` | `roleCounts` keyed by role (`conversation.main`) | an array of `{role, count}` |

`probe(database)` is blocking (pymongo): run it in a worker thread. Each probe works on a
scratch collection it drops again and takes one round trip or two; an answer that is not a
clear "not supported" (a timeout, a lost connection) is raised, not taken as a missing
feature.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["FALLBACKS", "Capabilities", "is_unsupported", "probe"]

#: Server error codes that mean "this server does not do that" (not a failure of the moment).
_UNSUPPORTED_CODES: Final = frozenset({
    2,       # BadValue (FerretDB: "key must not contain '.' sign")
    9,       # FailedToParse / invalid command format (e.g. `aggregate: 1` for a db watch)
    27,      # IndexNotFound (FerretDB: a text index it cannot build)
    40324,   # unrecognised pipeline stage
    40573,   # change streams need a replica set
    115,     # CommandNotSupported
    168,     # InvalidPipelineOperator
    238,     # NotImplemented
    303,     # CommandNotSupportedOnView / unsupported (DocumentDB)
    15952,   # unknown group operator
    31082,   # unknown expression
})

#: feature -> what coordd does without it (the words /api/health and --check use).
FALLBACKS: Final = {
    "text_index": "search matches a regex prefilter over a bounded cursor",
    "change_streams": "the follower polls the sync marker",
    "ttl_index": "the retention pass deletes expired events itself",
    "expressions": "status is computed in Python over a bounded cursor",
    "accumulators": "stats are computed in Python over a bounded cursor",
    "dotted_keys": "a session's roleCounts is stored as an array of {role, count}",
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The server's name and version and, per feature, whether it has it."""

    server: str
    version: tuple[int, ...]
    text_index: bool = True
    change_streams: bool = True
    ttl_index: bool = True
    expressions: bool = True
    accumulators: bool = True
    dotted_keys: bool = True
    stages: frozenset[str] | None = field(default=None)

    @classmethod
    def full(cls, server: str = "MongoDB", version: tuple[int, ...] = ()) -> Capabilities:
        """Everything available (a real MongoDB, or a fake that plays one)."""
        return cls(server, version)

    def missing(self) -> list[str]:
        """The features this server lacks, in the table's order."""
        return [name for name in FALLBACKS if not getattr(self, name)]

    def fallbacks(self) -> dict[str, str]:
        """feature -> the fallback in use, for the features the server lacks."""
        return {name: FALLBACKS[name] for name in self.missing()}

    def describe(self) -> str:
        """One line for logs, `/api/health` and `--check`."""
        missing = self.missing()
        if not missing:
            return f"{self.server}: every feature coordd uses"
        return f"{self.server}: without {', '.join(missing)} (fallbacks in use)"

    def as_json(self) -> dict[str, Any]:
        return {"server": self.server, "version": ".".join(map(str, self.version)),
                "missing": self.missing(), "fallbacks": self.fallbacks()}


def is_unsupported(exc: BaseException) -> bool:
    """Whether a pymongo error says "not supported here" (rather than "failed now")."""
    if isinstance(exc, NotImplementedError):  # mongomock's way of saying it
        return True
    code = getattr(exc, "code", None)
    if code in _UNSUPPORTED_CODES:
        return True
    text = str(exc).lower()
    return "not implemented" in text or "not supported" in text


def probe(database: Any) -> Capabilities:
    """Probe the server behind a pymongo `Database` (blocking)."""
    try:
        info = database.client.admin.command("buildInfo")
    except NotImplementedError:  # mongomock
        info = {"version": "unknown (no buildInfo)"}
    version = tuple(int(x) for x in info.get("versionArray", [])[:3]) or _version(info)
    ferret = info.get("ferretdbVersion")
    server = (f"FerretDB {ferret} (MongoDB {info.get('version')} wire protocol)" if ferret
              else f"MongoDB {info.get('version', '?')}")
    stages = info.get("ferretdbFeatures", {}).get("aggregationStages")
    scratch = database[f"coordd_probe_{secrets.token_hex(4)}"]
    try:
        scratch.insert_one({"a": 1, "t": "probe"})
        return Capabilities(
            server=server, version=version,
            text_index=_works(lambda: scratch.create_index([("t", "text")])),
            change_streams=_works(lambda: _open_change_stream(scratch)),
            ttl_index=_works(lambda: scratch.create_index("a", expireAfterSeconds=3600)),
            expressions=_works(lambda: list(scratch.aggregate([{"$project": {"x": {
                "$switch": {"branches": [{"case": {"$eq": ["$a", 1]}, "then": 1}],
                            "default": 0}}}}]))),
            accumulators=_works(lambda: list(scratch.aggregate([
                {"$group": {"_id": None, "m": {"$max": "$a"}, "s": {"$min": "$a"}}}]))),
            dotted_keys=_works(lambda: scratch.insert_one({"d": {"a.b": 1}})),
            stages=frozenset(stages) if stages is not None else None,
        )
    finally:
        scratch.drop()


def _open_change_stream(collection: Any) -> None:
    if not callable(getattr(type(collection), "watch", None)):
        raise NotImplementedError("this client has no change streams")  # mongomock
    with collection.watch(max_await_time_ms=1) as stream:
        stream.try_next()


def _works(attempt: Callable[[], Any]) -> bool:
    try:
        attempt()
    except Exception as exc:
        if is_unsupported(exc):
            return False
        raise
    return True


def _version(info: dict[str, Any]) -> tuple[int, ...]:
    parts = []
    for piece in str(info.get("version", "")).split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)
