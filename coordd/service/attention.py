"""The attention tracker in the running daemon: fed by every stored batch and by a timer.

`AttentionRunner.listener` is a pipeline (or follower) listener: it hands each batch to
the tracker (`coordd.core.attention.Attention`) and the changes it causes to the hub,
which pushes them (`attention`, `work_session_status`). `run` is the clock: a task that
sleeps until the tracker's next deadline (an overdue reply, a session falling silent or
being archived) — or until a new batch may have moved it — and applies it, so that a
change caused only by time is pushed the moment its boundary passes (to the timer's
resolution: trio's clock, well under a millisecond, plus the event loop's latency).

The history is not replayed through the hub: `prime()` — called once the history is
stored (the log, the snapshot or MongoDB), before any live batch counts — builds the
tracker's state from the store in one pass, with nothing pushed; until then the listener
ignores batches (prime reads them from the store). A follower's new epoch starts a fresh
tracker (`reset`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence

import trio

from coordd.config import AttentionConfig
from coordd.core.attention import Attention, Change
from coordd.core.event import Event

__all__ = ["AttentionRunner"]

log = logging.getLogger(__name__)


def _wall_ms() -> float:
    return time.time() * 1000.0


class AttentionRunner:
    """Owns the tracker; runs on the event loop."""

    def __init__(self, config: AttentionConfig, publish: Callable[[Sequence[Change]], None],
                 *, clock_ms: Callable[[], float] = _wall_ms) -> None:
        self.config = config
        self._publish = publish
        self._clock = clock_ms
        self.tracker = self._new_tracker()
        self._primed = False
        self._wake = trio.Event()
        self.ticks = 0

    def _new_tracker(self) -> Attention:
        cfg = self.config
        return Attention(reply_timeout_ms=cfg.reply_timeout * 1000,
                         silent_after_ms=cfg.silent_after * 1000,
                         closed_kept=cfg.closed_kept)

    def now_ms(self) -> float:
        return self._clock()

    def prime(self, events: Iterable[Event]) -> int:
        """Build the state from the stored history (seq order); nothing is pushed.
        Returns how many events it read. Starts from a fresh tracker, so that events a
        listener already counted (a follower's load after `reset`) are not counted twice."""
        tracker = self.tracker = self._new_tracker()
        count = 0
        started = time.perf_counter()
        for ev in events:
            tracker.observe(ev, -math.inf)
            count += 1
        tracker.tick(self._clock())
        self._primed = True
        self._wake.set()
        open_now = tracker.statistics()
        log.info("attention: %d events read in %.2f s, open %s", count,
                 time.perf_counter() - started,
                 ", ".join(f"{k} {n}" for k, n in open_now.items()))
        return count

    def reset(self) -> None:
        """A new sequence space (a follower's new epoch): start from nothing, live."""
        self.tracker = self._new_tracker()
        self._primed = True
        self._wake.set()

    def listener(self, events: Sequence[Event]) -> None:
        """A pipeline listener: account for a stored batch and push what it changed."""
        if not self._primed:
            return  # the history: `prime` reads it from the store
        now = self._clock()
        tracker = self.tracker
        changes: list[Change] = []
        for ev in events:
            changes.extend(tracker.observe(ev, now))
        if changes:
            self._publish(changes)
        self._wake.set()  # a new deadline may be earlier than the one slept for

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The clock: apply each deadline when it comes; runs until cancelled."""
        task_status.started()
        while True:
            deadline = self.tracker.next_deadline() if self._primed else None
            delay = math.inf if deadline is None else max(0.0, (deadline - self._clock()) / 1000)
            with trio.move_on_after(delay):
                await self._wake.wait()
            self._wake = trio.Event()
            if not self._primed:
                continue
            changes = self.tracker.tick(self._clock())
            self.ticks += 1
            if changes:
                self._publish(changes)
