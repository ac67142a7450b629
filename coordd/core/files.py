"""Plain, synchronous file I/O shared by the layers: the one atomic file write.

No trio here: callers that must not block the event loop run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, parts: Iterable[bytes], *, dir_mode: int = 0o777) -> None:
    """Replace `path` with `parts`, concatenated, so that a crash leaves the old file or
    the new one, never half of one: a temporary file in the same directory
    (`.<name>.<random>.tmp`), fsynced, renamed over `path`, then the directory fsynced so
    that the rename itself is durable.

    The directory is created when missing (with `dir_mode`, less the umask). Raises
    `OSError` when the file cannot be written; the temporary file is removed then. The
    directory's fsync comes after the rename, when the new file is in place: a filesystem
    that refuses it (some cannot fsync a directory) does not make the write fail.
    """
    directory = path.parent
    tmp_name: str | None = None
    try:
        directory.mkdir(mode=dir_mode, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
        tmp_name = None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
