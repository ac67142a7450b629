"""The sync worker's contract: its settings, what it reads from the daemon, what it reports.

Kept apart from `coordd.mongo.sync` (which re-exports every name) so the worker module
stays about the worker. No trio, no pymongo.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordd.config import MongoConfig
from coordd.core.event import Event

__all__ = ["SyncSettings", "SyncSource", "SyncStats"]


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """The worker's knobs; `from_config` maps `[mongo]`."""

    batch_size: int = 200
    batch_interval: float = 0.2
    buffer_events: int = 10_000
    backoff_initial: float = 0.25
    backoff_max: float = 30.0
    max_threads: int = 4
    ttl_days: int = 90
    retention_interval: float = 3600.0
    #: First retention pass this long after connecting (not at once: catch-up first).
    retention_first: float = 60.0
    retention_sessions: int = 1000
    flush_timeout: float = 2.0
    #: How often an idle worker looks at the store even without an offer (a safety net).
    idle_poll: float = 1.0

    @classmethod
    def from_config(cls, cfg: MongoConfig) -> SyncSettings:
        """The settings `[mongo]` asks for."""
        return cls(batch_size=cfg.batch_size, batch_interval=cfg.batch_interval,
                   buffer_events=cfg.buffer_events, backoff_max=cfg.backoff_max,
                   max_threads=cfg.max_threads, ttl_days=cfg.ttl_days)


@dataclass(frozen=True, slots=True)
class SyncSource:
    """What the worker reads from the daemon (called on the event loop, never in a thread).

    `events_since(seq)`: the stored events after `seq` in order, None when some were
    evicted. `session_docs(ws_ids)`: session documents (`coordd.mongo.sessiondocs.session_document`)
    for the ids the store still has. `reread(from_seq)`: the events after `from_seq` from
    the log, in batches (None: no log, e.g. a follower).
    """

    epoch: Callable[[], str]
    last_seq: Callable[[], int]
    first_seq: Callable[[], int]
    events_since: Callable[[int], Sequence[Event] | None]
    session_docs: Callable[[Collection[str]], Iterable[Mapping[str, Any]]]
    reread: Callable[[int], AsyncGenerator[Sequence[Event], None]] | None = None


@dataclass(frozen=True, slots=True)
class SyncStats:
    """A snapshot for `--check`, `/api/health` and `/metrics`.

    `state`: `connecting` (no answer yet), `connected`, `degraded` (reachable, but writes
    fail for another reason, or catching up from the log) or `down` (unreachable).
    `lag` = last stored seq − synced seq, in events.
    """

    state: str
    last_error: str | None
    last_error_at: float | None
    epoch: str | None
    synced_seq: int
    last_seq: int
    lag: int
    pending: int
    batches: int
    inserted: int
    duplicates: int
    stamped: int
    sessions: int
    errors: int
    consecutive_failures: int
    retry_in: float
    dropped: int
    from_memory: int
    from_log: int
    unrecoverable: int
    rejected: int
    retention_runs: int
    expired_sessions: int
    expired_events: int
