"""The loss-free tailer (coordd.tail.tailer) on real files, under trio's virtual clock.

Poll mode is deterministic under `autojump_clock`: `await settle()` lets the tailer poll a
few times. The inotify tests use a huge poll interval, so a line that arrives at all was
delivered by inotify.
"""

from __future__ import annotations

import os
import shutil
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from coordd.tail import inotify as inotify_mod
from coordd.tail.checkpoint import Checkpoint, FileId, file_id, read_prefix
from coordd.tail.logfile import REPLACED, SHRUNK, LogFile, open_log
from coordd.tail.tailer import NO_FILE, LineBatch, Tailer

NAME = "coordination-events.ndjson"
POLL = 1.0


@asynccontextmanager
async def tailing(path: Path, capacity: int = 1000, **kw: Any) -> AsyncIterator[Harness]:
    kw.setdefault("poll_interval", POLL)
    kw.setdefault("watch", "poll")
    tailer = Tailer(path, **kw)
    send, recv = trio.open_memory_channel[LineBatch](capacity)
    async with trio.open_nursery() as nursery:
        await nursery.start(tailer.run, send)
        yield Harness(tailer, recv)
        nursery.cancel_scope.cancel()


class Harness:
    def __init__(self, tailer: Tailer, recv: trio.MemoryReceiveChannel[LineBatch]) -> None:
        self.tailer = tailer
        self.recv = recv
        self.batches: list[LineBatch] = []

    async def caught_up(self) -> list[LineBatch]:
        """Batches up to and including the caught_up one."""
        out = []
        with trio.fail_after(60):
            while True:
                b = await self.recv.receive()
                self.batches.append(b)
                out.append(b)
                if b.caught_up:
                    return out

    def ready(self) -> list[LineBatch]:
        """Every batch already sent."""
        out = []
        while True:
            try:
                b = self.recv.receive_nowait()
            except trio.WouldBlock:
                break
            self.batches.append(b)
            out.append(b)
        return out

    async def lines(self, n: int) -> list[bytes]:
        """Exactly the next n lines (fails if they do not come, or come as part of more)."""
        got: list[bytes] = []
        with trio.fail_after(60):
            while len(got) < n:
                b = await self.recv.receive()
                self.batches.append(b)
                got.extend(b.lines)
        assert len(got) == n, got
        return got

    async def settled_lines(self) -> list[bytes]:
        """Let the tailer poll a few times, then everything it sent."""
        await settle()
        return [line for b in self.ready() for line in b.lines]


    async def everything(self) -> list[bytes]:
        """Receive until nothing more comes for a few poll intervals (for a slow consumer)."""
        out: list[bytes] = []
        while True:
            with trio.move_on_after(5 * POLL) as scope:
                b = await self.recv.receive()
                self.batches.append(b)
                out.extend(b.lines)
            if scope.cancelled_caught:
                return out


async def settle() -> None:
    await trio.sleep(5 * POLL)


def lines_of(batches: list[LineBatch]) -> list[bytes]:
    return [line for b in batches for line in b.lines]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def fid_of(path: Path) -> FileId:
    fd = os.open(path, os.O_RDONLY)
    try:
        return file_id(os.fstat(fd), read_prefix(fd))
    finally:
        os.close(fd)


def numbered(prefix: str, n: int, start: int = 1) -> bytes:
    return b"".join(f'{{"n":"{prefix}{i}"}}\n'.encode() for i in range(start, start + n))


def parsed(lines: list[bytes]) -> list[str]:
    return [line.decode()[6:-2] for line in lines]


def set_mtime(path: Path, t: float) -> None:
    os.utime(path, (t, t))


# ---------------------------------------------------------------------------- lines


async def test_partial_line_is_kept_until_its_newline(tmp_path: Path,
                                                      autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"first\nsec")
    async with tailing(log) as h:
        first = await h.caught_up()
        assert lines_of(first) == [b"first"]
        assert first[-1].end_offset == 6
        append(log, b"ond part")
        assert await h.settled_lines() == []
        assert h.tailer.statistics().offset == 6  # the offset never moves past a partial
        assert h.tailer.statistics().lag_bytes == len(b"second part")
        append(log, b"\nthird\n")
        assert await h.lines(2) == [b"second part", b"third"]
        assert h.batches[-1].end_offset == len(b"first\nsecond part\nthird\n")
        assert h.batches[-1].history is False


