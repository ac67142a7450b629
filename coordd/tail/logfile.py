"""Log files for the tailer: line-safe reading of one file, and planning the cold start.

Sans-I/O in the trio sense (no trio import): plain blocking `os.pread` on an open file
descriptor, so the same code serves the cold read, the live tail and the tests.

`LogFile.read()` hands out complete lines only. Bytes after the last newline stay in
`partial` until their newline arrives, however many reads that takes, and `offset` only ever
moves past a complete line (the old monitor lost a partial last line, and the
bytes appended between its read and its stat). A line longer than `max_line_bytes` is dropped
as soon as that is known, without buffering the rest of it: the reader then skips bytes up
to the next newline, so the following line is intact.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from coordd.tail.checkpoint import FP_MAX, Checkpoint, FileId, file_id, matches, read_prefix

__all__ = [
    "MAX_BATCH_LINES",
    "REPLACED",
    "SAME",
    "SHRUNK",
    "Candidate",
    "LogFile",
    "ReadResult",
    "candidates",
    "history_start",
    "list_siblings",
    "open_log",
    "resume_position",
    "resumes_from",
    "scan_back",
    "sibling_pattern",
]

_ENDS_KEPT: Final = 256
SAME: Final = "same"
SHRUNK: Final = "shrunk"
REPLACED: Final = "replaced"

#: Most lines one read may produce, so a batch never holds more (downstream stays responsive
#: even for a log of tiny lines).
MAX_BATCH_LINES: Final = 10_000


@dataclass(slots=True)
class ReadResult:
    """What one `LogFile.read()` produced."""

    lines: list[bytes]  # complete lines, newline removed
    nbytes: int  # bytes consumed from the file
    too_long: int  # lines dropped for exceeding max_line_bytes
    eof: bool  # the read reached the end of the file


class LogFile:
    """An open log file and how far it has been read.

    `offset` is just past the last complete line handed out; `read_pos` is how far the file
    has been read (`read_pos - offset` bytes sit in `partial`, or are being skipped when
    `skipping` is set). Lines that end at or before `hist_end` are history: reads never
    cross `hist_end`, so every read is entirely history or entirely new.
    """

    __slots__ = ("dev", "ends", "fd", "fid", "hist_end", "ino", "last_growth", "offset",
                 "partial", "path", "prefix", "read_pos", "size", "skipping")

    def __init__(self, fd: int, path: Path, st: os.stat_result) -> None:
        self.fd = fd
        self.path = path
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.size = st.st_size
        self.prefix = read_prefix(fd)
        self.fid: FileId = file_id(st, self.prefix)
        self.offset = 0
        self.read_pos = 0
        self.partial = bytearray()
        self.skipping = False
        self.hist_end: float = 0
        self.last_growth = 0.0  # trio time of the last growth, used once retired
        # (end offset, length, crc32 of line + newline) of the last line of recent reads:
        # the points an in-place cut can resume from.
        self.ends: deque[tuple[int, int, int]] = deque(maxlen=_ENDS_KEPT)

    def same_inode(self, st: os.stat_result) -> bool:
        """Whether `st` (a stat of the log's path) describes this open file."""
        return st.st_dev == self.dev and st.st_ino == self.ino

    def seek(self, offset: int) -> None:
        """Start reading at `offset`, which must be the start of a line."""
        self.offset = self.read_pos = offset
        self.partial.clear()
        self.skipping = False
        while self.ends and self.ends[-1][0] > offset:
            self.ends.pop()

    def check(self) -> str:
        """Re-stat and re-fingerprint: `SAME`, `SHRUNK` or `REPLACED`.

        `REPLACED`: the first bytes changed (or are gone) at an unchanged inode, which is a
        truncation, usually a copytruncate, possibly refilled past our position before we
        looked. `SHRUNK`: the file is shorter than what was read but still starts with the
        same bytes, so it was cut in place and what precedes the cut was already read.
        While the file is shorter than FP_MAX the fingerprint grows with it.
        """
        st = os.fstat(self.fd)
        self.size = st.st_size
        n = len(self.prefix)
        if n < FP_MAX and st.st_size > n:
            head = read_prefix(self.fd)
            if head[:n] != self.prefix:
                return REPLACED
            self.prefix = head
            self.fid = file_id(st, head)
        elif n and read_prefix(self.fd, n) != self.prefix:
            return REPLACED
        return SHRUNK if st.st_size < self.read_pos else SAME

    def restart(self) -> int:
        """Start over at 0 after the content was replaced; returns partial bytes dropped."""
        dropped = self.read_pos - self.offset
        st = os.fstat(self.fd)
        self.size = st.st_size
        self.prefix = read_prefix(self.fd)
        self.fid = file_id(st, self.prefix)
        self.seek(0)
        self.hist_end = 0  # everything in the new content is new
        return dropped

    def cut(self) -> bool:
        """Continue after the file was cut in place (shorter, same first bytes).

        The cut point itself is unknown once the writer has appended again, so reading
        resumes at the last recorded line end that is still intact on disk (its line is
        still there, byte for byte): nothing before it is handed on again and nothing
        after it is lost. Line ends are recorded once per read, so at most one read's worth
        of lines can come twice; True when no recorded end survived and reading restarts at
        0 (everything already handed on may then come again).
        """
        while self.ends:
            end, length, crc = self.ends[-1]
            if end <= self.size:
                blob = os.pread(self.fd, length + 1, end - length - 1)
                if blob[-1:] == b"\n" and len(blob) == length + 1 and \
                        zlib.crc32(blob, 0) == crc:
                    self.seek(end)
                    self.hist_end = min(self.hist_end, end)
                    return False
            self.ends.pop()
        self.seek(0)
        self.hist_end = 0
        return True

    def _learn_prefix(self, start: int, data: bytes) -> None:
        """Extend the short fingerprint prefix with bytes just read at `start`.

        `check()` compares the file's first bytes with `prefix`. Bytes read after the last
        check (a partial line, say) must be in it too: otherwise a file cut to 0 and
        refilled past the read position looks as if it had only grown, and the new
        content would be glued to the buffered partial line. `fid` (what checkpoints
        name) is left as it was: the next `check()` brings it up to date.
        """
        have = len(self.prefix)
        if have < FP_MAX and start <= have < start + len(data):
            self.prefix += data[have - start : FP_MAX - start]

    def read(self, read_size: int, max_line_bytes: int) -> ReadResult:
        """Read up to `read_size` bytes at `read_pos` and return the lines they complete."""
        start = self.read_pos
        want = read_size
        if start < self.hist_end:
            want = int(min(want, self.hist_end - start))
        data = os.pread(self.fd, want, start)
        eof = len(data) < want
        if not data:
            return ReadResult([], 0, 0, eof)
        n = len(data)
        parts = data.split(b"\n")
        if len(parts) > MAX_BATCH_LINES + 1:
            # Consume only the first MAX_BATCH_LINES lines; the rest is read again next time
            # (from the page cache), which keeps each batch bounded without tracking offsets.
            n = sum(map(len, parts[:MAX_BATCH_LINES])) + MAX_BATCH_LINES
            del parts[MAX_BATCH_LINES:]
            parts.append(b"")
            eof = False
        self.read_pos = start + n
        if self.read_pos > self.size:
            self.size = self.read_pos
        self._learn_prefix(start, data[:n])
        tail = parts.pop()
        too_long = 0
        if parts:
            if self.skipping:
                # The end of a line already counted as too long.
                del parts[0]
                self.skipping = False
            elif self.partial:
                if len(self.partial) + len(parts[0]) > max_line_bytes:
                    del parts[0]
                    too_long += 1
                else:
                    self.partial += parts[0]
                    parts[0] = bytes(self.partial)
                self.partial.clear()
            # Only a read longer than the limit can contain a too-long line of its own.
            if n > max_line_bytes:
                kept = [p for p in parts if len(p) <= max_line_bytes]
                too_long += len(parts) - len(kept)
                parts = kept
            self.offset = self.read_pos - len(tail)
            if parts:
                last = parts[-1]
                self.ends.append((self.offset, len(last), zlib.crc32(b"\n", zlib.crc32(last))))
        if tail and not self.skipping:
            if len(self.partial) + len(tail) > max_line_bytes:
                self.partial.clear()
                self.skipping = True
                too_long += 1
            else:
                self.partial += tail
        return ReadResult(parts, n, too_long, eof)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self.fd)


