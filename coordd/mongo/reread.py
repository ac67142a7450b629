"""Re-reading the log for the MongoDB sync worker, when it fell further behind than memory.

`LogRereader(path, enricher, anchor)(from_seq)` yields, in batches and in log order, the
events after `from_seq` up to the anchor — the pipeline's checkpoint: "everything up to
`offset` in `file` is stored, the last event there has `seq`". Events are numbered the
way the pipeline numbers them: counting accepted events backwards from the anchor across
the live file and its rotated siblings (oldest first, `tailfile.list_siblings`), so a
re-read event gets the seq it had when it was first stored. (Even if a numbering ever
differed, MongoDB would not duplicate anything: it dedupes by event hash.)

Two passes over the files, both in worker threads, with bounded memory:

1. backwards from the anchor, file by file, record the start offset of every accepted
   line (8 bytes each) until enough events are counted to cover the gap;
2. forwards from the first wanted event, parse and enrich only the recorded lines.

The files stay open between the passes, so a rotation in between changes nothing. When
the anchor's file is gone (rotated away and deleted) nothing can be numbered: the re-read
yields nothing and the worker reports the gap as unrecoverable.

The enricher runs in another thread than the pipeline's: give the re-reader its own
`Enricher` (one thread at a time may call one).
"""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trio

from coordd.core.enrich import Enricher
from coordd.core.event import Event, parse_line
from coordd.tail.checkpoint import Checkpoint, matches
from coordd.tail.logfile import list_siblings

__all__ = ["LogRereader", "iter_lines"]

log = logging.getLogger(__name__)