async def test_offsets_are_at_line_ends_when_reads_split_lines(tmp_path: Path,
                                                               autojump_clock: object) -> None:
    log = tmp_path / NAME
    data = numbered("x", 200)
    log.write_bytes(data)
    async with tailing(log, read_size=7) as h:
        batches = await h.caught_up()
    assert b"\n".join(lines_of(batches)) + b"\n" == data
    for b in batches:
        if b.lines:
            assert data[b.end_offset - 1:b.end_offset] == b"\n"
            assert data[:b.end_offset].endswith(b"\n".join(b.lines) + b"\n")


async def test_too_long_line_is_skipped_and_next_line_intact(tmp_path: Path,
                                                             autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"short\n" + b"x" * 25)
    async with tailing(log, max_line_bytes=10, read_size=4) as h:
        assert lines_of(await h.caught_up()) == [b"short"]
        append(log, b"y" * 30)
        assert await h.settled_lines() == []
        append(log, b"zz\n" + b"0123456789\n" + b"next\n")
        # A line of exactly max_line_bytes is kept; the long one is gone, nothing of it leaks.
        assert await h.lines(2) == [b"0123456789", b"next"]
        stats = h.tailer.statistics()
        assert stats.skipped == {"too_long": 1}
        assert stats.offset == log.stat().st_size