def open_log(path: Path, expect: os.stat_result | None = None) -> LogFile | None:
    """Open `path` for reading; None when it does not exist (or is not the file expected).

    With `expect`, the file opened must have that stat's device and inode: a name that now
    points elsewhere (the listing raced with a rotation) counts as missing.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        st = os.fstat(fd)
        if expect is not None and (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino):
            os.close(fd)
            return None
        return LogFile(fd, path, st)
    except BaseException:
        os.close(fd)
        raise


def sibling_pattern(path: Path) -> tuple[str, str]:
    """The (prefix, suffix) of rotated siblings' names: `name-<anything>.ndjson`."""
    return path.stem + "-", path.suffix


def list_siblings(path: Path) -> list[tuple[Path, os.stat_result]]:
    """The rotated siblings of `path` (regular files), oldest first: by mtime, then name."""
    prefix, suffix = sibling_pattern(path)
    found: list[tuple[int, str, Path, os.stat_result]] = []
    try:
        entries = list(os.scandir(path.parent))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        name = entry.name
        if (len(name) > len(prefix) + len(suffix) and name.startswith(prefix)
                and name.endswith(suffix)):
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if entry.is_file():
                found.append((st.st_mtime_ns, name, Path(entry.path), st))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(p, st) for _, _, p, st in found]


