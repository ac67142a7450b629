"""The MongoDB parts of the service: the sync worker, the follower, their health checks.

Built only with `[mongo] uri` (pymongo is imported by the modules these build, on first
use). Kept apart from `coordd.service.service` so the daemon's lifetime reads without them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

from coordd.core.enrich import Enricher
from coordd.core.sessions import UNFILTERED
from coordd.core.store import Store
from coordd.tail.checkpoint import Checkpoint, read_checkpoint

if TYPE_CHECKING:
    from coordd.mongo.follower import Follower
    from coordd.mongo.sync import SyncWorker
    from coordd.service.service import Service

__all__ = ["build_follower", "build_sync_worker", "mongo_checks"]


def build_follower(service: Service) -> Follower:
    """The follower feeding the service's store and hub from MongoDB (follower mode)."""
    from coordd.mongo.follower import Follower

    cfg = service.config
    assert service.mongo_sink is not None  # load_config refuses a follower without a uri

    def replace_store(epoch: str) -> Store:
        # A new epoch is a new sequence space: a fresh store, installed wherever the
        # daemon reads the store (the routes, the hub and the metrics read it through
        # the service).
        service.store = Store(max_events=cfg.store.max_events, overrides=service.overrides,
                              epoch=epoch)
        if hasattr(service, "app_context"):
            service.app_context.store = service.store
        return service.store

    return Follower(
        service.mongo_sink, lambda: service.store, replace_store, [service.hub.publish],
        max_events=cfg.store.max_events, poll_interval=cfg.mode.poll_interval,
        start_timeout=cfg.mongo.server_selection_timeout + cfg.mongo.operation_timeout,
        backoff_max=cfg.mongo.backoff_max,
        limiter=trio.CapacityLimiter(cfg.mongo.max_threads))


def build_sync_worker(service: Service, checkpoint: Checkpoint | None) -> SyncWorker:
    """The MongoDB sync worker over the service's store (a tailing instance)."""
    from coordd.mongo.reread import LogRereader
    from coordd.mongo.schema import session_documents
    from coordd.mongo.sync import SyncSettings, SyncSource, SyncWorker

    cfg, store, state_dir = service.config, service.store, service.state_dir

    def anchor() -> Checkpoint | None:
        try:
            cp = read_checkpoint(state_dir)
        except (OSError, ValueError):
            return None
        return cp if cp is not None and cp.epoch == store.epoch else None

    # The re-read runs in its own thread: it gets its own Enricher.
    reread_enricher = Enricher(service.plugins, service.categories, service.main_agents.current)
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
    assert service.mongo_sink is not None
    return SyncWorker(service.mongo_sink, source, SyncSettings.from_config(cfg.mongo))


def _check(status: str, output: str, observed: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "output": output}
    if observed is not None:
        out["observedValue"] = observed
    return out


def mongo_checks(service: Service) -> dict[str, list[dict[str, Any]]]:
    """The `/api/health` checks of the MongoDB parts: `follower`, `mongo-queries` (once a
    query fell back to memory) and `mongo` (the sync worker)."""
    checks: dict[str, list[dict[str, Any]]] = {}
    if service.follower is not None:
        fs = service.follower.statistics()
        ok = fs.state == "connected"
        checks["follower"] = [_check(
            "pass" if ok else "warn",
            f"following MongoDB ({'change stream' if fs.change_stream else 'polling'})"
            if ok else f"MongoDB {fs.state}: {fs.last_error}",
            {"lagEvents": fs.lag, "lastSeq": fs.last_seq, "epoch": fs.epoch,
             "events": len(service.store)})]
    if service.mongo_queries is not None:
        qs = service.mongo_queries.statistics()
        if qs.last_error is not None and qs.degraded:
            checks["mongo-queries"] = [_check(
                "pass", f"{qs.degraded} answer(s) from memory since start; last: "
                f"{qs.last_error}", {"mongo": qs.mongo, "degraded": qs.degraded})]
    if service.sync is not None:
        ms = service.sync.statistics()
        ok = ms.state == "connected"
        checks["mongo"] = [_check("pass" if ok else "warn",
                                  f"MongoDB {ms.state}" + ("" if ok else f": {ms.last_error}"),
                                  {"lagEvents": ms.lag, "syncedSeq": ms.synced_seq,
                                   "errors": ms.errors})]
    return checks
