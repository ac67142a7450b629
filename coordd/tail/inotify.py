"""A non-blocking inotify watch on the log's directory, for the tailer.

The directory is watched rather than the file, so that rotation (rename + create), deletion
and re-creation are all seen through one watch that outlives any single file. The watch is
read without a thread: the tailer waits with `trio.lowlevel.wait_readable(watch.fileno())`
and then calls `read_events()`, which never blocks.

No trio import here: this is plain Linux glue around `inotify_simple`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["DIR_MASK", "DirEvents", "DirWatch", "open_dir_watch"]

try:  # inotify_simple is Linux-only (see the platform marker in pyproject.toml)
    import inotify_simple as _ins
except ImportError:  # pragma: no cover - exercised on non-Linux systems only
    _ins = None

# Numeric values from <sys/inotify.h>; they are part of the kernel ABI.
_IN_MODIFY: Final = 0x00000002
_IN_ATTRIB: Final = 0x00000004
_IN_CLOSE_WRITE: Final = 0x00000008
_IN_MOVED_FROM: Final = 0x00000040
_IN_MOVED_TO: Final = 0x00000080
_IN_CREATE: Final = 0x00000100
_IN_DELETE: Final = 0x00000200
_IN_DELETE_SELF: Final = 0x00000400
_IN_MOVE_SELF: Final = 0x00000800
_IN_UNMOUNT: Final = 0x00002000
_IN_Q_OVERFLOW: Final = 0x00004000
_IN_IGNORED: Final = 0x00008000
_IN_ONLYDIR: Final = 0x01000000

#: What the directory watch asks for: content changes, truncation (MODIFY/ATTRIB),
#: rotation and deletion of entries, and the directory itself going away.
DIR_MASK: Final = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO
                   | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR)
_DIR_GONE: Final = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_IGNORED


@dataclass(slots=True)
class DirEvents:
    """What one `read_events()` call found, reduced to what the tailer acts on."""

    relevant: bool = False  # something happened to a file the tailer cares about
    overflow: bool = False  # the kernel queue overflowed: events were lost
    dir_gone: bool = False  # the watched directory was deleted, moved or unmounted


class DirWatch:
    """An inotify instance watching one directory, filtered to the names that matter.

    `names` are exact base names to react to; `prefix`/`suffix` describe a family of names
    (the rotated siblings, which keep receiving late writes right after a rotation).
    Every other name in the directory (lock files and the like) is dropped with two string
    comparisons, without waking the tailer.
    """

    def __init__(self, directory: Path, *, names: frozenset[str], prefix: str,
                 suffix: str) -> None:
        if _ins is None:
            raise OSError("inotify is not available on this platform")
        self.directory = directory
        self._names = names
        self._prefix = prefix
        self._suffix = suffix
        self._inotify = _ins.INotify(nonblocking=True)
        self._wd: int | None = None

    @property
    def watching(self) -> bool:
        """Whether the directory watch is in place (False while the directory is missing)."""
        return self._wd is not None

    def fileno(self) -> int:
        """The inotify file descriptor, to wait on for readability."""
        fd: int = self._inotify.fileno()
        return fd

    def try_add(self) -> bool:
        """Watch the directory if it exists; False when it does not (yet)."""
        if self._wd is not None:
            return True
        try:
            self._wd = int(self._inotify.add_watch(self.directory, DIR_MASK))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def read_events(self) -> DirEvents:
        """Drain the queued events without blocking and summarise them."""
        out = DirEvents()
        fd = self._inotify.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            for ev in _ins.parse_events(data):
                if ev.mask & _IN_Q_OVERFLOW:
                    out.overflow = True
                elif ev.wd == self._wd and not ev.name and ev.mask & _DIR_GONE:
                    out.dir_gone = True
                    self._wd = None
                    if ev.mask & _IN_MOVE_SELF:
                        # A moved directory stays watched under its new name: drop that
                        # watch, the path is watched again once it exists.
                        with contextlib.suppress(OSError):
                            self._inotify.rm_watch(ev.wd)
                elif ev.name in self._names or (
                    ev.name.startswith(self._prefix) and ev.name.endswith(self._suffix)
                ):
                    out.relevant = True
        return out

    def close(self) -> None:
        """Release the inotify instance."""
        self._inotify.close()


def open_dir_watch(directory: Path, *, names: frozenset[str], prefix: str,
                   suffix: str) -> DirWatch:
    """Create a `DirWatch` (the watch itself is added by `try_add`).

    Raises `OSError` when inotify cannot be used (other platform, instance limit reached).
    Tests replace this function to simulate those failures.
    """
    return DirWatch(directory, names=names, prefix=prefix, suffix=suffix)
