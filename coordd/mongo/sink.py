"""The seam between the sync worker and MongoDB: a `Sink` protocol and two implementations.

* `PymongoSink` — pymongo's synchronous client. Give it a `pymongo.MongoClient` (or a
  `mongomock.MongoClient`: the tests run the same code against it), or build it with
  `PymongoSink.from_config` / `from_uri`, which create the client lazily on first use, in
  the calling (worker) thread: constructing a client can block (a `mongodb+srv://` URI
  resolves DNS).
* `coordd.mongo.memsink.MemorySink` — an in-memory fake with the same semantics and
  failure injection, for tests and benchmarks of the worker.

Every method is blocking: the worker calls them in `trio.to_thread.run_sync`. A server that
cannot be reached raises `SinkUnavailable` (message trimmed to something a health check can
show); other errors propagate as they are (pymongo's `OperationFailure`, `BulkWriteError`
with errors other than duplicate keys, ...). Writes are idempotent, so a failed call is
simply retried.

Retention (`expire`): a work session whose `updatedAt` is older than the cutoff is removed
with all its events — events first, so a crash in between leaves a session whose next pass
completes the job, never events without a session; events written without a session
document (`retention: "ttl"`) are removed by insertion time, which the TTL index also does
on the server; documents the old monitor wrote without a session are removed by their
`createdAt`, as its own TTL index did (coordd drops that index, see `ensure_schema`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from coordd.config import MongoConfig
from coordd.errors import ConfigError, SinkUnavailable
from coordd.mongo.capabilities import Capabilities, probe
from coordd.mongo.schema import (
    COORDD_EVENT_FIELDS,
    EVENTS,
    MARKER_ID,
    META,
    SESSIONS,
    TEXT_INDEX,
    TTL_INDEX,
    IndexSpec,
    bson_safe,
    event_indexes,
    is_legacy_ttl_index,
    marker_document,
    session_indexes,
)

__all__ = [
    "PymongoSink",
    "RetentionResult",
    "Sink",
    "SyncMarker",
    "WriteResult",
    "is_stale",
    "role_counts_as_array",
]

log = logging.getLogger(__name__)

_DUPLICATE_KEY: Final = 11000
#: Index conflicts: an index of that name or key pattern exists with other options.
_INDEX_CONFLICT: Final = frozenset({85, 86})
_MAX_MESSAGE: Final = 300


@dataclass(frozen=True, slots=True)
class SyncMarker:
    """Every event of `epoch` up to `seq` is in the database."""

    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """One `write_events` call: new documents, duplicates (already there, by `eventHash`),
    and how many of those were the old monitor's documents stamped with coordd's fields."""

    inserted: int
    duplicates: int
    stamped: int = 0


def role_counts_as_array(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A session document for a server that refuses dots in field names (FerretDB):
    `roleCounts` as `[{"role": r, "count": n}, ...]` instead of `{r: n}`."""
    counts = doc.get("roleCounts")
    if not isinstance(counts, Mapping):
        return dict(doc)
    return {**doc, "roleCounts": [{"role": r, "count": n} for r, n in counts.items()]}


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """One `expire` pass: sessions and events removed."""

    sessions: int
    events: int


