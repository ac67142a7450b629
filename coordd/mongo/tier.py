"""The MongoDB tier of a daemon with `[mongo] uri`: one object, built before the daemon runs.

It holds the one client (`PymongoSink`), the web's query backend (`MongoQueries`) and
either the sync worker (a tailing instance) or the follower (follower mode), and offers
the daemon what it needs of them: `run` (the worker or the follower, as one component),
`warm_history` (a tailing instance's restart), `offer` and `prepare_source` (for the
pipeline), `queries`, `health()` (its `/api/health` checks) and `metric_families()`.

It reads the daemon's store through `store()` and never holds the service: a follower's
new epoch gets a new store from `replace_store(epoch)`, which the daemon installs.
pymongo is imported by the modules this builds, on first use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from coordd.config import Config
from coordd.core.enrich import Enricher
from coordd.core.event import Event, Prepare
from coordd.core.health import Check
from coordd.core.sessions import UNFILTERED
from coordd.core.store import Store
from coordd.core.vocabulary import CategoryVocabulary
from coordd.mongo.follower import Follower
from coordd.mongo.load import load_warm_history
from coordd.mongo.queries import MongoQueries
from coordd.mongo.reread import LogRereader
from coordd.mongo.schema import prepare_document
from coordd.mongo.sessiondocs import session_documents
from coordd.mongo.sink import PymongoSink
from coordd.mongo.sync import SyncSettings, SyncSource, SyncWorker
from coordd.tail.checkpoint import Checkpoint, read_checkpoint
from coordd.tail.pipeline import Listener

__all__ = ["MongoTier"]


class MongoTier:
    """The sink, the query routes and the sync worker or the follower; see the module
    docstring. Build it with `tailing` or `following`."""

    def __init__(self, config: Config, sink: PymongoSink, queries: MongoQueries,
                 store: Callable[[], Store], *, sync: SyncWorker | None = None,
                 follower: Follower | None = None) -> None:
        if (sync is None) == (follower is None):
            raise ValueError("a MongoDB tier has either a sync worker or a follower")
        self.config = config
        self.sink = sink
        self.queries = queries
        self.sync = sync
        self.follower = follower
        self._store = store

    @staticmethod
    def _sink(cfg: Config, client: Any) -> PymongoSink:
        """The one client: `client` when given (mongomock in tests), else from `[mongo]`."""
        if client is not None:
            return PymongoSink(client, cfg.mongo.database, ttl_days=cfg.mongo.ttl_days)
        return PymongoSink.from_config(cfg.mongo)

    @staticmethod
    def _queries(cfg: Config, sink: PymongoSink, store: Callable[[], Store], *,
                 sync: SyncWorker | None = None) -> MongoQueries:
        """The query backend; a stored category override has the sync worker write the
        session's document again; the probed capabilities pick the fallbacks."""
        return MongoQueries(sink.db, store, timeout=cfg.mongo.operation_timeout,
                            limiter=trio.CapacityLimiter(cfg.mongo.max_threads),
                            on_category_change=sync.refresh_sessions if sync else None,
                            capabilities=lambda: sink.capabilities,
                            unreachable=sink.unreachable)

    @classmethod
    def tailing(cls, cfg: Config, store: Store, *, reread_enricher: Enricher,
                client: Any = None) -> MongoTier:
        """The tier of a tailing instance: the sync worker writes what `store` holds.
        `reread_enricher` enriches the log lines re-read to fill a gap (in a thread of
        its own, so an enricher of its own)."""
        sink = cls._sink(cfg, client)
        state_dir = cfg.state_dir()

        def anchor() -> Checkpoint | None:
            try:
                cp = read_checkpoint(state_dir)
            except (OSError, ValueError):
                return None
            return cp if cp is not None and cp.epoch == store.epoch else None

        rereader = LogRereader(cfg.log_path(), reread_enricher, anchor,
                               read_rotated=cfg.log.read_rotated,
                               max_line_bytes=cfg.log.max_line_bytes)
        source = SyncSource(
            epoch=lambda: store.epoch, last_seq=lambda: store.last_seq,
            first_seq=lambda: store.first_seq, events_since=store.events_since,
            session_docs=lambda ids: session_documents(
                store.view(UNFILTERED).sessions, ids, override=store.overrides.get,
                epoch=store.epoch, now_ms=time.time() * 1000),
            reread=rereader,
        )
        sync = SyncWorker(sink, source, SyncSettings.from_config(cfg.mongo))
        return cls(cfg, sink, cls._queries(cfg, sink, lambda: store, sync=sync), lambda: store,
                   sync=sync)

    @classmethod
    def following(cls, cfg: Config, store: Callable[[], Store],
                  replace_store: Callable[[str], Store], listeners: Sequence[Listener], *,
                  client: Any = None) -> MongoTier:
        """The tier of a follower: the follower feeds `store()` and `listeners` from
        MongoDB; on a new epoch `replace_store(epoch)` gives it a new, empty store (the
        daemon installs it wherever it reads its store)."""
        sink = cls._sink(cfg, client)
        follower = Follower(
            sink, store, replace_store, listeners,
            max_events=cfg.store.max_events, poll_interval=cfg.mode.poll_interval,
            start_timeout=cfg.mongo.server_selection_timeout + cfg.mongo.operation_timeout,
            backoff_max=cfg.mongo.backoff_max,
            limiter=trio.CapacityLimiter(cfg.mongo.max_threads))
        return cls(cfg, sink, cls._queries(cfg, sink, store), store, follower=follower)

    # ------------------------------------------------------------------ running

    @property
    def name(self) -> str:
        """The component's name in the daemon's log: `mongo-sync` or `follower`."""
        return "follower" if self.follower is not None else "mongo-sync"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The sync worker, or the follower, until cancelled (see theirs)."""
        if self.follower is not None:
            await self.follower.run(task_status=task_status)
        else:
            assert self.sync is not None
            await self.sync.run(task_status=task_status)

    async def warm_history(self, checkpoint: Checkpoint | None, log_path: Path, *,
                           max_events: int, categories: CategoryVocabulary
                           ) -> list[Event] | None:
        """A tailing instance's history from MongoDB for a restart from `checkpoint`, or
        None (a cold start); bounded by the server selection and operation timeouts."""
        cfg = self.config.mongo
        return await load_warm_history(
            self.sink, checkpoint, log_path, max_events=max_events,
            max_wait=cfg.server_selection_timeout + cfg.operation_timeout,
            categories=categories)

    def offer(self, events: Sequence[Event]) -> None:
        """A pipeline listener: the sync worker takes each stored batch (a follower's
        tier takes none)."""
        if self.sync is not None:
            self.sync.offer(events)

    @property
    def prepare_source(self) -> Prepare:
        """What the pipeline makes each new event's `Event.source` with: its document,
        prepared while the event is fresh in the cache; the worker drops it once written
        (`SyncWorker.offer`)."""
        return prepare_document

    # ------------------------------------------------------------------ health, metrics

    def health(self) -> list[Check]:
        """The `/api/health` checks of the tier: `follower`, `mongo-queries` (once a
        query fell back to memory), `mongo-server` (what the server lacks and the fallback
        in use, once probed) and `mongo` (the sync worker)."""
        checks: list[Check] = []
        if self.follower is not None:
            fs = self.follower.statistics()
            ok = fs.state == "connected"
            checks.append(Check(
                "follower", "pass" if ok else "warn",
                f"following MongoDB ({'change stream' if fs.change_stream else 'polling'})"
                if ok else f"MongoDB {fs.state}: {fs.last_error}",
                {"lagEvents": fs.lag, "lastSeq": fs.last_seq, "epoch": fs.epoch,
                 "events": len(self._store())}))
        qs = self.queries.statistics()
        if qs.last_error is not None and qs.degraded:
            checks.append(Check(
                "mongo-queries", "pass", f"{qs.degraded} answer(s) from memory since start; "
                f"last: {qs.last_error}", {"mongo": qs.mongo, "degraded": qs.degraded}))
        caps = self.sink.capabilities
        if caps is not None:
            checks.append(Check("mongo-server", "pass", caps.describe(), caps.as_json()))
        if self.sync is not None:
            ms = self.sync.statistics()
            ok = ms.state == "connected"
            checks.append(Check("mongo", "pass" if ok else "warn",
                                f"MongoDB {ms.state}" + ("" if ok else f": {ms.last_error}"),
                                {"lagEvents": ms.lag, "syncedSeq": ms.synced_seq,
                                 "errors": ms.errors}))
        return checks

    def metric_families(self) -> Iterator[Metric]:
        """The sync worker's families (a follower has none of its own)."""
        if self.sync is None:
            return
        m = self.sync.statistics()
        yield GaugeMetricFamily("coordd_mongo_lag_events", "Events not yet written to MongoDB",
                                value=m.lag)
        yield CounterMetricFamily("coordd_mongo_errors", "MongoDB operation failures",
                                  value=m.errors)
        yield GaugeMetricFamily("coordd_mongo_up", "1 when MongoDB answers",
                                value=1 if m.state == "connected" else 0)

