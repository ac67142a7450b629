"""Property tests: however a log arrives, the tailer hands on exactly its lines, once, in order.

Each example runs the real tailer on a real temporary file under trio's virtual clock
(`MockClock(autojump_threshold=0)`): the pauses between writes cost no wall time, and in
poll mode the moments the tailer looks are deterministic.
"""

from __future__ import annotations

import functools
import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordd.tail.checkpoint import Checkpoint
from coordd.tail.logfile import REPLACED, SHRUNK, LogFile, open_log, scan_back
from coordd.tail.tailer import LineBatch, Tailer

NAME = "coordination-events.ndjson"

# Multi-byte UTF-8 (2, 3 and 4 bytes), \r, JSON punctuation, and anything else but \n.
_CHARS = st.one_of(
    st.sampled_from(["é", "한", "😀", "\r", "{", '"', ":", " ", "a"]),
    st.characters(blacklist_characters="\n", codec="utf-8"),
)
_LINE = st.tuples(st.text(_CHARS, max_size=24), st.booleans())  # (text, CRLF ending)


@dataclass
class Log:
    data: bytes  # what is written, in order
    lines: list[bytes]  # the complete lines in it, as the tailer must hand them on
    cuts: list[int]  # write boundaries (byte offsets into data)
    pauses: list[float]  # virtual seconds to wait after each write


@st.composite
def logs(draw: st.DrawFn, max_lines: int = 30) -> Log:
    raw = draw(st.lists(_LINE, max_size=max_lines))
    lines = [t.encode() + (b"\r" if crlf else b"") for t, crlf in raw]
    data = b"".join(line + b"\n" for line in lines)
    data += draw(st.text(_CHARS, max_size=10)).encode()  # an unfinished last line
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    pauses = draw(st.lists(st.sampled_from([0.0, 0.0, 0.3, 1.0, 2.5]),
                           min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    return Log(data, lines, cuts, pauses)


def _chunks(log: Log) -> list[bytes]:
    bounds = [0, *log.cuts, len(log.data)]
    return [log.data[a:b] for a, b in itertools.pairwise(bounds)]


Write = tuple[str, str, bytes, float]  # (action, file name, data, pause after)


async def _feed_and_collect(path: Path, writes: list[Write],
                            **kw: object) -> tuple[list[LineBatch], Tailer]:
    """Start a tailer on `path`, perform `writes`, then collect every batch it sends.

    `("append", name, data, pause)` appends to the file `name` in the log's directory;
    `("rotate", name, b"", pause)` renames the log to `name` and creates an empty one.
    """
    tailer = Tailer(path, poll_interval=1.0, **kw)  # type: ignore[arg-type]
    send, recv = trio.open_memory_channel[LineBatch](0)
    batches: list[LineBatch] = []

    async def collect() -> None:
        async for b in recv:
            batches.append(b)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect)
        await nursery.start(tailer.run, send)
        for action, name, data, pause in writes:
            _perform(path, action, name, data)
            if pause:
                await trio.sleep(pause)
        await trio.sleep(5.0)  # several polls: everything on disk has been looked at
        nursery.cancel_scope.cancel()
    return batches, tailer


def _perform(path: Path, action: str, name: str, data: bytes) -> None:
    if action == "append":
        with path.with_name(name).open("ab") as f:
            f.write(data)
    else:
        os.rename(path, path.with_name(name))
        path.write_bytes(b"")


def _run(writes: list[Write], **kw: object) -> tuple[list[LineBatch], Tailer]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(b"")
        out: tuple[list[LineBatch], Tailer] | None = None

        async def main() -> None:
            nonlocal out
            out = await _feed_and_collect(path, writes, **kw)

        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        assert out is not None
        return out


def _appends(log: Log) -> list[Write]:
    return [("append", NAME, c, p) for c, p in zip(_chunks(log), log.pauses, strict=True)]


_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(log=logs(), watch=st.sampled_from(["poll", "inotify"]),
       read_size=st.sampled_from([1, 2, 3, 5, 64, 1 << 20]))
def test_any_split_yields_every_line_once_in_order(log: Log, watch: str, read_size: int) -> None:
    batches, tailer = _run(_appends(log), watch=watch, read_size=read_size)
    assert [line for b in batches for line in b.lines] == log.lines
    # Offsets: strictly increasing, each just past the batch's last line.
    ends = [b.end_offset for b in batches if b.lines]
    assert ends == sorted(set(ends))
    for b in batches:
        if b.lines:
            assert log.data[:b.end_offset].endswith(b.lines[-1] + b"\n")
    # The file was empty at start: only the caught_up marker is history, and it is alone.
    assert [b.caught_up for b in batches].count(True) == 1
    assert batches[0].caught_up and batches[0].lines == []
    assert not any(b.history for b in batches[1:])
    assert tailer.statistics().skipped == {}


@_SETTINGS
@given(log=logs(), limit=st.integers(1, 12), read_size=st.sampled_from([1, 4, 9, 1 << 20]))
def test_too_long_lines_are_dropped_and_nothing_else(log: Log, limit: int,
                                                     read_size: int) -> None:
    batches, tailer = _run(_appends(log), watch="poll", max_line_bytes=limit, read_size=read_size)
    assert [line for b in batches for line in b.lines] == [
        line for line in log.lines if len(line) <= limit]
    too_long = sum(len(line) > limit for line in log.lines)
    assert tailer.statistics().skipped.get("too_long", 0) in (too_long, too_long + 1)
    # (+1: the unfinished last line may already be known to be too long.)


@st.composite
def rotating_logs(draw: st.DrawFn) -> tuple[list[Write], list[bytes]]:
    """Appends of whole lines with rename rotations between them, as the writer does: the
    writer's still-buffered tail may land in the renamed file after the rotation."""
    writes: list[Write] = []
    expected: list[bytes] = []
    n = draw(st.integers(1, 8))
    for i in range(n):
        lines = [t.encode() for t, _ in draw(st.lists(_LINE, max_size=6))]
        expected.extend(lines)
        data = b"".join(line + b"\n" for line in lines)
        cut = draw(st.integers(0, len(data)))
        writes.append(("append", NAME, data[:cut], draw(st.sampled_from([0.0, 0.5, 2.0]))))
        if i < n - 1 and draw(st.booleans()):
            rotated = f"coordination-events-{i:03d}.ndjson"
            writes.append(("rotate", rotated, b"", draw(st.sampled_from([0.0, 1.5]))))
            writes.append(("append", rotated, data[cut:], 0.0))
        else:
            writes.append(("append", NAME, data[cut:], 0.0))
    return writes, expected


@_SETTINGS
@given(case=rotating_logs(), watch=st.sampled_from(["poll", "inotify"]),
       read_size=st.sampled_from([3, 1 << 20]))
def test_rotations_lose_nothing_and_repeat_nothing(
        case: tuple[list[Write], list[bytes]], watch: str, read_size: int) -> None:
    writes, expected = case
    batches, tailer = _run(writes, watch=watch, read_size=read_size)
    assert [line for b in batches for line in b.lines] == expected
    # Rotations in quick succession are seen as one; none are invented.
    rotations = sum(w[0] == "rotate" for w in writes)
    assert 0 < tailer.statistics().rotations <= rotations or rotations == 0 == (
        tailer.statistics().rotations)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\n")),
       need=st.integers(0, 40), chunk=st.integers(1, 64), cut=st.integers(0, 300))
