"""The checkpoint on disk and file identity (coordd.tail.checkpoint)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from coordd.errors import StateError
from coordd.tail.checkpoint import (
    CHECKPOINT_NAME,
    FP_MAX,
    Checkpoint,
    FileId,
    file_id,
    load_checkpoint,
    matches,
    new_epoch,
    read_checkpoint,
    read_prefix,
    save_checkpoint,
)


def _fid_of(path: Path) -> FileId:
    fd = os.open(path, os.O_RDONLY)
    try:
        return file_id(os.fstat(fd), read_prefix(fd))
    finally:
        os.close(fd)


def _matches(fid: FileId, path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return matches(fid, fd)
    finally:
        os.close(fd)


def _cp(path: Path, offset: int = 10, seq: int = 42, epoch: str = "e1") -> Checkpoint:
    return Checkpoint(_fid_of(path), offset, seq, epoch)


def test_round_trip(tmp_path: Path) -> None:
    log = tmp_path / "log.ndjson"
    log.write_bytes(b"x" * 3000)
    cp = _cp(log)
    assert cp.file.fp_len == FP_MAX  # capped at 1024 even for a longer file
    save_checkpoint(tmp_path / "state", cp)
    assert load_checkpoint(tmp_path / "state") == cp
    # Only the checkpoint itself is left behind: no temporary files.
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [CHECKPOINT_NAME]


def test_save_replaces_the_previous_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "log.ndjson"
    log.write_bytes(b"a\n")
    save_checkpoint(tmp_path, _cp(log, offset=1, seq=1))
    save_checkpoint(tmp_path, _cp(log, offset=2, seq=2))
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None and (loaded.offset, loaded.seq) == (2, 2)


def test_missing_checkpoint_and_missing_directory(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path) is None
    assert load_checkpoint(tmp_path / "nope") is None


def test_failed_write_keeps_the_old_checkpoint(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log.ndjson"
    log.write_bytes(b"a\n")
    old = _cp(log, seq=1)
    save_checkpoint(tmp_path, old)

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StateError, match="cannot write the checkpoint"):
        save_checkpoint(tmp_path, _cp(log, seq=2))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path) == old
    # The half-done temporary file was removed.
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME, "log.ndjson"]


def test_unusable_state_dir_is_a_state_error(tmp_path: Path) -> None:
    log = tmp_path / "log.ndjson"
    log.write_bytes(b"a\n")
    blocker = tmp_path / "state"
    blocker.write_text("a file, not a directory")
    with pytest.raises(StateError):
        save_checkpoint(blocker, _cp(log))


def test_the_file_on_disk_is_json_a_human_can_read(tmp_path: Path) -> None:
    log = tmp_path / "log.ndjson"
    log.write_bytes(b"a\n")
    cp = _cp(log, offset=2, seq=7, epoch="abc")
    save_checkpoint(tmp_path, cp)
    doc = json.loads((tmp_path / CHECKPOINT_NAME).read_text())
    assert doc["offset"] == 2 and doc["seq"] == 7 and doc["epoch"] == "abc"
    assert doc["file"]["ino"] == cp.file.ino and doc["file"]["fp_hash"] == cp.file.fp_hash


@pytest.mark.parametrize("content", [
    b"",
    b"{not json",
    b"[]",
    b'{"version": 1}',
    b'{"version": 99, "file": {}, "offset": 0, "seq": 0, "epoch": "e"}',
    b'{"version": 1, "file": {"dev": 1, "ino": 2, "fp_len": 3, "fp_hash": "zz"},'
    b' "offset": 0, "seq": 0, "epoch": "e"}',
    b'{"version": 1, "file": {"dev": 1, "ino": 2, "fp_len": 3, "fp_hash": "' + b"a" * 64 + b'"},'
    b' "offset": -1, "seq": 0, "epoch": "e"}',
    b'{"version": 1, "file": {"dev": 1, "ino": 2, "fp_len": 3, "fp_hash": "' + b"a" * 64 + b'"},'
    b' "offset": true, "seq": 0, "epoch": "e"}',
    b'{"version": 1, "file": {"dev": 1, "ino": 2, "fp_len": 3, "fp_hash": "' + b"a" * 64 + b'"},'
    b' "offset": 0, "seq": 0, "epoch": ""}',
    b"\xff\xfe garbage",
])
def test_corrupt_checkpoint_is_moved_aside(tmp_path: Path, content: bytes,
                                           caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / CHECKPOINT_NAME).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="coordd.tail.checkpoint"):
        assert load_checkpoint(tmp_path) is None
    assert "corrupt" in caplog.text
    assert not (tmp_path / CHECKPOINT_NAME).exists()
    assert (tmp_path / (CHECKPOINT_NAME + ".corrupt")).read_bytes() == content
    # And the next start is clean.
    assert load_checkpoint(tmp_path) is None


def test_valid_hand_written_checkpoint_loads(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_NAME).write_text(json.dumps({
        "version": 1, "file": {"dev": 1, "ino": 2, "fp_len": 3, "fp_hash": "ab" * 32},
        "offset": 5, "seq": 9, "epoch": "E"}))
    assert load_checkpoint(tmp_path) == Checkpoint(FileId(1, 2, 3, "ab" * 32), 5, 9, "E")


def test_identity_matches_the_same_file_only(tmp_path: Path) -> None:
    log = tmp_path / "log.ndjson"
    log.write_bytes(b'{"type":"a"}\n')
    fid = _fid_of(log)
    assert fid.fp_len == 13
    with log.open("ab") as f:  # growing does not change identity
        f.write(b'{"type":"b"}\n')
    assert _matches(fid, log)
    # Same inode, rewritten content (copytruncate refilled): no match.
    with log.open("r+b") as f:
        f.write(b'{"type":"X"}\n')
    assert not _matches(fid, log)
    # Same content, another inode: no match.
    other = tmp_path / "other.ndjson"
    other.write_bytes(b'{"type":"a"}\n')
    assert not _matches(fid, other)


def test_identity_of_a_file_shorter_than_its_fingerprint(tmp_path: Path) -> None:
    log = tmp_path / "log.ndjson"
    log.write_bytes(b"abcdef")
    fid = _fid_of(log)
    os.truncate(log, 3)
    assert not _matches(fid, log)


def test_new_epoch_is_short_random_and_url_safe() -> None:
    epochs = {new_epoch() for _ in range(200)}
    assert len(epochs) == 200
    for e in epochs:
        assert 8 <= len(e) <= 16
        assert set(e) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_read_checkpoint_has_no_side_effects(tmp_path: Path) -> None:
    # The --check probe's reader: corrupt is an error for the caller, nothing is moved.
    assert read_checkpoint(tmp_path) is None
    log = tmp_path / "log.ndjson"
    log.write_bytes(b"a\n")
    cp = _cp(log)
    save_checkpoint(tmp_path, cp)
    assert read_checkpoint(tmp_path) == cp
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"{broken")
    with pytest.raises(ValueError):
        read_checkpoint(tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == b"{broken"
