"""A live synthetic coordination log, for `coordd demo`.

`run_demo(path)` appends realistic events (`coordd.synth.engine.stream`) to `path` at about
`rate` events per second, stamped with the current time, so the daemon tailing the file
shows ACTIVE work sessions. Like the gateway's writer it appends whole lines,
and, if asked, rotates by renaming the file to `coordination-events-<ISO>.ndjson`.

At start it writes a few minutes of recent history in one go (the stream's warm-up, with
timestamps in the past), so the picture is in its steady state from the first request
instead of ramping up while the first sessions begin.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Final

import trio

from coordd.core.jsvalues import iso_ms
from coordd.synth.engine import EVENTS_PER_SESSION, render, stream

__all__ = ["console_url", "rotated_name", "run_demo"]

log = logging.getLogger(__name__)

#: Average number of work sessions running at once in the demo: at 20 events/s a
#: 30-event session then lasts about a minute.
DEMO_CONCURRENCY: Final = 40.0
#: Warm-up, in mean session durations (long sessions last much longer), written at once
#: as recent history.
WARMUP_SESSIONS: Final = 6.0
#: Lines written per write() at most while catching up, between checkpoints.
MAX_BATCH: Final = 512


def console_url(base: str, base_path: str = "") -> str:
    """The web console's address on the daemon at `base` (`http://127.0.0.1:3847`)."""
    return f"{base.rstrip('/')}{base_path.rstrip('/')}/ui/"


def rotated_name(path: Path, now_ms: int) -> Path:
    """Where a size rotation at `now_ms` moves `path`, as the gateway names it.

    `coordination-events.ndjson` → `coordination-events-2026-02-17T12-34-56-789Z.ndjson`;
    if that name is taken (two rotations in one millisecond), the next free millisecond.
    """
    while True:
        stamp = iso_ms(now_ms).replace(":", "-").replace(".", "-")
        target = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
        if not target.exists():
            return target
        now_ms += 1


class _Appender:
    """The log file, opened for appending; counts lines and rotates every N lines.

    Its methods are synchronous on purpose: appending a few KiB to a local file lands in
    the page cache in microseconds, far less than a thread hop per batch would cost.
    """

    def __init__(self, path: Path, rotate_every: int | None) -> None:
        self.path = path
        self.rotate_every = rotate_every
        self.lines = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, batch: list[bytes]) -> None:
        """Append complete lines, rotating first whenever `rotate_every` lines are in."""
        start = 0
        while start < len(batch):
            chunk = batch[start:]
            if self.rotate_every is not None:
                if self.lines >= self.rotate_every:
                    self.rotate()
                chunk = chunk[: self.rotate_every - self.lines]
            view = memoryview(b"".join(chunk))
            while view:
                view = view[os.write(self.fd, view):]
            self.lines += len(chunk)
            start += len(chunk)

    def rotate(self) -> None:
        """Rename the file away and start a fresh one, as the gateway's size rotation does."""
        target = rotated_name(self.path, int(time.time() * 1000))
        os.close(self.fd)
        os.rename(self.path, target)
        self.fd = self._open()
        self.lines = 0
        log.info("demo log rotated to %s", target.name)

    def close(self) -> None:
        os.close(self.fd)


async def run_demo(path: Path, *, rate: float = 20.0, seed: int | None = None,
                   rotate_every: int | None = None, concurrency: float = DEMO_CONCURRENCY,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Append generated events to `path` at about `rate` per second until cancelled.

    Events are written in the small bursts a real gateway produces (a spawn and its send
    in the same millisecond, a reply a few seconds after its send); each carries the
    current wall-clock time, or a slightly earlier one when it is written late. Reports
    `started()` after the first write. `rotate_every` rotates the file after that many
    lines. Cancellation stops it between writes; the file holds only complete lines.
    """
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of events per second, not {rate}")
    if rotate_every is not None and rotate_every < 1:
        raise ValueError(f"rotate_every must be >= 1, not {rotate_every}")
    if seed is None:
        seed = random.SystemRandom().getrandbits(64)
    warmup = WARMUP_SESSIONS * concurrency * EVENTS_PER_SESSION / rate
    log.info("demo: writing ~%.1f events/s to %s (seed %d, %.0f s of history first)",
             rate, path, seed, warmup)
    out = _Appender(Path(path), rotate_every)
    try:
        origin = trio.current_time() - warmup  # stream time 0, on the trio clock
        batch: list[bytes] = []
        started = False
        for item in stream(seed=seed, rate=rate, concurrency=concurrency):
            due = origin + item[0] / 1000.0
            now = trio.current_time()
            if due > now or len(batch) >= MAX_BATCH:
                if batch:
                    out.write(batch)
                    batch.clear()
                    if not started:
                        task_status.started()
                        started = True
                if due > now:
                    await trio.sleep_until(due)
                    now = trio.current_time()
                else:
                    await trio.lowlevel.checkpoint()
            late_ms = max(0.0, now - due) * 1000.0
            batch.append(render(item, int(time.time() * 1000.0 - late_ms)))
    finally:
        out.close()