def test_scan_back_finds_the_start_of_the_last_lines(data: bytes, need: int, chunk: int,
                                                     cut: int) -> None:
    end = min(cut, len(data))
    newlines = [i for i in range(end) if data[i:i + 1] == b"\n"]
    if len(newlines) <= need:
        expected = (0, len(newlines))
    else:
        expected = (newlines[-need - 1] + 1, need)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        assert scan_back(f.fileno(), end, need, chunk) == expected


async def _until_caught_up(path: Path, **kw: object) -> tuple[list[LineBatch], bool]:
    tailer = Tailer(path, watch="poll", **kw)  # type: ignore[arg-type]
    send, recv = trio.open_memory_channel[LineBatch](0)
    batches: list[LineBatch] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(tailer.run, send)
        async for b in recv:
            batches.append(b)
            if b.caught_up:
                break
        nursery.cancel_scope.cancel()
    return batches, tailer.resumed


_WHOLE = st.lists(st.text(_CHARS, max_size=12).map(str.encode), max_size=15)


@_SETTINGS
@given(first=_WHOLE.filter(bool), more=_WHOLE, after_rotation=st.none() | _WHOLE,
       pick=st.integers(0, 100), limit=st.integers(0, 30), read_size=st.sampled_from([4, 64]))
def test_restart_from_any_checkpoint_splits_history_from_new(
        first: list[bytes], more: list[bytes], after_rotation: list[bytes] | None, pick: int,
        limit: int, read_size: int) -> None:
    """A checkpoint taken at any batch a first run handed on; more lines (and maybe a
    rotation) while down: the second run's history is exactly the lines up to the
    checkpoint (the newest `limit` of them), its new lines exactly everything after."""
    def blob(lines: list[bytes]) -> bytes:
        return b"".join(line + b"\n" for line in lines)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(blob(first))
        clock = trio.testing.MockClock(autojump_threshold=0)
        batches, _ = trio.run(functools.partial(_until_caught_up, path, read_size=read_size),
                              clock=clock)
        with_lines = [b for b in batches if b.lines]
        chosen = with_lines[pick % len(with_lines)]
        upto = [line for b in with_lines[:with_lines.index(chosen) + 1] for line in b.lines]
        cp = Checkpoint(chosen.file, chosen.end_offset, 1000, "ep")
        with path.open("ab") as f:
            f.write(blob(more))
        if after_rotation is not None:
            os.rename(path, path.with_name("coordination-events-2026-03.ndjson"))
            path.write_bytes(blob(after_rotation))
        again, resumed = trio.run(
            functools.partial(_until_caught_up, path, checkpoint=cp, history_limit=limit,
                              read_size=read_size),
            clock=trio.testing.MockClock(autojump_threshold=0))
    assert resumed
    history = [line for b in again if b.history for line in b.lines]
    new = [line for b in again if not b.history for line in b.lines]
    assert history == (upto[-limit:] if limit else [])
    assert new == first[len(upto):] + more + (after_rotation or [])
    # History first, then new: the flag never goes back.
    flags = [b.history for b in again if b.lines]
    assert flags == sorted(flags, reverse=True)


