"""The loss-free log tailer: complete lines from the event log, across rotations and restarts.

One trio task does every read (so reads never overlap and duplicate events), woken by an
inotify watch on the log's directory (no thread, no debounce) or, at the latest, by a
periodic stat poll that is the safety net for missed events and the only mechanism in
poll mode (NFS/SMB). When inotify is
unavailable or its queue overflows, the tailer falls back to polling, logs it and counts it.

What it guarantees:

* Complete lines only. A partial last line stays buffered until its newline arrives; the
  offset handed on (`LineBatch.end_offset`) is always just past a complete line.
* Nothing lost, nothing twice, across rename rotation (the old file is drained through the
  descriptor still open, then the new one is read from 0, and late writes to the renamed
  file are still picked up for a grace period), copytruncate and truncation (the new content
  is read from 0, nothing already handed on is repeated), and delete + recreate.
* A cold start reads the rotated siblings oldest first, then the live file, bounded to the
  newest `history_limit` lines (found by reading backwards, so older files are skipped
  without being read). With a checkpoint, lines at or before the checkpoint's position are
  `history=True`, the rest `history=False`, even when the log rotated while we were down.

The tailer neither parses lines nor numbers them: the pipeline does both, and saves the
checkpoint once the store has taken a batch.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from coordd.core.pacing import RateLimitedLog
from coordd.tail import inotify
from coordd.tail.checkpoint import Checkpoint, FileId, fingerprint
from coordd.tail.logfile import (
    REPLACED,
    SAME,
    SHRUNK,
    LogFile,
    candidates,
    history_start,
    list_siblings,
    open_log,
    resume_position,
    sibling_pattern,
)

__all__ = ["NO_FILE", "LineBatch", "Tailer", "TailerStats"]

log = logging.getLogger(__name__)

#: The `file` of a batch that comes from no file: the `caught_up` marker sent when nothing
#: was on disk at start. It matches no real file, so a checkpoint of it resumes nothing.
NO_FILE: Final = FileId(0, 0, 0, fingerprint(b""))
#: How long a rotated-away file is kept open after its last growth, to catch the writes
#: its writer still had buffered when it renamed the file.
RETIRE_GRACE: Final = 5.0
_LOG_EVERY: Final = 60.0  # seconds between repeated warnings of one kind


@dataclass(slots=True)
class LineBatch:
    """Complete lines from one read of one file."""

    lines: list[bytes]  # newline removed; a trailing b"\r" is left for the parser
    file: FileId  # the file the lines came from
    end_offset: int  # just past the last complete line of this batch in that file
    history: bool  # at or before the checkpoint position (handed on in an earlier run)
    caught_up: bool = False  # completes the initial read of everything on disk; once per run
    path: Path | None = None  # the file's path when it was read (for warnings about a line)


@dataclass(frozen=True, slots=True)
class TailerStats:
    """A snapshot of the tailer for /metrics, `--check` and the watchdog."""

    mode: str  # "inotify" | "poll"
    waiting_for: str | None  # "file" or "directory" while the log is missing
    path: str
    file: FileId | None
    offset: int
    size: int
    lag_bytes: int
    bytes_read: int
    lines: int
    skipped: dict[str, int] = field(default_factory=dict)
    rotations: int = 0
    truncations: int = 0
    inotify_fallbacks: int = 0
    # trio.current_time() of the last check of the file or batch handed on (a long cold
    # read counts as progress; a tailer blocked on a full channel does not).
    last_progress: float = 0.0


class Tailer:
    """Follows one NDJSON log file and hands on its complete lines as `LineBatch`es.

    `read_size` bounds one read (and so one batch's bytes). 256 KiB measured fastest for
    cold reads (bench/bench_tailer.py): larger reads make batches whose lines no longer fit
    the CPU caches by the time they are consumed and freed; smaller ones cost more
    task switches per line.
    """

    def __init__(self, path: Path, *, checkpoint: Checkpoint | None = None,
                 poll_interval: float = 1.0, watch: str = "auto",
                 max_line_bytes: int = 1 << 20, read_rotated: bool = True,
                 history_limit: int = 100_000, read_size: int = 1 << 18) -> None:
        if watch not in ("auto", "inotify", "poll"):
            raise ValueError(f"watch must be 'auto', 'inotify' or 'poll', not {watch!r}")
        if poll_interval <= 0 or max_line_bytes <= 0 or read_size <= 0 or history_limit < 0:
            raise ValueError("poll_interval, max_line_bytes and read_size must be positive "
                             "and history_limit not negative")
        self.path = Path(path)
        self.checkpoint = checkpoint
        self.watch = watch
        self.max_line_bytes = max_line_bytes
        self.read_rotated = read_rotated
        self.history_limit = history_limit
        self.read_size = read_size
        self.resumed = False
        self._poll_interval = poll_interval
        self._mode = "poll"
        self._watch: inotify.DirWatch | None = None
        self._wait_scope: trio.CancelScope | None = None
        self._wait_start = 0.0
        self._current: LogFile | None = None
        self._retired: list[LogFile] = []
        self._known: set[tuple[int, int]] = set()  # (dev, ino) of every log file met
        self._initial = True
        self._pending: LineBatch | None = None
        self._waiting_for: str | None = None
        self._bytes_read = 0
        self._lines = 0
        self._skipped: dict[str, int] = {}
        self._rotations = 0
        self._truncations = 0
        self._fallbacks = 0
        self._last_progress = 0.0
        self._ratelog = RateLimitedLog(log, _LOG_EVERY)

    # ------------------------------------------------------------------ public

    async def run(self, send: trio.MemorySendChannel[LineBatch], *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tail the log until cancelled, sending batches on `send` (closed on return).

        Reports started once the watch is set up, before the initial read. Waiting on a
        full channel is fine: nothing is read meanwhile, so nothing is lost. Cancellation
        stops at the next checkpoint; a batch being sent then is not delivered, and the
        pipeline's checkpoint (which only covers delivered batches) stays correct.
        """
        async with send:
            try:
                self._setup_watch()
                task_status.started()
                await self._initial_read(send)
                while True:
                    await self._wait()
                    await self._check(send)
            finally:
                self._close_all()

    def set_poll_interval(self, seconds: float) -> None:
        """Change the poll interval; a wait in progress is shortened or extended at once."""
        if seconds <= 0:
            raise ValueError("poll interval must be positive")
        self._poll_interval = seconds
        if self._wait_scope is not None:
            self._wait_scope.deadline = self._wait_start + seconds

    def statistics(self) -> TailerStats:
        """A snapshot of position, lag and counters."""
        cur = self._current
        size = cur.size if cur else 0
        offset = cur.offset if cur else 0
        return TailerStats(
            mode=self._mode, waiting_for=self._waiting_for, path=str(self.path),
            file=cur.fid if cur else None, offset=offset, size=size,
            lag_bytes=max(0, size - offset), bytes_read=self._bytes_read, lines=self._lines,
            skipped=dict(self._skipped), rotations=self._rotations,
            truncations=self._truncations, inotify_fallbacks=self._fallbacks,
            last_progress=self._last_progress)

    # ------------------------------------------------------------------ watching

    def _setup_watch(self) -> None:
        if self.watch == "poll":
            return
        prefix, suffix = sibling_pattern(self.path)
        try:
            self._watch = inotify.open_dir_watch(
                self.path.parent, names=frozenset({self.path.name}), prefix=prefix,
                suffix=suffix)
        except OSError as exc:
            if self.watch == "inotify":
                raise
            self._fall_back(f"inotify is unavailable ({exc})")
            return
        self._mode = "inotify"
        self._watch.try_add()

    def _fall_back(self, why: str) -> None:
        log.warning("%s: polling %s every %.3g s instead", why, self.path, self._poll_interval)
        self._fallbacks += 1
        self._mode = "poll"
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    async def _wait(self) -> None:
        """Wait for a relevant inotify event or the poll interval, whichever comes first."""
        w = self._watch
        if w is not None and not w.watching and w.try_add():
            # The directory (re)appeared: look at it right away, events before the watch
            # existed were never queued.
            await trio.lowlevel.checkpoint()
            return
        self._wait_start = trio.current_time()
        with trio.move_on_at(self._wait_start + self._poll_interval) as scope:
            self._wait_scope = scope
            if w is None or not w.watching:
                await trio.sleep_forever()
            else:
                await self._wait_for_events(w)
        self._wait_scope = None

    async def _wait_for_events(self, w: inotify.DirWatch) -> None:
        """Return on the first relevant inotify event; others are dropped on the spot."""
        while True:
            await trio.lowlevel.wait_readable(w.fileno())
            events = w.read_events()
            if events.overflow:
                self._fall_back("the inotify queue overflowed")
                return
            if events.relevant or events.dir_gone:
                return

    # ------------------------------------------------------------------ reading

    async def _initial_read(self, send: trio.MemorySendChannel[LineBatch]) -> None:
        """Read what is on disk: the history window, then everything newer, then caught_up."""
        self._last_progress = trio.current_time()
        cands = candidates(self.path)
        self._known = {(c.st.st_dev, c.st.st_ino) for c in cands}
        cp = self.checkpoint
        try:
            pos_idx, pos_off = resume_position(cands, cp)
            self.resumed = pos_off is not None
            if cp is not None and not self.resumed:
                log.info("the checkpointed file is no longer there: reading %s as history",
                         self.path)
            start_idx, start_off = history_start(
                cands, pos_idx, pos_off, read_rotated=self.read_rotated,
                history_limit=self.history_limit, chunk=self.read_size)
            newest_sibling = len(cands) - (2 if cands and cands[-1].live else 1)
            last: LogFile | None = None
            for i in range(start_idx, len(cands)):
                lf = cands[i].open()
                if lf is None:
                    continue
                cands[i].lf = None  # owned by the tailer from here (closed by _close_all)
                if i == start_idx:
                    lf.seek(start_off)
                if cp is None or not self.resumed or i < pos_idx:
                    lf.hist_end = math.inf
                else:
                    lf.hist_end = cp.offset if i == pos_idx else 0
                if cands[i].live:
                    self._current = lf
                else:
                    lf.last_growth = trio.current_time()
                    self._retired.append(lf)
                await self._drain(lf, send)
                if not cands[i].live and i != newest_sibling:
                    # Only the newest sibling can still receive its writer's buffered lines.
                    self._retired.remove(lf)
                    self._close_file(lf)
                last = lf
        finally:
            for c in cands:
                if c.lf is not None:
                    c.lf.close()
        self._initial = False
        for lf in (*self._retired, *([self._current] if self._current else [])):
            lf.hist_end = min(lf.hist_end, lf.offset)
        batch, self._pending = self._pending, None
        if batch is None:
            batch = LineBatch([], last.fid if last else NO_FILE, last.offset if last else 0,
                              history=last is None or last.offset <= last.hist_end)
        batch.caught_up = True
        await self._send(send, batch)
        if self._current is None:
            self._note_missing()

    async def _check(self, send: trio.MemorySendChannel[LineBatch]) -> None:
        """Look at the log once: rotation, truncation, new bytes; then the retired files."""
        now = trio.current_time()
        self._last_progress = now
        try:
            await self._check_files(send, now)
        except OSError as exc:
            self._ratelog.warning("io", "reading %s failed: %s (retrying)", self.path, exc)

    async def _check_files(self, send: trio.MemorySendChannel[LineBatch], now: float) -> None:
        for lf in list(self._retired):
            if await self._drain(lf, send):
                lf.last_growth = now
            elif now - lf.last_growth >= RETIRE_GRACE:
                self._retired.remove(lf)
                self._close_file(lf)
        try:
            st: os.stat_result | None = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        cur = self._current
        if cur is not None:
            if st is None or not cur.same_inode(st):
                # Renamed away or deleted: what its writer still appends reaches us through
                # the descriptor we hold.
                await self._drain(cur, send)
                log.info("%s was %s: following the new file", self.path,
                         "removed" if st is None else "replaced (rotation)")
                self._rotations += 1
                cur.last_growth = now
                self._retired.append(cur)
                self._current = None
            else:
                verdict = cur.check()
                if verdict != SAME:
                    self._learn_siblings()
                if verdict == REPLACED:
                    self._truncations += 1
                    if cur.restart():
                        self._skip("truncated")
                    log.warning("%s was truncated or rewritten in place: reading it from 0",
                                self.path)
                elif verdict == SHRUNK:
                    self._truncations += 1
                    if cur.cut():
                        log.warning("%s was cut in place to %d bytes, below any line end we "
                                    "know: reading it again from 0", self.path, cur.size)
                    else:
                        log.warning("%s was cut in place to %d bytes: continuing at offset %d",
                                    self.path, cur.size, cur.offset)
                await self._drain(cur, send)
        if self._current is None:
            # Open the new live file before looking for missed rotations: any file that was
            # live before it is a sibling by now, and none can slip between the two looks
            # (the sends below may let the writer rotate again).
            new = open_log(self.path) if st is not None else None
            if new is not None:
                self._known.add((new.dev, new.ino))
                self._current = new
            await self._adopt_missed(send, now)
            if new is not None:
                if self._waiting_for is not None:
                    log.info("%s appeared: following it", self.path)
                self._waiting_for = None
                await self._drain(new, send)
        if self._current is None:
            self._note_missing()

    async def _adopt_missed(self, send: trio.MemorySendChannel[LineBatch], now: float) -> None:
        """Read the rotated files we never saw as the live file, before the new live one.

        When the log rotates more than once between two looks (a burst, or the tailer
        held up by backpressure or a long cold read), the files in between exist only as
        siblings we have not met: every sibling not known yet is one of them.
        """
        for p, st in list_siblings(self.path):
            if (st.st_dev, st.st_ino) in self._known:
                continue
            lf = open_log(p, expect=st)  # an OSError leaves it unknown: retried next time
            self._known.add((st.st_dev, st.st_ino))
            if lf is None:
                continue
            log.info("%s rotated more than once since the last look: reading %s", self.path, p)
            lf.last_growth = now
            self._retired.append(lf)
            await self._drain(lf, send)

    def _learn_siblings(self) -> None:
        """Take every current sibling as known (after a copytruncate made a copy of lines
        already handed on, which must not be read as a missed rotation later)."""
        self._known.update((st.st_dev, st.st_ino) for _, st in list_siblings(self.path))

    async def _drain(self, lf: LogFile, send: trio.MemorySendChannel[LineBatch]) -> bool:
        """Read `lf` to its end, sending each read's lines; True when it had new bytes."""
        grew = False
        while True:
            res = lf.read(self.read_size, self.max_line_bytes)
            if res.nbytes:
                grew = True
                self._bytes_read += res.nbytes
            if res.too_long:
                self._skip("too_long", res.too_long)
                self._ratelog.warning("too_long", "skipped a line longer than %d bytes in %s",
                           self.max_line_bytes, lf.path)
            if res.lines:
                batch: LineBatch | None = LineBatch(res.lines, lf.fid, lf.offset,
                                                    history=lf.read_pos <= lf.hist_end,
                                                    path=lf.path)
                if self._initial:
                    # Held back so the last batch of the initial read can carry caught_up.
                    batch, self._pending = self._pending, batch
                if batch is not None:
                    await self._send(send, batch)
                    self._last_progress = trio.current_time()
                    if res.eof:
                        return grew
                    continue
            if res.eof:
                return grew
            # Nothing sent (a long line being skipped, a held-back batch): yield anyway,
            # so a huge file without newlines cannot stall the event loop.
            await trio.lowlevel.checkpoint()

    async def _send(self, send: trio.MemorySendChannel[LineBatch], batch: LineBatch) -> None:
        await send.send(batch)
        self._lines += len(batch.lines)

    # ------------------------------------------------------------------ bookkeeping

    def _note_missing(self) -> None:
        what = "file" if self.path.parent.is_dir() else "directory"
        if what != self._waiting_for:
            log.info("waiting for the %s %s to appear", what,
                     self.path if what == "file" else self.path.parent)
            self._waiting_for = what

    def _skip(self, reason: str, n: int = 1) -> None:
        self._skipped[reason] = self._skipped.get(reason, 0) + n

    def _close_file(self, lf: LogFile) -> None:
        if lf.read_pos > lf.offset:
            self._skip("incomplete")
            log.warning("%s ended with an incomplete line (%d bytes): skipped",
                        lf.path, lf.read_pos - lf.offset)
        lf.close()

    def _close_all(self) -> None:
        for lf in (*self._retired, *([self._current] if self._current else [])):
            lf.close()
        if self._pending is not None:
            self._pending = None
        self._retired.clear()
        self._current = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
