"""Where the tailer got to: file identity, offset, sequence number and epoch, kept on disk.

A log file is identified by device + inode + a fingerprint of its first bytes (sha256 of
the first `fp_len` bytes, `fp_len = min(size, 1024)` when taken). The inode alone is not
enough: inode numbers are reused after a delete, and copytruncate keeps the inode while
replacing the content. A candidate matches a `FileId` when its device and inode are equal
and re-hashing its first `fp_len` bytes gives the same digest.

The checkpoint is a small JSON document, `checkpoint.json` in the state directory, written
atomically (`coordd.core.files.write_atomically`: temporary file in the same directory,
fsync, rename, fsync of the directory) so a crash leaves either the old or the new
checkpoint, never half of one.

No trio here: the pipeline calls `save_checkpoint` from a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from coordd.core.files import write_atomically
from coordd.errors import StateError

__all__ = [
    "CHECKPOINT_NAME",
    "FP_MAX",
    "STATE_DIR_MODE",
    "Checkpoint",
    "FileId",
    "checkpoint_from_json",
    "checkpoint_to_json",
    "file_id",
    "fingerprint",
    "load_checkpoint",
    "matches",
    "new_epoch",
    "read_checkpoint",
    "read_prefix",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

#: How many leading bytes of a file its fingerprint covers at most.
FP_MAX: Final = 1024
CHECKPOINT_NAME: Final = "checkpoint.json"
#: Mode of the state directory when the tail creates it (the checkpoint, the snapshot).
STATE_DIR_MODE: Final = 0o700
_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class FileId:
    """Identity of one log file: device, inode and a fingerprint of its first bytes."""

    dev: int
    ino: int
    fp_len: int
    fp_hash: str  # sha256 hex of the first fp_len bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A position in the log: everything up to `offset` in `file` was handed on and stored.

    `seq` is the sequence number of the last event stored from there, `epoch` names the
    sequence space.
    """

    file: FileId
    offset: int
    seq: int
    epoch: str


def fingerprint(prefix: bytes) -> str:
    """The fingerprint digest of a file's leading bytes."""
    return hashlib.sha256(prefix).hexdigest()


def read_prefix(fd: int, length: int = FP_MAX) -> bytes:
    """The first `length` bytes of the open file `fd` (fewer when the file is shorter)."""
    chunks: list[bytes] = []
    got = 0
    while got < length:
        chunk = os.pread(fd, length - got, got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def file_id(st: os.stat_result, prefix: bytes) -> FileId:
    """The `FileId` of a file from its stat result and its leading bytes (≤ FP_MAX)."""
    return FileId(st.st_dev, st.st_ino, len(prefix), fingerprint(prefix))


def matches(fid: FileId, fd: int, st: os.stat_result | None = None) -> bool:
    """Whether the open file `fd` is the file `fid` names (device, inode and fingerprint)."""
    if st is None:
        st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (fid.dev, fid.ino):
        return False
    prefix = read_prefix(fd, fid.fp_len)
    return len(prefix) == fid.fp_len and fingerprint(prefix) == fid.fp_hash


def new_epoch() -> str:
    """A fresh epoch name: short, random and URL-safe (11 characters)."""
    return secrets.token_urlsafe(8)


# ---------------------------------------------------------------------------- on disk


def checkpoint_to_json(cp: Checkpoint) -> bytes:
    doc = {
        "version": _FORMAT_VERSION,
        "file": {
            "dev": cp.file.dev,
            "ino": cp.file.ino,
            "fp_len": cp.file.fp_len,
            "fp_hash": cp.file.fp_hash,
        },
        "offset": cp.offset,
        "seq": cp.seq,
        "epoch": cp.epoch,
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii") + b"\n"


def _uint(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    # bool is an int subclass; a checkpoint saying `true` is corrupt, not 1.
    if type(value) is not int or value < 0:
        raise ValueError(f"{key!r} must be a non-negative integer, not {value!r}")
    return value


def checkpoint_from_json(raw: bytes) -> Checkpoint:
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("version") != _FORMAT_VERSION:
        raise ValueError(f"unknown format version {doc.get('version')!r}")
    fdoc = doc.get("file")
    if not isinstance(fdoc, dict):
        raise ValueError("'file' must be an object")
    fp_len = _uint(fdoc, "fp_len")
    if fp_len > FP_MAX:
        raise ValueError(f"'fp_len' {fp_len} exceeds {FP_MAX}")
    fp_hash = fdoc.get("fp_hash")
    if not isinstance(fp_hash, str) or len(fp_hash) != 64 or not _is_hex(fp_hash):
        raise ValueError("'fp_hash' must be 64 hex digits")
    epoch = doc.get("epoch")
    if not isinstance(epoch, str) or not epoch:
        raise ValueError("'epoch' must be a non-empty string")
    file = FileId(_uint(fdoc, "dev"), _uint(fdoc, "ino"), fp_len, fp_hash)
    return Checkpoint(file, _uint(doc, "offset"), _uint(doc, "seq"), epoch)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return text == text.lower()


def read_checkpoint(state_dir: Path) -> Checkpoint | None:
    """Read `checkpoint.json` without side effects (for `coordd --check`).

    None when missing; `ValueError` when corrupt; `OSError` when unreadable.
    """
    try:
        raw = (Path(state_dir) / CHECKPOINT_NAME).read_bytes()
    except FileNotFoundError:
        return None
    return checkpoint_from_json(raw)


def load_checkpoint(state_dir: Path) -> Checkpoint | None:
    """Read `checkpoint.json` from `state_dir`.

    A missing file (or directory) gives None. A corrupt one is logged, moved aside to
    `checkpoint.json.corrupt` (so an operator can look at it and the next save is not
    confused by it) and gives None. A checkpoint that exists but cannot be read at all
    (permissions, I/O error) raises `StateError`.
    """
    path = Path(state_dir) / CHECKPOINT_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the checkpoint {path}: {exc}") from exc
    try:
        return checkpoint_from_json(raw)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        aside = path.with_name(CHECKPOINT_NAME + ".corrupt")
        log.warning("checkpoint %s is corrupt (%s): moved to %s, starting without it",
                    path, exc, aside)
        try:
            os.replace(path, aside)
        except OSError as move_exc:
            log.warning("could not move the corrupt checkpoint aside: %s", move_exc)
        return None


def save_checkpoint(state_dir: Path, cp: Checkpoint) -> None:
    """Write `cp` to `state_dir/checkpoint.json` atomically (blocking: fsyncs twice).

    The state directory is created (mode 0700) when missing. Raises `StateError` when the
    checkpoint cannot be written; the previous checkpoint is then left untouched.
    """
    try:
        write_atomically(Path(state_dir) / CHECKPOINT_NAME, [checkpoint_to_json(cp)],
                         dir_mode=STATE_DIR_MODE)
    except OSError as exc:
        raise StateError(f"cannot write the checkpoint in {state_dir}: {exc}") from exc
