"""From complete lines to stored events: parse, enrich, number, store, publish, checkpoint.

The tailer hands on `LineBatch`es; this component turns each into `Event` records off the
event-loop thread (so a slow classifier plugin cannot stall HTTP or WebSocket traffic),
gives them their `seq`, hands them to the store and to every listener (the WebSocket hub,
the MongoDB sync worker), and writes the checkpoint.

Sequence numbers stay stable across restarts: the lines the tailer marks as `history`
(at or before the checkpoint) are numbered backwards from the checkpoint's `seq`, the new
ones forwards from it. Re-reading a line after a crash therefore gives it the seq it had,
and downstream consumers dedupe by seq (and MongoDB by event hash).

Warm restart: given a `History` (the newest stored events up to the checkpoint, read back
from MongoDB or from the shutdown snapshot) to `run`, the history lines are dropped
unparsed when the tailer resumes from the checkpoint, and those events are stored in their
place with the seqs they had.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import trio
from orjson import JSONDecodeError as _JSONDecodeError
from orjson import loads as _orjson_loads

from coordd.core.event import Event, parse_line
from coordd.core.pacing import RateLimitedLog
from coordd.errors import StateError
from coordd.tail.checkpoint import Checkpoint, FileId, new_epoch, save_checkpoint
from coordd.tail.excerpt import LinePlace, printable_excerpt
from coordd.tail.tailer import LineBatch, Tailer

__all__ = ["History", "Listener", "Pipeline", "PipelineStats"]

log = logging.getLogger(__name__)


class EnricherLike(Protocol):
    """What the pipeline needs of `coordd.core.enrich.Enricher`."""

    rejected: Counter[str]

    def enrich_event(self, value: Any, seq: int = 0, *,
                     with_source: bool = False) -> Event | None: ...


class StoreLike(Protocol):
    epoch: str
    last_seq: int

    def extend(self, events: Sequence[Event]) -> None: ...


#: Called on the event loop with each stored batch.
#: Must not block (the hub queues, the sync worker buffers).
Listener = Callable[[Sequence[Event]], None]


@dataclass(frozen=True, slots=True)
class History:
    """The history already loaded for a warm restart: events of the checkpoint's epoch up
    to its seq, in seq order, and where they came from, for the log ("MongoDB", "the
    snapshot")."""

    events: Sequence[Event]
    origin: str


@dataclass(frozen=True, slots=True)
class PipelineStats:
    epoch: str
    last_seq: int
    caught_up: bool
    lines: int
    accepted: int
    rejected: dict[str, int]
    repaired: int  # accepted events whose line held invalid UTF-8 (decoded with U+FFFD)
    batches: int
    last_progress: float
    busy_since: float | None  # trio time a batch went to the worker thread, while it is there
    checkpoint_error: str | None


class Pipeline:
    """Owns the tailer task and the ingest loop. `run` reports ready once the initial read
    of everything on disk is stored."""

    def __init__(
        self,
        tailer: Tailer,
        enricher: EnricherLike,
        store: StoreLike,
        *,
        state_dir: Path | None,
        checkpoint: Checkpoint | None,
        checkpoint_interval: float = 1.0,
        listeners: Sequence[Listener] = (),
    ) -> None:
        """New events (after the history) are built with their `Event.source` (the
        enricher's `prepare`, for the MongoDB sync worker, which drops it: see
        `SyncWorker.offer`)."""
        self.tailer = tailer
        self.enricher = enricher
        self.store = store
        self.state_dir = state_dir
        self.checkpoint = checkpoint
        self.checkpoint_interval = checkpoint_interval
        self.listeners: list[Listener] = list(listeners)
        self.epoch = checkpoint.epoch if checkpoint else new_epoch()
        self.caught_up = trio.Event()
        self._rejected: Counter[str] = Counter()
        self._repaired = 0
        self._lines = 0
        self._accepted = 0
        self._batches = 0
        self._last_progress = 0.0
        self._busy_since: float | None = None
        self._history: list[Event] = []
        self._preloaded: list[Event] | None = None
        self._preloaded_from = ""
        self._dropped_history = 0
        self._history_done = False
        self._position: tuple[FileId, int, int] | None = None
        self._saved_position: tuple[FileId, int, int] | None = None
        self._current_file: FileId | None = None
        self._left_files: set[FileId] = set()
        self._checkpoint_error: str | None = None
        self._ratelog = RateLimitedLog(log, 10.0)

    # ------------------------------------------------------------------ running

    async def run(self, *, history: History | None = None,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ingest until cancelled. Ready once everything on disk at start is stored.

        `history`: the history already loaded (warm restart). When the tailer resumes from
        the checkpoint, the lines at or before it are dropped without being parsed and
        these events stand for them; when it does not (the checkpointed file is gone),
        they are discarded and the log is read as usual.

        On cancellation the last position is checkpointed (shielded, so a shutdown
        never loses the position it had reached).
        """
        if history is not None:
            self._preloaded, self._preloaded_from = list(history.events), history.origin
        send, recv = trio.open_memory_channel[LineBatch](4)
        # The history build allocates ~100k long-lived records and makes no cycles; the
        # cyclic GC would walk the growing heap again and again meanwhile (~0.4 s of a
        # 100k cold start). Paused until the history is stored; `gcpolicy` then collects
        # the young generations and freezes the survivors.
        gc_paused = gc.isenabled()
        if gc_paused:
            gc.disable()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._checkpoint_loop)
                await nursery.start(self.tailer.run, send)
                async with recv:
                    async for batch in recv:
                        await self._ingest(batch)
                        if batch.caught_up:
                            self._finish_history()
                            if gc_paused:
                                gc_paused = False
                                gc.enable()
                            if not self.caught_up.is_set():
                                self.caught_up.set()
                                task_status.started()
                nursery.cancel_scope.cancel()
        finally:
            if gc_paused:
                gc.enable()
            # Synchronous on purpose: a cancelled run still records the position it reached.
            self._save_checkpoint()

    async def _ingest(self, batch: LineBatch) -> None:
        self._lines += len(batch.lines)
        self._last_progress = trio.current_time()
        if batch.history and not self._history_done and self._history_loaded():
            # Loaded already: nothing to parse, only the position to keep.
            self._dropped_history += len(batch.lines)
            self._batches += 1
            self._advance(batch.file, batch.end_offset)
            return
        events: list[Event] = []
        if batch.lines:
            self._busy_since = trio.current_time()
            try:
                # No sources for the history: it is stored all at once, far beyond what
                # the sync worker keeps them for.
                events = await trio.to_thread.run_sync(self._build, batch.lines,
                                                       self._history_done,
                                                       batch.path, batch.end_offset,
                                                       abandon_on_cancel=False)
            finally:
                self._busy_since = None
        self._batches += 1
        if batch.history and not self._history_done:
            self._history.extend(events)
        else:
            self._finish_history()
            if events:
                seq = self.store.last_seq
                for ev in events:
                    seq += 1
                    ev.seq = seq
                self._store(events)
        self._advance(batch.file, batch.end_offset)

    def _history_loaded(self) -> bool:
        return (self._preloaded is not None and self.checkpoint is not None
                and self.tailer.resumed)

    def _advance(self, file: FileId, offset: int) -> None:
        """Move the checkpoint position forward, never back to a file already left.

        Late writes to a file that was rotated away arrive after lines of its successor;
        the checkpoint stays in the successor (the old file is history on a restart).
        """
        if file != self._current_file:
            if file in self._left_files:
                return
            if self._current_file is not None:
                self._left_files.add(self._current_file)
            self._current_file = file
        # One assignment, so the checkpoint thread never sees a position and a seq that
        # belong to different batches.
        self._position = (file, offset, self.store.last_seq)

    def _build(self, lines: list[bytes], with_sources: bool = False,
               path: str | Path | None = None, end_offset: int | None = None) -> list[Event]:
        """Parse and enrich in a worker thread. Numbering happens on the loop.

        `with_sources`: give the events their `Event.source` (the enricher's `prepare`,
        for the MongoDB sync worker). `path` and `end_offset` (the batch's file and where
        its last line ends) say where a skipped line was, in the warning about it."""
        out: list[Event] = []
        append = out.append
        make = self.enricher.enrich_event
        if with_sources:
            make = partial(make, with_source=True)
        place = LinePlace(lines, "the log" if path is None else str(path), end_offset)
        seen = dict(self.enricher.rejected)
        for index, raw in enumerate(lines):
            # orjson first, inline: nearly every line is plain JSON, and `parse_line`
            # (BOM, CRLF, lone surrogates, invalid UTF-8, reasons) is only needed for the
            # others.
            try:
                value = _orjson_loads(raw)
            except _JSONDecodeError:
                parsed = parse_line(raw)
                if parsed.reason is not None:
                    if parsed.reason != "blank":
                        self._skipped(parsed.reason, raw, place, index)
                    continue
                value = parsed.value
                if parsed.repaired:
                    ev = make(value)
                    if ev is None:
                        self._not_an_event(raw, place, index, seen)
                        continue
                    append(ev)
                    self._repaired += 1
                    suffix = self._ratelog.admit("repaired")
                    if suffix is not None:
                        log.warning("kept a line with invalid UTF-8 %s, each invalid byte "
                                    "sequence replaced with U+FFFD: %s%s", place.of(index),
                                    printable_excerpt(raw), suffix)
                    continue
            ev = make(value)
            if ev is not None:
                append(ev)
            else:
                self._not_an_event(raw, place, index, seen)
        return out

    def _not_an_event(self, raw: bytes, place: LinePlace, index: int,
                      seen: dict[str, int]) -> None:
        """A JSON line the enricher refused: count and report it under the reason the
        enricher counted (`seen`: its counters before, kept up to date here)."""
        for reason, count in self.enricher.rejected.items():
            if count != seen.get(reason, 0):
                seen[reason] = count
                self._skipped(reason, raw, place, index)
                return

    def _skipped(self, reason: str, raw: bytes, place: LinePlace, index: int) -> None:
        """Count a skipped line; warn (rate-limited) where it was and how it began."""
        self._rejected[reason] += 1
        suffix = self._ratelog.admit(reason)
        if suffix is not None:
            log.warning("skipped a line (%s) %s: %s%s", reason, place.of(index),
                        printable_excerpt(raw), suffix)

    def _finish_history(self) -> None:
        """Number the buffered history backwards from the checkpoint and store it."""
        if self._history_done:
            return
        self._history_done = True
        if self._history_loaded():
            self._store_preloaded()
            return
        if self._preloaded is not None:
            log.info("the checkpointed file is gone: reading the history from the log "
                     "instead of the %d events loaded from %s", len(self._preloaded),
                     self._preloaded_from)
        self._preloaded = None
        history, self._history = self._history, []
        resumed = self.tailer.resumed and self.checkpoint is not None
        if resumed:
            assert self.checkpoint is not None
            first = self.checkpoint.seq - len(history) + 1
            if first < 1:
                log.warning(
                    "checkpoint seq %d is below the %d events of history: starting a new epoch",
                    self.checkpoint.seq, len(history),
                )
                resumed = False
        if not resumed:
            if self.checkpoint is not None:
                log.info("checkpoint %s does not match the log: new epoch", self.checkpoint.file)
                self.epoch = new_epoch()
            first = 1
        for i, ev in enumerate(history):
            ev.seq = first + i
        self.store.epoch = self.epoch
        if history:
            self.store.last_seq = first - 1
            self._store(history)
        elif resumed and self.checkpoint is not None:
            self.store.last_seq = self.checkpoint.seq
        if self._position is not None:
            self._position = (self._position[0], self._position[1], self.store.last_seq)
        log.info("history: %d events (epoch %s, last seq %d)", len(history), self.epoch,
                 self.store.last_seq)

    def _store_preloaded(self) -> None:
        """Store the loaded history in place of the dropped lines (warm restart)."""
        cp = self.checkpoint
        assert cp is not None and self._preloaded is not None
        history = [ev for ev in self._preloaded if ev.seq <= cp.seq]
        self._preloaded = None
        self.epoch = cp.epoch
        self.store.epoch = cp.epoch
        if history:
            self.store.last_seq = history[0].seq - 1
            self._store(history)
        # Events of the checkpoint that were not loaded (MongoDB's retention) leave a gap; the
        # numbering goes on from the checkpoint.
        self.store.last_seq = max(self.store.last_seq, cp.seq)
        if self._position is not None:
            self._position = (self._position[0], self._position[1], self.store.last_seq)
        log.info("history: %d events loaded from %s, %d log lines skipped (epoch %s, "
                 "last seq %d)", len(history), self._preloaded_from, self._dropped_history,
                 self.epoch, self.store.last_seq)

    def _store(self, events: list[Event]) -> None:
        self.store.extend(events)
        self._accepted += len(events)
        for listener in self.listeners:
            try:
                listener(events)
            except Exception:
                log.exception("listener %r failed on a batch of %d events", listener, len(events))

    # ------------------------------------------------------------------ checkpoint

    async def _checkpoint_loop(self) -> None:
        while True:
            await trio.sleep(self.checkpoint_interval)
            if self._history_done:
                await trio.to_thread.run_sync(self._save_checkpoint)

    def _save_checkpoint(self) -> None:
        if self.state_dir is None or self._position is None or not self._history_done:
            return
        current = self._position
        if current == self._saved_position:
            return
        cp = self._checkpoint_at(current)
        try:
            save_checkpoint(self.state_dir, cp)
        except (OSError, StateError) as e:
            self._checkpoint_error = str(e)
            self._ratelog.warning("checkpoint", "cannot write the checkpoint: %s",
                                  self._checkpoint_error)
            return
        self._checkpoint_error = None
        self._saved_position = current

    def stopped_at(self) -> Checkpoint | None:
        """After `run` ended: the checkpoint on disk when the store holds exactly what it
        covers (for `coordd.tail.snapshot`), else None."""
        pos = self._saved_position
        if not self._history_done or pos is None or pos != self._position:
            return None
        return self._checkpoint_at(pos) if pos[2] == self.store.last_seq else None

    def _checkpoint_at(self, position: tuple[FileId, int, int]) -> Checkpoint:
        file, offset, seq = position
        return Checkpoint(file=file, offset=offset, seq=seq, epoch=self.epoch)

    # ------------------------------------------------------------------ introspection

    def statistics(self) -> PipelineStats:
        return PipelineStats(
            epoch=self.epoch,
            last_seq=self.store.last_seq,
            caught_up=self.caught_up.is_set(),
            lines=self._lines,
            accepted=self._accepted,
            rejected=dict(self._rejected),
            repaired=self._repaired,
            batches=self._batches,
            last_progress=self._last_progress,
            busy_since=self._busy_since,
            checkpoint_error=self._checkpoint_error,
        )