async def test_too_long_line_inside_one_read(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a\n" + b"L" * 50 + b"\nb\n" + b"M" * 11 + b"\nc\n")
    async with tailing(log, max_line_bytes=10) as h:
        assert lines_of(await h.caught_up()) == [b"a", b"b", b"c"]
        assert h.tailer.statistics().skipped == {"too_long": 2}


async def test_too_long_partial_line_is_not_buffered_whole(tmp_path: Path,
                                                           autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"before\n")
    chunk = b"q" * (1 << 20)
    async with tailing(log, max_line_bytes=4096, read_size=1 << 16) as h:
        await h.caught_up()
        tracemalloc.start()
        try:
            for _ in range(24):  # a 24 MiB line, arriving in pieces
                append(log, chunk)
                await trio.sleep(POLL)
            append(log, b"\nafter\n")
            assert await h.lines(1) == [b"after"]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20, f"peak {peak} bytes: the long line was buffered"
        assert h.tailer.statistics().skipped == {"too_long": 1}


async def test_crlf_and_blank_lines_pass_through(tmp_path: Path,
                                                 autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a\r\n\n\r\n  \nb\r")
    async with tailing(log) as h:
        assert lines_of(await h.caught_up()) == [b"a\r", b"", b"\r", b"  "]
        append(log, b"\n")  # the \r and its \n arrived in different writes
        assert await h.lines(1) == [b"b\r"]


async def test_batches_are_capped(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    data = b"".join(b"%d\n" % i for i in range(25_000))
    log.write_bytes(data)
    async with tailing(log) as h:
        batches = await h.caught_up()
    assert lines_of(batches) == data.split(b"\n")[:-1]
    assert max(len(b.lines) for b in batches) <= 10_000
    for b in batches:
        assert data[:b.end_offset].endswith(b.lines[-1] + b"\n")


async def test_backpressure_loses_nothing(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(numbered("h", 5000))
    async with tailing(log, capacity=0, read_size=512) as h:
        got: list[bytes] = []
        for i in range(20):
            append(log, numbered("n", 500, start=i * 500))
            b = await h.recv.receive()  # a slow consumer: one batch per poll interval
            got.extend(b.lines)
            await trio.sleep(POLL)
        got.extend(await h.everything())
    assert parsed(got) == [f"h{i}" for i in range(1, 5001)] + [f"n{i}" for i in range(10_000)]


# ---------------------------------------------------------------------------- rotation


async def test_rename_rotation_with_late_writes_to_the_old_file(tmp_path: Path,
                                                                autojump_clock: object) -> None:
    log = tmp_path / NAME
    rotated = tmp_path / "coordination-events-2026-02-17T12-34-56-789Z.ndjson"
    log.write_bytes(b"a1\na2\n")
    async with tailing(log) as h:
        await h.caught_up()
        append(log, b"a3\na")
        os.rename(log, rotated)
        append(rotated, b"4\n")  # the writer's buffered data lands in the renamed file
        log.write_bytes(b"b1\n")
        assert await h.settled_lines() == [b"a3", b"a4", b"b1"]
        stats = h.tailer.statistics()
        assert stats.rotations == 1 and stats.offset == 3
        # Even after the switch, a late write to the old file is still picked up.
        append(rotated, b"a5\n")
        append(log, b"b2\n")
        assert await h.settled_lines() == [b"a5", b"b2"]
        old = next(b for b in h.batches if b"a5" in b.lines)
        assert old.file.ino == rotated.stat().st_ino and old.end_offset == 15


async def test_rotations_between_two_looks_lose_no_file(tmp_path: Path,
                                                        autojump_clock: object) -> None:
    # Two rotations before the tailer looks: the file in between was never the live file
    # while it watched, and is read from its sibling name, in order.
    log = tmp_path / NAME
    log.write_bytes(b"a1\n")
    async with tailing(log) as h:
        await h.caught_up()
        append(log, b"a2\n")
        os.rename(log, tmp_path / "coordination-events-1.ndjson")
        log.write_bytes(b"b1\n")
        os.rename(log, tmp_path / "coordination-events-2.ndjson")
        log.write_bytes(b"c1\n")
        assert await h.settled_lines() == [b"a2", b"b1", b"c1"]


async def test_rotation_while_handing_on_a_missed_file(tmp_path: Path,
                                                       autojump_clock: object) -> None:
    # The writer rotates again while the tailer waits for the consumer to take the lines of
    # a file it missed: the file that was live meanwhile must not be skipped.
    log = tmp_path / NAME
    log.write_bytes(b"a1\n")
    async with tailing(log, capacity=0) as h:
        await h.caught_up()
        os.rename(log, tmp_path / "coordination-events-1.ndjson")
        log.write_bytes(b"b1\n")
        os.rename(log, tmp_path / "coordination-events-2.ndjson")
        log.write_bytes(b"c1\n")
        await trio.sleep(1.5 * POLL)  # the tailer is now blocked handing on b1
        assert h.recv.receive_nowait().lines == [b"b1"]
        os.rename(log, tmp_path / "coordination-events-3.ndjson")  # no yield since
        log.write_bytes(b"d1\n")
        assert await h.everything() == [b"c1", b"d1"]


async def test_copytruncate_copy_is_not_read_at_the_next_rotation(
        tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a1\n")
    async with tailing(log) as h:
        await h.caught_up()
        shutil.copyfile(log, tmp_path / "coordination-events-copy.ndjson")
        os.truncate(log, 0)
        append(log, b"b1\n")
        assert await h.settled_lines() == [b"b1"]
        os.rename(log, tmp_path / "coordination-events-renamed.ndjson")
        log.write_bytes(b"c1\n")
        assert await h.settled_lines() == [b"c1"]


async def test_rename_rotation_in_inotify_mode(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a1\n")
    async with tailing(log, watch="inotify", poll_interval=1e6) as h:
        await h.caught_up()
        append(log, b"a2\n")
        assert await h.lines(1) == [b"a2"]
        os.rename(log, tmp_path / "coordination-events-2026-02.ndjson")
        log.write_bytes(b"b1\n")
        assert await h.lines(1) == [b"b1"]
        assert h.tailer.statistics().rotations == 1


async def test_copytruncate(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a1\na2\n")
    async with tailing(log) as h:
        await h.caught_up()
        shutil.copyfile(log, tmp_path / "coordination-events-1.ndjson")
        os.truncate(log, 0)
        append(log, b"b1\n")
        assert await h.settled_lines() == [b"b1"]
        stats = h.tailer.statistics()
        assert stats.truncations == 1 and stats.rotations == 0 and stats.offset == 3


async def test_copytruncate_refilled_past_the_old_offset(tmp_path: Path,
                                                         autojump_clock: object) -> None:
    # By the time the tailer looks, the new content is longer than what it had read:
    # only the fingerprint tells.
    log = tmp_path / NAME
    log.write_bytes(b"a1\na2\n")
    async with tailing(log) as h:
        await h.caught_up()
        ino = log.stat().st_ino
        with log.open("r+b") as f:
            f.truncate(0)
            f.write(b"b1-longer-than-before\nb2\n")
        assert log.stat().st_ino == ino
        assert await h.settled_lines() == [b"b1-longer-than-before", b"b2"]
        assert h.tailer.statistics().truncations == 1


async def test_truncation_drops_only_the_partial_line(tmp_path: Path,
                                                      autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a1\npartial")
    async with tailing(log) as h:
        await h.caught_up()
        os.truncate(log, 0)
        append(log, b"b1\n")
        assert await h.settled_lines() == [b"b1"]
        assert h.tailer.statistics().skipped == {"truncated": 1}


async def test_cut_in_place_re_emits_nothing(tmp_path: Path, autojump_clock: object) -> None:
    # Cut in place, keeping the (fingerprinted) start of the file, and appended to before
    # the tailer looks: what survived the cut is not handed on again, nothing new is lost.
    log = tmp_path / NAME
    head = numbered("a", 200)  # > 1024 bytes, so the fingerprint survives the cut
    log.write_bytes(head)
    async with tailing(log) as h:
        assert len(lines_of(await h.caught_up())) == 200
        for i in range(1, 4):
            append(log, numbered("c", 1, start=i))
            assert len(await h.settled_lines()) == 1
        os.truncate(log, len(head) + len(numbered("c", 1)))
        append(log, numbered("d", 1))  # still shorter than before, or it could not tell
        assert parsed(await h.settled_lines()) == ["d1"]
        assert h.tailer.statistics().truncations == 1
        # A cut inside a line: that line, as it now stands in the file, comes next.
        size = log.stat().st_size
        os.truncate(log, size - 5)
        append(log, b'X"}\n')
        assert await h.settled_lines() == [b'{"n":"X"}']
        assert h.tailer.statistics().truncations == 2


def _look(lf: LogFile) -> None:
    """What the tailer does when it looks at its live file (before reading on)."""
    verdict = lf.check()
    if verdict == REPLACED:
        lf.restart()
    elif verdict == SHRUNK:
        lf.cut()


def _read_all(lf: LogFile) -> list[bytes]:
    out: list[bytes] = []
    while True:
        res = lf.read(1 << 16, 1 << 20)
        out += res.lines
        if res.eof:
            return out


@pytest.mark.parametrize("look_while_empty", [True, False])
def test_cut_inside_a_buffered_partial_line(tmp_path: Path, look_while_empty: bool) -> None:
    # The writer wrote `parti` (no newline), read after the last look; then the file was cut
    # to 0 and refilled. Whether or not the tailer looks while the file is empty, the new
    # lines come whole and the stale partial line is dropped.
    log = tmp_path / NAME
    log.write_bytes(b"")
    lf = open_log(log)
    assert lf is not None
    try:
        append(log, b"parti")
        assert _read_all(lf) == []
        assert (lf.offset, lf.read_pos) == (0, 5)
        os.truncate(log, 0)
        if look_while_empty:
            _look(lf)  # size 0 is below the read position (not the consumed offset, 0)
        append(log, b"NEW\nb1\n")
        _look(lf)
        assert _read_all(lf) == [b"NEW", b"b1"]
    finally:
        lf.close()


def test_cut_inside_a_buffered_partial_line_past_the_fingerprint(tmp_path: Path) -> None:
    # The first 1024 bytes survive the cut, so only the size can tell: it is below the read
    # position (the partial line's end), though not below the consumed offset.
    log = tmp_path / NAME
    head = numbered("a", 200)
    log.write_bytes(head)
    lf = open_log(log)
    assert lf is not None
    try:
        assert len(_read_all(lf)) == 200
        append(log, b"parti")
        _look(lf)
        assert _read_all(lf) == []
        os.truncate(log, len(head) + 2)
        _look(lf)
        append(log, b"X\nb1\n")
        _look(lf)
        assert _read_all(lf) == [b"paX", b"b1"]
    finally:
        lf.close()


async def test_cut_inside_a_partial_line_read_after_the_last_look(
        tmp_path: Path, autojump_clock: object) -> None:
    # The live file is opened (empty) at start, and `parti` is written to it while the
    # rotated sibling is handed on: it is read without a look in between.
    log = tmp_path / NAME
    (tmp_path / "coordination-events-1.ndjson").write_bytes(numbered("a", 20))
    log.write_bytes(b"")
    async with tailing(log, capacity=0, read_size=64) as h:
        append(log, b"parti")
        assert len(lines_of(await h.caught_up())) == 20
        assert h.tailer.statistics().size == 5
        os.truncate(log, 0)
        append(log, b"NEW\nb1\n")
        assert await h.settled_lines() == [b"NEW", b"b1"]
        assert h.tailer.statistics().skipped == {"truncated": 1}


async def test_cut_below_every_known_line_end_rereads(tmp_path: Path,
                                                      autojump_clock: object) -> None:
    # Nothing recorded survives: reading restarts at 0, duplicates rather than losses.
    log = tmp_path / NAME
    head = numbered("a", 200)
    log.write_bytes(head + numbered("c", 2))
    async with tailing(log) as h:
        await h.caught_up()
        os.truncate(log, len(head))
        append(log, numbered("d", 1))
        got = parsed(await h.settled_lines())
        assert got == [f"a{i}" for i in range(1, 201)] + ["d1"]


async def test_delete_and_recreate(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a1\n")
    async with tailing(log) as h:
        await h.caught_up()
        append(log, b"a2\n")
        log.unlink()
        assert await h.settled_lines() == [b"a2"]
        assert h.tailer.statistics().waiting_for == "file"
        log.write_bytes(b"b1\n")
        assert await h.settled_lines() == [b"b1"]
        stats = h.tailer.statistics()
        assert stats.waiting_for is None and stats.rotations == 1
        # Deleted and recreated between two looks at it.
        log.unlink()
        log.write_bytes(b"c1\n")
        assert await h.settled_lines() == [b"c1"]


# ---------------------------------------------------------------------------- missing


@pytest.mark.parametrize("watch", ["poll", "inotify"])
async def test_missing_file_then_created(tmp_path: Path, autojump_clock: object,
                                         watch: str) -> None:
    log = tmp_path / NAME
    async with tailing(log, watch=watch) as h:
        (marker,) = await h.caught_up()
        assert marker.lines == [] and marker.file == NO_FILE and marker.history
        assert h.tailer.statistics().waiting_for == "file"
        assert h.tailer.resumed is False
        log.write_bytes(b"a1\n")
        assert await h.lines(1) == [b"a1"]
        assert h.batches[-1].history is False
        assert h.tailer.statistics().waiting_for is None


@pytest.mark.parametrize("watch", ["poll", "inotify"])
async def test_missing_directory_then_created(tmp_path: Path, autojump_clock: object,
                                              watch: str) -> None:
    log = tmp_path / "logs" / NAME
    async with tailing(log, watch=watch) as h:
        await h.caught_up()
        assert h.tailer.statistics().waiting_for == "directory"
        log.parent.mkdir()
        await settle()
        assert h.tailer.statistics().waiting_for == "file"
        log.write_bytes(b"a1\n")
        assert await h.lines(1) == [b"a1"]
        assert h.tailer.statistics().mode == watch
        if watch == "inotify":
            # The watch was set up once the directory appeared: no poll needed any more.
            h.tailer.set_poll_interval(1e6)
            t0 = trio.current_time()
            append(log, b"a2\n")
            assert await h.lines(1) == [b"a2"]
            assert trio.current_time() - t0 < 1


# ---------------------------------------------------------------------------- cold start


def _siblings(tmp_path: Path) -> list[bytes]:
    """Three rotated siblings whose mtime order differs from their name order, + the log."""
    names = ["coordination-events-2026-03.ndjson", "coordination-events-2026-01.ndjson",
             "coordination-events-2026-02.ndjson"]
    for i, name in enumerate(names):
        p = tmp_path / name
        p.write_bytes(numbered(f"s{i}-", 10))
        set_mtime(p, 1_000_000 + i * 100)
    log = tmp_path / NAME
    log.write_bytes(numbered("live", 10))
    (tmp_path / "coordination-events.ndjson.lock").write_bytes(b"not a log\n")
    (tmp_path / "other.ndjson").write_bytes(b"not ours\n")
    return [numbered(f"s{i}-", 10) for i in range(3)] + [numbered("live", 10)]


async def test_cold_start_reads_rotated_siblings_oldest_first(tmp_path: Path,
                                                              autojump_clock: object) -> None:
    contents = _siblings(tmp_path)
    async with tailing(tmp_path / NAME) as h:
        batches = await h.caught_up()
        assert h.tailer.resumed is False
    assert b"".join(b + b"\n" for b in lines_of(batches)) == b"".join(contents)
    assert all(b.history for b in batches)
    assert [b.caught_up for b in batches].count(True) == 1 and batches[-1].caught_up


async def test_cold_start_without_rotated_siblings(tmp_path: Path,
                                                   autojump_clock: object) -> None:
    _siblings(tmp_path)
    async with tailing(tmp_path / NAME, read_rotated=False) as h:
        batches = await h.caught_up()
    assert parsed(lines_of(batches)) == [f"live{i}" for i in range(1, 11)]


async def test_history_limit_keeps_the_newest_lines(tmp_path: Path,
                                                    autojump_clock: object) -> None:
    _siblings(tmp_path)
    async with tailing(tmp_path / NAME, history_limit=15) as h:
        batches = await h.caught_up()
    assert parsed(lines_of(batches)) == (
        [f"s2-{i}" for i in range(6, 11)] + [f"live{i}" for i in range(1, 11)])


async def test_history_limit_skips_old_files_without_reading_them(
        tmp_path: Path, autojump_clock: object) -> None:
    # The oldest sibling is 8 GiB of zeros (sparse): reading it would take ages and show
    # up as a skipped too-long line.
    _siblings(tmp_path)
    huge = tmp_path / "coordination-events-2025-12.ndjson"
    with huge.open("wb") as f:
        f.truncate(8 << 30)
    set_mtime(huge, 1_000)
    async with tailing(tmp_path / NAME, history_limit=25) as h:
        batches = await h.caught_up()
        assert h.tailer.statistics().skipped == {}
    assert parsed(lines_of(batches))[:2] == ["s1-6", "s1-7"]
    assert len(lines_of(batches)) == 25


async def test_history_limit_zero(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(numbered("a", 5) + b'{"n":"part')
    async with tailing(log, history_limit=0) as h:
        (marker,) = await h.caught_up()
        assert marker.lines == []
        append(log, b'ial"}\n')
        assert parsed(await h.lines(1)) == ["partial"]


# ---------------------------------------------------------------------------- resume


async def test_resume_splits_history_and_new(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    data = numbered("a", 10)
    log.write_bytes(data)
    cut = data.index(b'{"n":"a7"}')
    cp = Checkpoint(fid_of(log), cut, 106, "ep")
    async with tailing(log, checkpoint=cp) as h:
        batches = await h.caught_up()
        assert h.tailer.resumed is True
    hist = [b for b in batches if b.history]
    new = [b for b in batches if not b.history]
    assert parsed(lines_of(hist)) == [f"a{i}" for i in range(1, 7)]
    assert parsed(lines_of(new)) == [f"a{i}" for i in range(7, 11)]
    assert batches.index(hist[-1]) < batches.index(new[0])  # never interleaved
    assert hist[-1].end_offset == cut


async def test_resume_with_history_limit(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    data = numbered("a", 10)
    log.write_bytes(data)
    cp = Checkpoint(fid_of(log), data.index(b'{"n":"a7"}'), 6, "ep")
    async with tailing(log, checkpoint=cp, history_limit=2) as h:
        batches = await h.caught_up()
    assert [(parsed(b.lines), b.history) for b in batches if b.lines] == [
        (["a5", "a6"], True), ([f"a{i}" for i in range(7, 11)], False)]


async def test_resume_at_the_end_sends_an_empty_caught_up(tmp_path: Path,
                                                          autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(numbered("a", 3))
    cp = Checkpoint(fid_of(log), log.stat().st_size, 3, "ep")
    async with tailing(log, checkpoint=cp, history_limit=0) as h:
        (marker,) = await h.caught_up()
        assert marker.lines == [] and marker.end_offset == cp.offset
        assert marker.file.ino == cp.file.ino
        append(log, numbered("a", 1, start=4))
        assert parsed(await h.lines(1)) == ["a4"]
        assert h.batches[-1].history is False


async def test_resume_after_rotation_while_down(tmp_path: Path, autojump_clock: object) -> None:
    old = tmp_path / "coordination-events-2026-01.ndjson"
    old.write_bytes(numbered("o", 3))
    set_mtime(old, 1_000)
    log = tmp_path / NAME
    log.write_bytes(numbered("a", 6))
    cp = Checkpoint(fid_of(log), log.stat().st_size - len(numbered("a", 2, start=5)), 40, "ep")
    # While the daemon is down: more lines, rotation, a new live file.
    append(log, numbered("a", 2, start=7))
    rotated = tmp_path / "coordination-events-2026-02.ndjson"
    os.rename(log, rotated)
    set_mtime(rotated, 2_000)
    log.write_bytes(numbered("b", 3))
    async with tailing(log, checkpoint=cp) as h:
        batches = await h.caught_up()
        assert h.tailer.resumed is True
    assert parsed(lines_of([b for b in batches if b.history])) == (
        ["o1", "o2", "o3", "a1", "a2", "a3", "a4"])
    assert parsed(lines_of([b for b in batches if not b.history])) == (
        ["a5", "a6", "a7", "a8", "b1", "b2", "b3"])


async def test_resume_in_a_sibling_without_reading_rotated_history(
        tmp_path: Path, autojump_clock: object) -> None:
    # read_rotated=False: no history from siblings, but the lines after the checkpoint
    # in a sibling are new data and still handed on.
    log = tmp_path / NAME
    log.write_bytes(numbered("a", 4))
    cp = Checkpoint(fid_of(log), len(numbered("a", 2)), 2, "ep")
    os.rename(log, tmp_path / "coordination-events-1.ndjson")
    log.write_bytes(numbered("b", 2))
    async with tailing(log, checkpoint=cp, read_rotated=False) as h:
        batches = await h.caught_up()
        assert h.tailer.resumed is True
    assert not any(b.history for b in batches)
    assert parsed(lines_of(batches)) == ["a3", "a4", "b1", "b2"]


async def test_no_live_file_and_no_rotated_history(tmp_path: Path,
                                                   autojump_clock: object) -> None:
    (tmp_path / "coordination-events-1.ndjson").write_bytes(numbered("a", 3))
    log = tmp_path / NAME
    async with tailing(log, read_rotated=False) as h:
        (marker,) = await h.caught_up()
        assert marker.lines == [] and marker.file == NO_FILE
        log.write_bytes(numbered("b", 1))
        assert parsed(await h.lines(1)) == ["b1"]


async def test_checkpoint_of_a_vanished_file_reads_everything_as_history(
        tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(numbered("a", 4))
    cp = Checkpoint(fid_of(log), 11, 1, "ep")
    log.unlink()
    log.write_bytes(numbered("b", 4))
    async with tailing(log, checkpoint=cp) as h:
        batches = await h.caught_up()
        assert h.tailer.resumed is False
    assert all(b.history for b in batches)
    assert parsed(lines_of(batches)) == ["b1", "b2", "b3", "b4"]


async def test_checkpoint_of_a_rewritten_file_is_not_trusted(tmp_path: Path,
                                                             autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(numbered("a", 4))
    cp = Checkpoint(fid_of(log), 11, 1, "ep")
    with log.open("r+b") as f:  # same inode, different content (copytruncate while down)
        f.truncate(0)
        f.write(numbered("b", 4))
    async with tailing(log, checkpoint=cp) as h:
        batches = await h.caught_up()
        assert h.tailer.resumed is False
    assert all(b.history for b in batches)


# ---------------------------------------------------------------------------- watching


async def test_inotify_delivers_without_polling(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"")
    async with tailing(log, watch="auto", poll_interval=1e6) as h:
        await h.caught_up()
        assert h.tailer.statistics().mode == "inotify"
        t0 = trio.current_time()
        append(log, b"a1\n")
        assert await h.lines(1) == [b"a1"]
        assert trio.current_time() - t0 < 1  # the poll would have come after 1e6 s


async def test_inotify_ignores_other_files_in_the_directory(tmp_path: Path,
                                                            autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"")
    async with tailing(log, watch="inotify", poll_interval=1e6) as h:
        await h.caught_up()
        await trio.sleep(1)
        before = h.tailer.statistics().last_progress
        for i in range(50):
            (tmp_path / f"continuation_{i}.lock").write_bytes(b"x")
            (tmp_path / f"continuation_{i}.lock").unlink()
        await trio.sleep(1)
        assert h.tailer.statistics().last_progress == before  # no check was triggered
        append(log, b"a1\n")
        assert await h.lines(1) == [b"a1"]
        assert h.tailer.statistics().last_progress > before


async def test_falls_back_to_polling_when_inotify_is_unavailable(
        tmp_path: Path, autojump_clock: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: object, **kw: object) -> inotify_mod.DirWatch:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(inotify_mod, "open_dir_watch", unavailable)
    log = tmp_path / NAME
    log.write_bytes(b"")
    async with tailing(log, watch="auto") as h:
        await h.caught_up()
        stats = h.tailer.statistics()
        assert stats.mode == "poll" and stats.inotify_fallbacks == 1
        append(log, b"a1\n")
        assert await h.lines(1) == [b"a1"]


async def test_inotify_required_but_unavailable_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: object, **kw: object) -> inotify_mod.DirWatch:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(inotify_mod, "open_dir_watch", unavailable)
    send, _ = trio.open_memory_channel[LineBatch](1)
    with pytest.raises(OSError, match="not implemented"):
        await Tailer(tmp_path / NAME, watch="inotify").run(send)


class OverflowingWatch:
    """A DirWatch fake on a pipe: readable when the test says so, then reports overflow."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.watching = True
        self.closed = False

    def fileno(self) -> int:
        return self.r

    def try_add(self) -> bool:
        return True

    def read_events(self) -> inotify_mod.DirEvents:
        os.read(self.r, 100)
        return inotify_mod.DirEvents(overflow=True)

    def close(self) -> None:
        self.closed = True
        os.close(self.r)
        os.close(self.w)


async def test_falls_back_to_polling_on_queue_overflow(
        tmp_path: Path, autojump_clock: object, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = OverflowingWatch()
    monkeypatch.setattr(inotify_mod, "open_dir_watch", lambda *a, **k: fake)
    log = tmp_path / NAME
    log.write_bytes(b"")
    async with tailing(log, watch="inotify", poll_interval=10) as h:
        await h.caught_up()
        assert h.tailer.statistics().mode == "inotify"
        append(log, b"a1\n")
        os.write(fake.w, b"!")
        assert await h.lines(1) == [b"a1"]
        stats = h.tailer.statistics()
        assert stats.mode == "poll" and stats.inotify_fallbacks == 1 and fake.closed
        append(log, b"a2\n")  # and polling keeps delivering
        assert await h.lines(1) == [b"a2"]


async def test_set_poll_interval_applies_to_the_wait_in_progress(
        tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"")
    async with tailing(log, poll_interval=1000) as h:
        await h.caught_up()
        t0 = trio.current_time()
        append(log, b"a1\n")
        await trio.sleep(1)
        h.tailer.set_poll_interval(2)
        assert await h.lines(1) == [b"a1"]
        assert trio.current_time() - t0 <= 2.001
        t1 = trio.current_time()
        append(log, b"a2\n")
        assert await h.lines(1) == [b"a2"]
        assert trio.current_time() - t1 <= 2.001


async def test_statistics_and_last_progress(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a1\na2\n")
    async with tailing(log) as h:
        await h.caught_up()
        await trio.sleep(3.5)
        stats = h.tailer.statistics()
        assert stats.mode == "poll" and stats.path == str(log)
        assert stats.lines == 2 and stats.bytes_read == 6 and stats.offset == 6
        assert stats.size == 6 and stats.lag_bytes == 0
        assert stats.file == fid_of(log)
        assert trio.current_time() - stats.last_progress <= POLL


async def test_run_closes_the_channel(tmp_path: Path, autojump_clock: object) -> None:
    log = tmp_path / NAME
    log.write_bytes(b"a\n")
    send, recv = trio.open_memory_channel[LineBatch](10)
    tailer = Tailer(log, watch="poll")
    async with trio.open_nursery() as nursery:
        await nursery.start(tailer.run, send)
        await recv.receive()
        nursery.cancel_scope.cancel()
    with pytest.raises(trio.EndOfChannel):
        await recv.receive()


def test_constructor_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="watch"):
        Tailer(tmp_path / NAME, watch="fanotify")
    with pytest.raises(ValueError):
        Tailer(tmp_path / NAME, poll_interval=0)
