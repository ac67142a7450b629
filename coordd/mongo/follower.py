"""Follower mode: the in-memory store fed from MongoDB instead of the log.

A follower has no access to the log: no tailer, no checkpoint, no sync worker. It reads
what the tailing instance wrote — the sync marker `(epoch, seq)` and the event documents —
and feeds the same `Store` and the same listeners (the WebSocket hub) the pipeline feeds
on a tailing instance, so REST and `/ws` answer alike: same events, same seqs, same epoch.

* Start: the newest `max_events` events of the marker's epoch up to its seq (bounded by
  `start_timeout`; when MongoDB does not answer, the follower reports ready with an empty
  store and keeps trying, visible in `statistics()` and `/api/health`).
* Following: whenever the marker moved, the events after the store's last seq up to the
  marker, in seq order, `batch_size` at a time. The sync worker writes the marker after
  the events it covers, so what a follower reads up to it is complete. It learns that the
  marker moved from a change stream on the marker's collection where the server offers
  one (a replica set or a sharded cluster), and by polling every `poll_interval`
  otherwise (a standalone server); with a change stream it still looks every
  `safety_poll` seconds.
* A new epoch (the tailing instance started a new sequence space): the follower builds a
  new store for it (`replace_store`) and loads it like at start; the hub then tells its
  WebSocket clients to resync, as it does on a tailing instance.
* MongoDB failing: exponential back-off with jitter; what the store holds is still served.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import trio

from coordd.core.event import Event
from coordd.core.pacing import backoff_delay
from coordd.core.store import Store
from coordd.errors import SinkUnavailable
from coordd.mongo.load import events_after, latest_events
from coordd.mongo.schema import MARKER_ID, META
from coordd.mongo.sink import PymongoSink, SyncMarker
from coordd.tail.pipeline import Listener

__all__ = ["Follower", "FollowerStats"]

log = logging.getLogger(__name__)

#: How long one wait on the change stream lasts in its thread (milliseconds).
_AWAIT_MS: Final = 1000


@dataclass(frozen=True, slots=True)
class FollowerStats:
    """A snapshot for `/api/health` and `/metrics`. `state`: `connecting`, `connected`
    or `down`; `lag` = the marker's seq − the store's last seq."""

    state: str
    last_error: str | None
    epoch: str | None
    marker_seq: int
    last_seq: int
    lag: int
    batches: int
    events: int
    reloads: int
    change_stream: bool


class Follower:
    """Feeds a store from MongoDB; see the module docstring."""

    def __init__(self, sink: PymongoSink, store: Callable[[], Store],
                 replace_store: Callable[[str], Store], listeners: Sequence[Listener] = (),
                 *, max_events: int = 100_000, poll_interval: float = 0.5,
                 safety_poll: float = 5.0, batch_size: int = 1000,
                 start_timeout: float = 10.0, backoff_initial: float = 0.25,
                 backoff_max: float = 30.0, change_streams: bool = True,
                 limiter: trio.CapacityLimiter | None = None,
                 rng: random.Random | None = None,
                 run_sync: Callable[..., Any] | None = None) -> None:
        """`store()`: the current store; `replace_store(epoch)`: a new, empty store for
        another epoch, installed wherever the daemon reads it (and returned). `run_sync`
        replaces `trio.to_thread.run_sync` for the reads (tests run a fake inline)."""
        self.sink = sink
        self._store = store
        self._replace = replace_store
        self.listeners = list(listeners)
        self.max_events = max_events
        self.poll_interval = poll_interval
        self.safety_poll = safety_poll
        self.batch_size = batch_size
        self.start_timeout = start_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.change_streams = change_streams
        self._limiter = limiter or trio.CapacityLimiter(2)
        self._rng = rng or random.Random()
        self._run_sync = run_sync or trio.to_thread.run_sync
        self._wake = trio.Event()
        self._streaming = False
        self._state = "connecting"
        self._last_error: str | None = None
        self._failures = 0
        self._marker: SyncMarker | None = None
        self._n = {"batches": 0, "events": 0, "reloads": 0}

    def statistics(self) -> FollowerStats:
        """A snapshot (see `FollowerStats`)."""
        store = self._store()
        m = self._marker
        marker_seq = m.seq if m is not None and m.epoch == store.epoch else store.last_seq
        return FollowerStats(
            state=self._state, last_error=self._last_error,
            epoch=m.epoch if m is not None else None, marker_seq=marker_seq,
            last_seq=store.last_seq, lag=max(0, marker_seq - store.last_seq),
            batches=self._n["batches"], events=self._n["events"],
            reloads=self._n["reloads"], change_stream=self._streaming)

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow until cancelled. Ready once the first load is done, or after
        `start_timeout` seconds without MongoDB (the store is then empty)."""
        with trio.move_on_after(self.start_timeout):
            while self._state != "connected":
                if not await self._attempt():
                    await self._back_off()
        if self._state != "connected":
            log.warning("follower: no answer from MongoDB within %.1f s: serving an empty "
                        "store until it answers", self.start_timeout)
        task_status.started()
        async with trio.open_nursery() as nursery:
            if self.change_streams:
                nursery.start_soon(self._watch)
            while True:
                await self._wait()
                if not await self._attempt():
                    await self._back_off()

    async def _attempt(self) -> bool:
        try:
            await self.step()
        except Exception as e:
            self._failed(e)
            return False
        if self._state != "connected":
            log.info("follower: following MongoDB (epoch %s, seq %d)",
                     self._store().epoch, self._store().last_seq)
        self._state = "connected"
        self._failures = 0
        return True

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=True)

    async def step(self) -> None:
        """Read the marker once and bring the store up to it (raises on MongoDB errors)."""
        marker: SyncMarker | None = await self._call(self.sink.read_marker)
        self._marker = marker
        if marker is None:
            return  # nothing synced yet
        store = self._store()
        if marker.epoch != store.epoch:
            await self._load_epoch(store, marker)
            return
        db = await self._call(self.sink.db)
        while store.last_seq < marker.seq:
            evs: list[Event] = await self._call(
                lambda: events_after(db, marker.epoch, store.last_seq, upto=marker.seq,
                                     limit=self.batch_size,
                                     categories=store.overrides.categories))
            if not evs:
                store.last_seq = marker.seq  # a gap MongoDB does not hold: go on after it
                break
            self._feed(store, evs)

    async def _load_epoch(self, store: Store, marker: SyncMarker) -> None:
        db = await self._call(self.sink.db)
        evs: list[Event] = await self._call(
            lambda: latest_events(db, marker.epoch, upto=marker.seq, limit=self.max_events,
                                  categories=store.overrides.categories))
        if len(store) or store.last_seq:
            log.warning("follower: epoch changed from %s to %s: reloading", store.epoch,
                        marker.epoch)
            store = self._replace(marker.epoch)
            self._n["reloads"] += 1
        else:
            store.epoch = marker.epoch
        if evs:
            self._feed(store, evs)
        store.last_seq = max(store.last_seq, marker.seq)
        log.info("follower: %d events of epoch %s loaded (last seq %d)", len(evs),
                 marker.epoch, store.last_seq)

    def _feed(self, store: Store, evs: list[Event]) -> None:
        """Store a batch and hand it to the listeners, as the pipeline does."""
        store.extend(evs)
        self._n["batches"] += 1
        self._n["events"] += len(evs)
        for listener in self.listeners:
            try:
                listener(evs)
            except Exception:
                log.exception("listener %r failed on a batch of %d events", listener, len(evs))

    # ------------------------------------------------------------------ waiting

    async def _wait(self) -> None:
        self._wake = trio.Event()
        with trio.move_on_after(self.safety_poll if self._streaming else self.poll_interval):
            await self._wake.wait()

    async def _back_off(self) -> None:
        await trio.sleep(backoff_delay(self._failures, self.backoff_initial, self.backoff_max,
                                       self._rng))

    def _failed(self, e: Exception) -> None:
        self._failures += 1
        msg = str(e) if self._state == "connecting" else f"{type(e).__name__}: {e}"
        if self._state != "down" or msg != self._last_error:
            log.warning("follower: MongoDB failed: %s", msg)
        self._state = "down"
        self._last_error = msg

    async def _watch(self) -> None:
        """Wake the loop whenever the marker changes, while a change stream is to be had:
        a server without them (standalone) is polled; a lost connection is retried."""
        while True:
            try:
                stream = await self._call(lambda: self.sink.db()[META].watch(
                    [{"$match": {"documentKey._id": MARKER_ID}}], max_await_time_ms=_AWAIT_MS))
            except Exception as e:
                if not _transient(e):
                    log.info("follower: no change streams (%s): polling every %.3g s",
                             str(e).split(", full error")[0], self.poll_interval)
                    return
                await trio.sleep(self.safety_poll)
                continue
            self._streaming = True
            log.info("follower: following the sync marker's change stream")
            try:
                while True:
                    # Its own thread, outside the limiter: it waits most of the time.
                    change = await trio.to_thread.run_sync(stream.try_next,
                                                           abandon_on_cancel=True)
                    if change is not None:
                        self._wake.set()
            except Exception as e:
                log.warning("follower: the change stream failed (%s): polling every %.3g s "
                            "until it is back", e, self.poll_interval)
            finally:
                self._streaming = False
                with contextlib.suppress(Exception):
                    await trio.to_thread.run_sync(stream.close, abandon_on_cancel=True)
            await trio.sleep(self.safety_poll)


def _transient(e: BaseException) -> bool:
    """Whether a failure to open a change stream may pass (the server unreachable), as
    opposed to a server (or a fake) that has none."""
    if isinstance(e, SinkUnavailable):
        return True
    try:
        from pymongo.errors import ConnectionFailure
    except ImportError:  # pragma: no cover - pymongo is a dependency
        return False
    return isinstance(e, ConnectionFailure) or bool(getattr(e, "timeout", False))