# ---------------------------------------------------------------------------- rewrites

_TEXT = st.text(st.one_of(_CHARS, st.just("\n")), min_size=1, max_size=12).map(str.encode)
Op = tuple[str, bytes | int | None]


@st.composite
def rewritten_logs(draw: st.DrawFn) -> tuple[list[Op], list[bytes]]:
    """What one open log file goes through: appends, reads of any size, looks (re-stat and
    re-fingerprint, as the tailer does before reading on) and rewrites in place: cut to 0,
    maybe a look, refilled with content that differs from the old somewhere in their common
    length (so the rewrite can be told from growth or a cut), then a look. The tailer has
    read everything before a rewrite, with no look since its last reads: what it read last
    may be only in its buffer."""
    ops: list[Op] = []
    generations = [b""]
    for _ in range(draw(st.integers(1, 20))):
        kind = draw(st.sampled_from(["append", "append", "read", "look", "rewrite"]))
        if kind == "append":
            data = draw(_TEXT)
            generations[-1] += data
            ops.append(("append", data))
        elif kind == "read":
            ops.append(("read", draw(st.sampled_from([1, 2, 5, 64]))))
        elif kind == "look":
            ops.append(("look", None))
        else:
            old = generations[-1]
            ops += [("drain", None), ("truncate", None)]
            if draw(st.booleans()):
                ops.append(("look", None))
            data = draw(_TEXT.filter(lambda b, old=old: _differs(old, b)))
            generations.append(data)
            # The tailer looks before it reads on (a rewrite while it reads is only seen
            # at its next look).
            ops += [("append", data), ("look", None)]
    expected = [line for g in generations for line in g.split(b"\n")[:-1]]
    return ops, expected


def _differs(old: bytes, new: bytes) -> bool:
    """Whether `new` differs from `old` within their common length (or `old` is empty)."""
    return not old or any(a != b for a, b in zip(old, new, strict=False))


def _look(lf: LogFile) -> None:
    verdict = lf.check()
    if verdict == REPLACED:
        lf.restart()
    elif verdict == SHRUNK:
        lf.cut()


def _drain_file(lf: LogFile, read_size: int) -> list[bytes]:
    out: list[bytes] = []
    while True:
        res = lf.read(read_size, 1 << 20)
        out += res.lines
        if res.eof:
            return out


@settings(max_examples=400, deadline=None)
@given(case=rewritten_logs())
def test_rewrites_in_place_are_never_glued_to_old_bytes(case: tuple[list[Op], list[bytes]]
                                                        ) -> None:
    """Every complete line of every generation of the file, once, in order; a partial line
    cut off by a rewrite is dropped, never glued to the new content."""
    ops, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(b"")
        lf = open_log(path)
        assert lf is not None
        got: list[bytes] = []
        try:
            for kind, arg in ops:
                if kind == "append":
                    assert isinstance(arg, bytes)
                    with path.open("ab") as f:
                        f.write(arg)
                elif kind == "read":
                    assert isinstance(arg, int)
                    got += lf.read(arg, 1 << 20).lines
                elif kind == "look":
                    _look(lf)
                elif kind == "drain":
                    got += _drain_file(lf, 64)
                else:
                    os.truncate(path, 0)
            _look(lf)
            got += _drain_file(lf, 64)
        finally:
            lf.close()
    assert got == expected