class Sink(Protocol):
    """Where the sync worker writes. Blocking methods, called from worker threads."""

    def ensure_schema(self) -> None:
        """Create the indexes (idempotent); retire the old monitor's event-time TTL."""

    def read_marker(self) -> SyncMarker | None:
        """The durable "synced up to" marker, None when there is none."""

    def write_marker(self, marker: SyncMarker, at: _dt.datetime) -> None:
        """Replace the marker."""

    def upsert_sessions(self, docs: Sequence[Mapping[str, Any]]) -> int:
        """Upsert session documents (`_id` = their `workSessionId`); returns how many."""

    def existing_sessions(self, ws_ids: Collection[str]) -> set[str]:
        """Which of these sessions have a document."""

    def touch_sessions(self, ws_ids: Collection[str], at: _dt.datetime) -> int:
        """Set `updatedAt` of existing session documents (no upsert)."""

    def write_events(self, docs: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Insert event documents; a duplicate `eventHash` means "already there"."""

    def expire(self, cutoff: _dt.datetime, limit: int) -> RetentionResult:
        """One retention pass (at most `limit` sessions) for everything older than `cutoff`."""

    def close(self) -> None:
        """Release the connection."""


def _trim(text: str) -> str:
    # A server-selection error carries the whole topology description: keep the gist.
    text = text.split(", Timeout:")[0].split(", Topology Description:")[0]
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 1] + "…"


class PymongoSink:
    """The pymongo implementation (also runs on a `mongomock.MongoClient`)."""

    def __init__(self, client: Any = None, database: str = "task_monitor", *,
                 ttl_days: int = 90, connect: Callable[[], Any] | None = None) -> None:
        """Either a ready `client`, or `connect()` which makes one on first use."""
        if (client is None) == (connect is None):
            raise ValueError("give exactly one of client and connect")
        self._client = client
        self._connect = connect
        self._lock = threading.Lock()
        self.database = database
        self.ttl_days = ttl_days
        #: What the server can do, probed by `ensure_schema` (None until then).
        self.capabilities: Capabilities | None = None

    @classmethod
    def from_config(cls, cfg: MongoConfig) -> PymongoSink:
        """A sink for `[mongo]` (its uri must be set)."""
        return cls.from_uri(cfg.uri, cfg.database, ttl_days=cfg.ttl_days,
                            server_selection_timeout=cfg.server_selection_timeout,
                            operation_timeout=cfg.operation_timeout)

    @classmethod
    def from_uri(cls, uri: str, database: str = "task_monitor", *, ttl_days: int = 90,
                 server_selection_timeout: float = 2.0,
                 operation_timeout: float = 10.0) -> PymongoSink:
        """A sink whose client is made on first use: short server selection, every
        operation bounded by `operation_timeout` (pymongo's `timeoutMS`)."""
        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigError("[mongo] uri: expected a mongodb:// or mongodb+srv:// URI")

        def connect() -> Any:
            import pymongo  # only when MongoDB is configured

            sst = max(1, int(server_selection_timeout * 1000))
            return pymongo.MongoClient(
                uri, appname="coordd", serverSelectionTimeoutMS=sst,
                connectTimeoutMS=sst, timeoutMS=max(1, int(operation_timeout * 1000)))

        return cls(database=database, ttl_days=ttl_days, connect=connect)

    # ------------------------------------------------------------------ plumbing

    @property
    def _db(self) -> Any:
        with self._lock:
            if self._client is None:
                assert self._connect is not None
                self._client = self._connect()
            return self._client[self.database]

    def db(self) -> Any:
        """The `pymongo.database.Database` (the client is made now if needed: blocking).
        The read side — warm restart, follower, query routes — shares this client."""
        return self._db

    def unreachable(self) -> str | None:
        """Why the server is known to be unreachable right now, or None (reachable, or not
        yet tried). Never blocks: it reads what the driver's monitor last saw, so a caller
        can answer otherwise at once instead of waiting out `operation_timeout`. The sync
        worker's and the follower's retries keep that picture fresh during an outage."""
        from pymongo import MongoClient

        with self._lock:
            client = self._client
        if not isinstance(client, MongoClient):  # no client yet, or a fake
            return None
        description = client.topology_description
        if description.has_readable_server(client.read_preference):
            return None
        errors = [sd.error for sd in description.server_descriptions().values()
                  if sd.error is not None]
        return f"MongoDB unreachable: {_trim(str(errors[0]))}" if errors else None

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """A context in which an unreachable server raises `SinkUnavailable`."""
        return self._errors()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Unreachable server (or a timed-out operation) → `SinkUnavailable`."""
        from pymongo.errors import ConnectionFailure, PyMongoError

        try:
            yield
        except ConnectionFailure as e:
            raise SinkUnavailable(f"MongoDB unreachable: {_trim(str(e))}") from e
        except PyMongoError as e:
            if getattr(e, "timeout", False):
                raise SinkUnavailable(f"MongoDB timed out: {_trim(str(e))}") from e
            raise

    # ------------------------------------------------------------------ schema

    def ensure_schema(self) -> None:
        """Probe the server's capabilities; create the old monitor's indexes and coordd's
        (those the server can build: no text index or TTL index where it has none); drop the
        old monitor's TTL on `createdAt` (it expires a session's events one by one) and a
        TTL of another length."""
        with self._errors():
            db = self._db
            if self.capabilities is None:
                self.capabilities = probe(db)
                log.info("MongoDB server: %s", self.capabilities.describe())
                for feature, fallback in self.capabilities.fallbacks().items():
                    log.info("MongoDB server has no %s: %s", feature, fallback)
            events = db[EVENTS]
            want_ttl = self.ttl_days * 86_400
            for name, info in events.index_information().items():
                legacy = is_legacy_ttl_index(info)
                stale = name == TTL_INDEX and (
                    self.ttl_days == 0 or info.get("expireAfterSeconds") != want_ttl)
                if legacy or stale:
                    log.warning("dropping index %s.%s (%s)", EVENTS, name,
                                "the old monitor's TTL on event time" if legacy
                                else "its TTL differs from [mongo] ttl_days")
                    events.drop_index(name)
            self._create(events, self._buildable(event_indexes(self.ttl_days)),
                         essential="eventHash_1")
            self._create(db[SESSIONS], session_indexes(), essential=None)

    def _buildable(self, specs: list[IndexSpec]) -> list[IndexSpec]:
        """The index specs the probed server can build."""
        caps = self.capabilities
        skip = set()
        if caps is not None and not caps.text_index:
            skip.add(TEXT_INDEX)  # search falls back to a regex prefilter
        if caps is not None and not caps.ttl_index:
            skip.add(TTL_INDEX)  # the retention pass deletes by insertedAt anyway
        return [spec for spec in specs if spec.name not in skip]

    def _create(self, coll: Any, specs: list[IndexSpec], essential: str | None) -> None:
        from pymongo.errors import OperationFailure

        for spec in specs:
            try:
                coll.create_index(list(spec.keys), name=spec.name, **spec.options)
            except OperationFailure as e:
                if e.code not in _INDEX_CONFLICT or spec.name == essential:
                    raise
                # Someone's index with the same keys: queries still work, so keep going.
                log.warning("index %s.%s not created (%s)", coll.name, spec.name,
                            _trim(str(e)))

    # ------------------------------------------------------------------ marker

    def read_marker(self) -> SyncMarker | None:
        with self._errors():
            doc = self._db[META].find_one({"_id": MARKER_ID})
        return _marker(doc)

    def write_marker(self, marker: SyncMarker, at: _dt.datetime) -> None:
        with self._errors():
            self._db[META].update_one(
                {"_id": MARKER_ID}, {"$set": marker_document(marker.epoch, marker.seq, at)},
                upsert=True)

    # ------------------------------------------------------------------ sessions

    def upsert_sessions(self, docs: Sequence[Mapping[str, Any]]) -> int:
        # One update per session: a batch touches few, and mongomock has no bulk upsert.
        caps = self.capabilities
        if caps is not None and not caps.dotted_keys:
            docs = [role_counts_as_array(doc) for doc in docs]
        with self._errors():
            coll = self._db[SESSIONS]
            for doc in docs:
                try:
                    coll.update_one({"_id": doc["workSessionId"]}, {"$set": dict(doc)},
                                    upsert=True)
                except _encode_errors():
                    coll.update_one({"_id": doc["workSessionId"]}, {"$set": bson_safe(doc)},
                                    upsert=True)
        return len(docs)

    def existing_sessions(self, ws_ids: Collection[str]) -> set[str]:
        if not ws_ids:
            return set()
        with self._errors():
            found = self._db[SESSIONS].find({"_id": {"$in": list(ws_ids)}}, {"_id": 1})
            return {d["_id"] for d in found}

    def touch_sessions(self, ws_ids: Collection[str], at: _dt.datetime) -> int:
        if not ws_ids:
            return 0
        with self._errors():
            res = self._db[SESSIONS].update_many(
                {"_id": {"$in": list(ws_ids)}}, {"$set": {"updatedAt": at}})
        return int(res.matched_count)

    # ------------------------------------------------------------------ events

    def write_events(self, docs: Sequence[Mapping[str, Any]]) -> WriteResult:
        from pymongo.errors import BulkWriteError

        if not docs:
            return WriteResult(0, 0)
        with self._errors():
            coll = self._db[EVENTS]
            try:
                try:
                    # insert_many adds `_id` to what it is given: fresh copies.
                    res = coll.insert_many([dict(d) for d in docs], ordered=False)
                except _encode_errors():
                    docs = [bson_safe(d) for d in docs]
                    res = coll.insert_many([dict(d) for d in docs], ordered=False)
                return WriteResult(len(res.inserted_ids), 0)
            except BulkWriteError as e:
                details = e.details
                errors = details.get("writeErrors", [])
                if details.get("writeConcernErrors") or any(
                        err.get("code") != _DUPLICATE_KEY for err in errors):
                    raise
                dups = [docs[err["index"]] for err in errors]
                inserted = int(details.get("nInserted", 0))
            stamped = self._stamp_legacy(coll, dups)
        return WriteResult(inserted, len(dups), stamped)

    @staticmethod
    def _stamp_legacy(coll: Any, dups: list[Mapping[str, Any]]) -> int:
        """Give coordd's fields (seq, epoch, enriched, ...) to the documents among `dups`
        that lack them or carry another epoch's: the old monitor's, those of an earlier
        epoch (a new log read again) and those written before coordd kept the enriched
        event. Queries by `(epoch, seq)`, warm restarts, followers and retention then
        find every event of the current epoch."""
        by_epoch: dict[Any, list[Mapping[str, Any]]] = {}
        for d in dups:
            by_epoch.setdefault(d.get("epoch"), []).append(d)
        stamped = 0
        for epoch, docs in by_epoch.items():
            stale = _stale(epoch)
            hashes = [d["eventHash"] for d in docs]
            found = {d["eventHash"] for d in coll.find(
                {"eventHash": {"$in": hashes}, **stale}, {"eventHash": 1})}
            for doc in docs:
                if doc["eventHash"] in found:
                    found.discard(doc["eventHash"])
                    coll.update_one(
                        {"eventHash": doc["eventHash"], **stale},
                        {"$set": {k: doc[k] for k in COORDD_EVENT_FIELDS if k in doc}})
                    stamped += 1
        return stamped

    # ------------------------------------------------------------------ retention

    def expire(self, cutoff: _dt.datetime, limit: int) -> RetentionResult:
        with self._errors():
            db = self._db
            events, sessions = db[EVENTS], db[SESSIONS]
            ids = [d["_id"] for d in sessions.find(
                {"updatedAt": {"$lt": cutoff}}, {"_id": 1}).limit(limit)]
            n_events = n_sessions = 0
            if ids:
                n_events += events.delete_many({"workSessionId": {"$in": ids}}).deleted_count
                n_events += events.delete_many(
                    {"retention": None, "data.workSessionId": {"$in": ids}}).deleted_count
                n_sessions = sessions.delete_many(
                    {"_id": {"$in": ids}, "updatedAt": {"$lt": cutoff}}).deleted_count
            n_events += events.delete_many(
                {"retention": "ttl", "insertedAt": {"$lt": cutoff}}).deleted_count
            n_events += events.delete_many(_LEGACY_SESSIONLESS | {
                "createdAt": {"$lt": cutoff}}).deleted_count
        return RetentionResult(n_sessions, n_events)

    def close(self) -> None:
        if self._connect is None:
            return  # a client we were given belongs to the caller
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _encode_errors() -> tuple[type[BaseException], ...]:
    """What the driver raises for a document BSON cannot hold as it is (see `bson_safe`)."""
    from bson.errors import BSONError

    return (BSONError, UnicodeError, OverflowError)


#: The old monitor's documents of events without a work session.
_LEGACY_SESSIONLESS: Final[dict[str, Any]] = {
    "retention": None,
    "$or": [{"data.workSessionId": {"$exists": False}},
            {"data.workSessionId": {"$not": {"$type": "string"}}},
            {"data.workSessionId": ""}],
}


def _stale(epoch: Any) -> dict[str, Any]:
    """A filter for event documents that need coordd's fields for `epoch` (see
    `PymongoSink._stamp_legacy`)."""
    return {"$or": [{"seq": {"$exists": False}}, {"epoch": {"$ne": epoch}},
                    {"enriched": {"$exists": False}}]}


def is_stale(doc: Mapping[str, Any], epoch: Any) -> bool:
    """Whether an event document needs coordd's fields for `epoch` (`_stale` as a test)."""
    return "seq" not in doc or doc.get("epoch") != epoch or "enriched" not in doc


def _marker(doc: Mapping[str, Any] | None) -> SyncMarker | None:
    if doc is None:
        return None
    epoch, seq = doc.get("epoch"), doc.get("seq")
    if type(epoch) is not str or type(seq) is not int or seq < 0:
        log.warning("ignoring a malformed sync marker in %s: %r", META, dict(doc))
        return None
    return SyncMarker(epoch, seq)
