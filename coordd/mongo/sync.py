"""The MongoDB sync worker: every stored event into MongoDB once, without ever making
ingestion or the API wait.

The pipeline calls `SyncWorker.offer(events)` on the event loop after each stored
batch; `offer` only appends references to a bounded buffer. The worker task (`run`) turns
the buffer into batches — `batch_size` events, or whatever arrived within
`batch_interval` of the oldest — and writes each batch in a worker thread under its own
`CapacityLimiter`: the work sessions it touched (documents from the integrator's
`session_docs`), the events (idempotent by `eventHash`), then the durable marker
"synced up to (epoch, seq)". The marker lives in MongoDB, next to the data, so a restart
resumes exactly where the database is; a replay after a crash only meets duplicates.

Falling behind. When MongoDB is slow or down, batches are retried with exponential
back-off and jitter while `offer` keeps buffering up to `buffer_events`; beyond that, new
events are not buffered (counted as `dropped`), and the worker catches up later from the
store (`events_since`), or — when the store no longer holds them — by re-reading the log
(`reread`, see `coordd.mongo.reread`). Nothing is lost while the log has the lines, nothing
is duplicated (event hash), and memory stays bounded (the buffer holds references to at
most `buffer_events` events). The buffer keeps its *oldest* events rather than the newest:
those are the ones the store evicts first.

Epochs. The marker names the epoch its seq belongs to. When the store's epoch is another
one (a new log, a lost checkpoint), the worker starts again from seq 0 of the new epoch and
relies on the event hash: a resync, not a duplication (the sink moves the documents it meets
again into the new epoch, so readers by `(epoch, seq)` find them all).

Retention (`ttl_days` > 0) runs in the same task between batches (so it never races the
writes): see `coordd.mongo.sink` for what it removes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import logging
import math
import random
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any, Final

import trio

from coordd.core.event import Event
from coordd.core.pacing import backoff_delay
from coordd.errors import SinkUnavailable
from coordd.mongo.bulk import expire, write_batch
from coordd.mongo.schema import utc_now
from coordd.mongo.sink import RetentionResult, Sink, SyncMarker
from coordd.mongo.types import SyncSettings, SyncSource, SyncStats

__all__ = ["SyncSettings", "SyncSource", "SyncStats", "SyncWorker"]

log = logging.getLogger(__name__)

_seq = attrgetter("seq")
#: Failures of one batch, other than "unreachable", before it is written event by event.
_REFUSALS: Final = 3
#: Buffered events beyond this many drop their prepared document (`Event.source`, made by
#: the pipeline so a document needs no second parse): while MongoDB is slow or down the
#: buffer holds references into the store, not ~10,000 documents.
_KEEP_SOURCES: Final = 2_000
#: Fruitless log re-reads in a row before a gap is declared unrecoverable.
_LOG_MISSES: Final = 3

RunSync = Callable[..., Awaitable[Any]]


class SyncWorker:
    """Batches stored events into a `Sink`; see the module docstring."""

    def __init__(self, sink: Sink, source: SyncSource, settings: SyncSettings | None = None,
                 *, limiter: trio.CapacityLimiter | None = None,
                 rng: random.Random | None = None,
                 now: Callable[[], _dt.datetime] = utc_now,
                 run_sync: RunSync | None = None) -> None:
        """`now` is the wall clock documents are stamped with (insertion time). `run_sync`
        replaces `trio.to_thread.run_sync` (tests run a fake sink inline to keep virtual
        time exact); it gets the same `limiter` and `abandon_on_cancel` keywords."""
        self.sink = sink
        self.source = source
        self.settings = s = settings or SyncSettings()
        if s.batch_size < 1 or s.buffer_events < 1 or s.batch_interval < 0:
            raise ValueError("need batch_size >= 1, buffer_events >= 1, batch_interval >= 0")
        # A buffer smaller than a batch would never fill one.
        self._capacity = max(s.buffer_events, s.batch_size)
        self._limiter = limiter or trio.CapacityLimiter(s.max_threads)
        self._rng = rng or random.Random()
        self._now = now
        self._run_sync: RunSync = run_sync or trio.to_thread.run_sync
        self._pending: deque[Event] = deque()
        self._pending_since = 0.0
        self._wake = trio.Event()
        self._progress = trio.Event()
        self._dirty: set[str] = set()
        self._epoch: str | None = None  # the epoch `_synced` counts in
        self._synced = 0
        self._marker: SyncMarker | None = None
        self._state = "connecting"
        self._from_log_active = False
        self._log_misses = 0
        self._next_retention = math.inf
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._failures = 0
        self._retry_in = 0.0
        self._n = dict.fromkeys(
            ("batches", "inserted", "duplicates", "stamped", "sessions", "errors", "dropped",
             "from_memory", "from_log", "unrecoverable", "rejected", "retention_runs",
             "expired_sessions", "expired_events"), 0)

    # ------------------------------------------------------------------ the loop side

    def offer(self, events: Sequence[Event]) -> None:
        """Take a stored batch (a pipeline listener): buffer it, never block, never raise.

        Events at or below the synced seq are ignored (history replayed at start); a
        batch that does not continue the buffer, or does not fit, is left to catch-up.
        """
        if not events:
            return
        start, end = self._offer(events)
        # Only buffered events keep their prepared document, and only the first
        # `_KEEP_SOURCES` of the buffer.
        keep_end = min(end, start + max(0, _KEEP_SOURCES - (len(self._pending) - (end - start))))
        for i in itertools.chain(range(start), range(keep_end, len(events))):
            events[i].source = None

    def _offer(self, events: Sequence[Event]) -> tuple[int, int]:
        """Buffer what continues the buffer and fits: the slice of `events` taken."""
        if events[-1].seq <= self._synced:
            return 0, 0
        p = self._pending
        floor = max(self._synced, p[-1].seq if p else 0)
        start = bisect_right(events, floor, key=_seq) if events[0].seq <= floor else 0
        n = len(events) - start
        if n <= 0:
            return 0, 0
        was_empty = not p
        if p and events[start].seq != p[-1].seq + 1:
            self._n["dropped"] += n
            return 0, 0
        room = self._capacity - len(p)
        if n > room:
            self._n["dropped"] += n - room
            n = room
        if n > 0:
            if was_empty:
                self._pending_since = trio.current_time()
            p.extend(itertools.islice(events, start, start + n))
        if was_empty or len(p) >= self.settings.batch_size:
            self._wake.set()
        return start, start + n

    def refresh_sessions(self, ws_ids: Iterable[str]) -> None:
        """Ask for these sessions' documents to be rewritten (e.g. after a category
        override), with the next batch or on their own."""
        self._dirty.update(ws_ids)
        self._wake.set()

    async def wait_synced(self, seq: int) -> None:
        """Wait until every event up to `seq` (current epoch) is in MongoDB."""
        while self._synced < seq:
            await self._progress.wait()

    def statistics(self) -> SyncStats:
        """A snapshot of the worker (see `SyncStats`)."""
        last = self.source.last_seq()
        state = self._state
        if state == "connected" and self._from_log_active:
            state = "degraded"
        return SyncStats(
            state=state, last_error=self._last_error, last_error_at=self._last_error_at,
            epoch=self._epoch, synced_seq=self._synced, last_seq=last,
            lag=max(0, last - self._synced), pending=len(self._pending),
            consecutive_failures=self._failures, retry_in=self._retry_in, **self._n)

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync until cancelled. Ready at once: MongoDB never delays the daemon's start.

        On cancellation, what is buffered and in order is flushed once (shielded, at most
        `flush_timeout` seconds, no retry) and the sink is closed.
        """
        task_status.started()
        try:
            await self._connect()
            while True:
                await self._step()
        finally:
            with trio.CancelScope(shield=True) as cs:
                cs.deadline = trio.current_time() + self.settings.flush_timeout
                await self._final_flush()
                with contextlib.suppress(Exception):
                    await self._call(self.sink.close)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        # abandon_on_cancel: a hung server must not hold up shutdown; the operation is
        # idempotent and bounded by the client's own timeouts, so leaving it is safe.
        return await self._run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=True)

    async def _connect(self) -> None:
        while True:
            try:
                await self._call(self.sink.ensure_schema)
                marker = await self._call(self.sink.read_marker)
            except Exception as e:
                await self._failed(e)
                continue
            self._marker = marker
            self._ok()
            log.info("MongoDB connected; synced up to %s", marker or "nothing yet")
            if self.settings.ttl_days > 0:
                self._next_retention = trio.current_time() + self.settings.retention_first
            return

    async def _step(self) -> None:
        self._sync_epoch()
        if trio.current_time() >= self._next_retention:
            await self._retention()
        self._trim()
        p, bs = self._pending, self.settings.batch_size
        if p and p[0].seq == self._synced + 1:
            if len(p) < bs:
                await self._gather()
                self._sync_epoch()
                self._trim()
                if not p or p[0].seq != self._synced + 1:
                    return
            await self._write(list(itertools.islice(p, bs)))
            return
        if self.source.last_seq() > self._synced:
            evs = self.source.events_since(self._synced)
            if evs is None or not evs or evs[0].seq != self._synced + 1:
                # The store no longer holds the next events: from the log, or skip them.
                hole_end = evs[0].seq - 1 if evs else self.source.first_seq() - 1
                await self._catch_up_from_log(max(hole_end, self._synced))
                return
            batch = list(evs[:bs])
            if await self._write(batch):
                self._n["from_memory"] += len(batch)
            return
        if self._dirty:
            await self._write([])
            return
        await self._idle()

    async def _gather(self) -> None:
        """Wait until a batch is full or its oldest event has waited `batch_interval`."""
        deadline = self._pending_since + self.settings.batch_interval
        while len(self._pending) < self.settings.batch_size:
            self._wake = trio.Event()
            with trio.move_on_at(deadline) as cs:
                await self._wake.wait()
            if cs.cancelled_caught:
                return

    async def _idle(self) -> None:
        self._wake = trio.Event()
        with trio.move_on_at(min(self._next_retention,
                                 trio.current_time() + self.settings.idle_poll)):
            await self._wake.wait()

    def _sync_epoch(self) -> None:
        """Follow the store's epoch: the marker's seq counts only in the marker's epoch."""
        cur = self.source.epoch()
        if cur == self._epoch:
            return
        m = self._marker
        self._synced = m.seq if m is not None and m.epoch == cur else 0
        if m is not None and m.epoch != cur:
            log.info("epoch %s is not the synced epoch %s: resyncing by event hash",
                     cur, m.epoch)
        if self._epoch is not None:
            for ev in self._pending:  # their seqs belong to the old epoch
                ev.source = None
            self._pending.clear()
        self._epoch = cur

    def _trim(self) -> None:
        p, synced = self._pending, self._synced
        while p and p[0].seq <= synced:
            p.popleft().source = None

    # ------------------------------------------------------------------ writing

    async def _write(self, batch: list[Event], *, retry: bool = True) -> bool:
        """Write one batch (and the dirty sessions); retry until done. False when the
        epoch changed meanwhile (the batch no longer means anything) or, without
        `retry`, when the attempt failed.

        A batch that keeps failing for another reason than reachability is written one
        event at a time, and a single event MongoDB keeps refusing is skipped (counted as
        `rejected`, logged with its seq): one bad document must not stop the sync.
        """
        epoch = self._epoch
        refused = 0
        while True:
            if self.source.epoch() != epoch or epoch is None:
                return False
            dirty = set(self._dirty)
            ws_ids = {e.ws_id for e in batch if e.ws_id is not None} | dirty
            try:
                docs = list(self.source.session_docs(ws_ids)) if ws_ids else []
            except Exception:
                log.exception("session_docs failed for %d sessions; events go on alone",
                              len(ws_ids))
                docs = []
            try:
                res, n_sessions = await self._call(write_batch, self.sink, batch, docs, ws_ids,
                                                   epoch, self._now())
            except Exception as e:
                if not retry:
                    self._note_failure(e)
                    return False
                refused = 0 if isinstance(e, SinkUnavailable) else refused + 1
                await self._failed(e)
                if refused >= _REFUSALS:
                    return await self._write_apart(batch, dirty, e)
                continue
            self._ok()
            n = self._n
            n["batches"] += 1
            n["inserted"] += res.inserted
            n["duplicates"] += res.duplicates
            n["stamped"] += res.stamped
            n["sessions"] += n_sessions
            self._dirty -= dirty
            if batch:
                self._synced = batch[-1].seq
                self._marker = SyncMarker(epoch, self._synced)
                self._trim()
                self._progress.set()
                self._progress = trio.Event()
            return True

    async def _write_apart(self, batch: list[Event], dirty: set[str], error: Exception) -> bool:
        if len(batch) > 1:
            log.warning("MongoDB keeps refusing a batch of %d events (%s): writing them "
                        "one by one", len(batch), error)
            for ev in batch:
                if ev.seq > self._synced and not await self._write([ev]):
                    return False
            return True
        if batch:
            log.error("MongoDB refuses event seq %d (%s): skipped", batch[0].seq, error)
            self._n["rejected"] += 1
            self._synced = batch[0].seq  # the next batch's marker records the skip
            self._trim()
        else:
            log.error("MongoDB refuses the documents of sessions %s (%s): skipped",
                      sorted(dirty), error)
        self._dirty -= dirty
        return True

    async def _catch_up_from_log(self, hole_end: int) -> None:
        """Fill the gap after the synced seq from the log; skip what it cannot give."""
        start = self._synced
        reread = self.source.reread
        if reread is not None:
            log.warning("MongoDB sync is behind what memory holds (synced seq %d): "
                        "re-reading the log", start)
            self._from_log_active = True
            try:
                async with contextlib.aclosing(reread(start)) as chunks:
                    async for chunk in chunks:
                        if not await self._write_chunk(chunk):
                            break
            except Exception:
                log.exception("re-reading the log for MongoDB failed")
            finally:
                self._from_log_active = False
        if self._synced > start:
            self._log_misses = 0
            return  # progress: the next step looks at memory again
        lost = hole_end - self._synced
        if lost <= 0:
            await self._idle()  # nothing to skip either: look again later
        elif reread is not None and self._log_misses < _LOG_MISSES:
            # The checkpoint the re-read counts from may just lag behind the store (it is
            # written every second or so): give it time before declaring events lost.
            self._log_misses += 1
            await trio.sleep(self.settings.idle_poll)
        else:
            self._log_misses = 0
            log.error("events %d..%d are neither in memory nor in the log: MongoDB will "
                      "not have them", self._synced + 1, hole_end)
            self._n["unrecoverable"] += lost
            self._synced = hole_end
            self._trim()

    async def _write_chunk(self, chunk: Sequence[Event]) -> bool:
        bs = self.settings.batch_size
        for i in range(0, len(chunk), bs):
            batch = [e for e in chunk[i:i + bs] if e.seq > self._synced]
            if batch:
                if not await self._write(batch):
                    return False
                self._n["from_log"] += len(batch)
        return True

    async def _final_flush(self) -> None:
        if self._state != "connected":
            return
        self._trim()
        p = self._pending
        bs = self.settings.batch_size
        while p and p[0].seq == self._synced + 1:
            if not await self._write(list(itertools.islice(p, bs)), retry=False):
                return

    # ------------------------------------------------------------------ retention

    async def _retention(self) -> None:
        s = self.settings
        try:
            res: RetentionResult = await self._call(
                expire, self.sink, self._now(), s.ttl_days, s.retention_sessions)
        except Exception as e:
            self._note_failure(e)
            self._next_retention = trio.current_time() + s.retention_first
            return
        self._ok()
        n = self._n
        n["retention_runs"] += 1
        n["expired_sessions"] += res.sessions
        n["expired_events"] += res.events
        if res.sessions or res.events:
            log.info("retention: removed %d work sessions and %d events older than %d days",
                     res.sessions, res.events, s.ttl_days)
        # A full page of sessions means more are waiting: come back soon.
        more = res.sessions >= s.retention_sessions
        self._next_retention = trio.current_time() + (
            s.batch_interval if more else s.retention_interval)

    # ------------------------------------------------------------------ health

    def _ok(self) -> None:
        if self._state in ("down", "degraded"):
            log.warning("MongoDB is back after %d failed attempts; %d events to catch up",
                        self._failures, max(0, self.source.last_seq() - self._synced))
        self._state = "connected"
        self._failures = 0
        self._retry_in = 0.0

    def _note_failure(self, e: Exception) -> None:
        self._n["errors"] += 1
        self._failures += 1
        down = isinstance(e, SinkUnavailable)
        msg = str(e) if down else f"{type(e).__name__}: {e}"
        state = "down" if down else "degraded"
        if state != self._state or msg != self._last_error:
            log.warning("MongoDB %s: %s (%d events behind)", state, msg,
                        max(0, self.source.last_seq() - self._synced),
                        exc_info=None if down else e)
        self._state = state
        self._last_error = msg
        self._last_error_at = time.time()

    async def _failed(self, e: Exception) -> None:
        self._note_failure(e)
        s = self.settings
        self._retry_in = backoff_delay(self._failures, s.backoff_initial, s.backoff_max,
                                       self._rng)
        await trio.sleep(self._retry_in)