def scan_back(fd: int, end: int, need: int, chunk: int = 1 << 20) -> tuple[int, int]:
    """Find where the last `need` complete lines before `end` start, reading backwards.

    Returns (start, count): `start` is 0 when the file holds `count` ≤ `need` lines before
    `end`, otherwise the offset of the first of exactly `need` lines. Only the bytes that
    hold those lines are read, so skipping a long history is cheap.
    """
    count = 0
    pos = end
    buf = bytearray(min(chunk, end))  # reused: a fresh buffer per read costs page faults
    view = memoryview(buf)
    while pos > 0:
        lo = max(0, pos - chunk)
        want = pos - lo
        got = os.preadv(fd, [view[:want]], lo)
        if got < want:  # shrank under us: count what is there
            pos = lo + got
            continue
        found = buf.count(b"\n", 0, want)
        if count + found > need:
            idx = want
            for _ in range(need - count + 1):
                idx = buf.rfind(b"\n", 0, idx)
            return lo + idx + 1, need
        count += found
        pos = lo
    return 0, count



# ---------------------------------------------------------------------------- cold start


@dataclass(slots=True)
class Candidate:
    """A file the cold start may read, opened only when it has to be."""

    path: Path
    st: os.stat_result
    lf: LogFile | None = None
    live: bool = False

    def open(self) -> LogFile | None:
        """The open file (opened now if needed); None when it is gone."""
        if self.lf is None:
            self.lf = open_log(self.path, expect=self.st)
        return self.lf

    def size(self) -> int:
        """Its size: as opened, or as listed."""
        return self.lf.size if self.lf is not None else self.st.st_size


def candidates(path: Path) -> list[Candidate]:
    """The rotated siblings of `path`, oldest first, then the live file itself.

    The live file is opened before the directory is listed, so a rotation during the
    listing shows the renamed file once, as the live one.
    """
    live = open_log(path)
    cands = [Candidate(p, st) for p, st in list_siblings(path)
             if live is None or not live.same_inode(st)]
    if live is not None:
        cands.append(Candidate(path, os.fstat(live.fd), live, live=True))
    return cands


def resume_position(cands: list[Candidate], cp: Checkpoint | None) -> tuple[int, int | None]:
    """Where history ends: (file index, offset). The offset is None when the checkpoint's
    file is not among `cands` (history then runs to the end of the last file)."""
    if cp is not None:
        for i, c in enumerate(cands):
            if (c.st.st_dev, c.st.st_ino) != (cp.file.dev, cp.file.ino):
                continue
            lf = c.open()
            if lf is not None and lf.size >= cp.offset and matches(cp.file, lf.fd):
                return i, cp.offset
            break
    return len(cands) - 1, None


def history_start(cands: list[Candidate], pos_idx: int, pos_off: int | None, *,
                  read_rotated: bool, history_limit: int, chunk: int) -> tuple[int, int]:
    """Where the initial read starts: (file index, offset) of the first of the newest
    `history_limit` complete lines before the position, found by counting newlines
    backwards, so that older files are never read at all."""
    if pos_idx < 0:
        return 0, 0
    first = 0
    if not read_rotated:
        if not cands[pos_idx].live:
            # History would come from siblings only: none. After a checkpoint in a
            # sibling, its rest and the newer files are new lines, still read.
            return (pos_idx, pos_off) if pos_off is not None else (len(cands), 0)
        first = pos_idx
    need = history_limit
    sizes = [c.size() for c in cands[first:pos_idx + 1]]
    if pos_off is not None:
        sizes[-1] = pos_off
    if sum(sizes) <= need:
        return first, 0  # fewer bytes than lines allowed: nothing to count
    for i in range(pos_idx, first - 1, -1):
        lf = cands[i].open()
        if lf is None:
            continue
        start, count = scan_back(lf.fd, sizes[i - first], need, chunk)
        if start > 0:
            return i, start
        need -= count
        if need <= 0:
            return i, 0
    return first, 0


def resumes_from(path: Path, cp: Checkpoint) -> bool:
    """Whether a tailer of `path` will resume from `cp` (its file is still there,
    unchanged): the same test the tailer makes, done early so that a warm start (from
    MongoDB or a snapshot) that could not be used loads nothing."""
    cands = candidates(path)
    try:
        return resume_position(cands, cp)[1] is not None
    finally:
        for c in cands:
            if c.lf is not None:
                c.lf.close()