def iter_lines(fd: int, start: int, end: int, *, max_line_bytes: int = 1 << 20,
               chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for each complete line of `fd` between `start` and `end`, without its
    newline. Lines longer than `max_line_bytes` are skipped, as the tailer skips them."""
    pos = start
    buf = b""
    buf_start = start
    skipping = False
    while pos < end:
        data = os.pread(fd, min(chunk, end - pos), pos)
        if not data:
            break
        pos += len(data)
        buf += data
        i = 0
        while True:
            nl = buf.find(b"\n", i)
            if nl < 0:
                break
            if skipping:
                skipping = False
            elif nl - i <= max_line_bytes:
                yield buf_start + i, buf[i:nl]
            i = nl + 1
        buf_start += i
        buf = buf[i:]
        if len(buf) > max_line_bytes:
            # Too long already: drop it and everything up to its newline.
            buf_start += len(buf)
            buf = b""
            skipping = True


@dataclass
class _File:
    path: Path
    fd: int
    end: int
    offsets: array[int] = field(default_factory=lambda: array("q"))


@dataclass
class _Plan:
    files: list[_File]  # oldest first, the anchor's file last
    first_seq: int  # seq of the first recorded offset
    skip: int  # recorded offsets to pass over before the first wanted event

    def close(self) -> None:
        for f in self.files:
            os.close(f.fd)
        self.files = []


class LogRereader:
    """The sync worker's `reread` callable for a log file; see the module docstring."""

    def __init__(self, path: Path, enricher: Enricher,
                 anchor: Callable[[], Checkpoint | None], *, read_rotated: bool = True,
                 max_line_bytes: int = 1 << 20, batch_size: int = 500,
                 limiter: trio.CapacityLimiter | None = None) -> None:
        """`anchor()`: the pipeline's current checkpoint (None when there is none, or when
        it belongs to another epoch than the store's)."""
        self.path = Path(path)
        self.enricher = enricher
        self.anchor = anchor
        self.read_rotated = read_rotated
        self.max_line_bytes = max_line_bytes
        self.batch_size = batch_size
        self._limiter = limiter or trio.CapacityLimiter(1)

    async def __call__(self, from_seq: int) -> AsyncGenerator[list[Event], None]:
        """The events after `from_seq` up to the anchor, in batches. Closing the generator
        early closes the files (between batches: a batch being read finishes first)."""
        plan = await trio.to_thread.run_sync(self.plan, from_seq, limiter=self._limiter)
        if plan is None:
            return
        try:
            batches = self.batches(plan)
            while True:
                batch = await trio.to_thread.run_sync(next, batches, None,
                                                      limiter=self._limiter)
                if batch is None:
                    return
                yield batch
        finally:
            plan.close()

    # ------------------------------------------------------------------ blocking parts

    def plan(self, from_seq: int) -> _Plan | None:
        """Pass 1 (blocking): open the files, find the anchor, count back over the gap."""
        cp = self.anchor()
        if cp is None or cp.seq <= from_seq:
            return None
        files = self._open_until_anchor(cp)
        if files is None:
            log.warning("cannot re-read the log: the checkpointed file is no longer there")
            return None
        gap = cp.seq - from_seq
        counted = 0
        first = len(files)
        for i in range(len(files) - 1, -1, -1):
            f = files[i]
            for off, raw in iter_lines(f.fd, 0, f.end, max_line_bytes=self.max_line_bytes):
                if self._accept(raw):
                    f.offsets.append(off)
            counted += len(f.offsets)
            first = i
            if counted >= gap:
                break
        for f in files[:first]:
            os.close(f.fd)
        needed = files[first:]
        first_seq = cp.seq - counted + 1
        skip = max(0, from_seq + 1 - first_seq)
        if counted < gap:
            log.warning("the log holds only %d of the %d events after seq %d", counted, gap,
                        from_seq)
        return _Plan(needed, first_seq, skip)

    def batches(self, plan: _Plan) -> Iterator[list[Event]]:
        """Pass 2 (blocking): the wanted events, numbered, `batch_size` at a time."""
        index = 0  # over all recorded offsets
        batch: list[Event] = []
        for f in plan.files:
            offsets = f.offsets
            if index + len(offsets) <= plan.skip:
                index += len(offsets)
                continue
            j = max(0, plan.skip - index)
            index += j
            if j >= len(offsets):
                continue
            for off, raw in iter_lines(f.fd, offsets[j], f.end,
                                       max_line_bytes=self.max_line_bytes):
                if j >= len(offsets):
                    break
                if off != offsets[j]:
                    continue  # a line pass 1 did not accept
                j += 1
                ev = self._event(raw, plan.first_seq + index)
                if ev is not None:
                    batch.append(ev)
                    if len(batch) >= self.batch_size:
                        yield batch
                        batch = []
                index += 1
        if batch:
            yield batch

    def _accept(self, raw: bytes) -> bool:
        """Whether the pipeline stores an event for the line (pass 1 counts those)."""
        parsed = parse_line(raw)
        return parsed.reason is None and self.enricher.enrich(parsed.value) is not None

    def _event(self, raw: bytes, seq: int) -> Event | None:
        """The line's event, numbered `seq`, as the pipeline built it (pass 2)."""
        parsed = parse_line(raw)
        return None if parsed.reason is not None else self.enricher.enrich_event(parsed.value, seq)

    def _open_until_anchor(self, cp: Checkpoint) -> list[_File] | None:
        """The live file and its siblings (oldest first) up to the anchor's, opened."""
        paths = [p for p, _ in list_siblings(self.path)] if self.read_rotated else []
        paths.append(self.path)
        opened: list[_File] = []
        seen: set[tuple[int, int]] = set()
        for p in paths:
            try:
                fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in seen:
                os.close(fd)
                continue
            seen.add((st.st_dev, st.st_ino))
            if (st.st_dev, st.st_ino) == (cp.file.dev, cp.file.ino) and matches(cp.file, fd, st):
                opened.append(_File(p, fd, min(cp.offset, st.st_size)))
                return opened
            opened.append(_File(p, fd, st.st_size))
        for f in opened:
            os.close(f.fd)
        return None
