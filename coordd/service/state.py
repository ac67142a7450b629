"""The files a daemon keeps beside its state: the state and log directories, the old
monitor's overrides file, the shutdown snapshot.

Called by `coordd.service.service` at start (the directories, the legacy overrides, the
snapshot read in a worker thread) and after a clean stop (the snapshot written).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from coordd.core.event import Event
from coordd.core.overrides import Overrides, adopt_legacy_file
from coordd.errors import StateError
from coordd.tail.checkpoint import Checkpoint
from coordd.tail.logfile import resumes_from
from coordd.tail.snapshot import read_snapshot, write_snapshot

__all__ = ["adopt_legacy_overrides", "load_snapshot", "prepare_log_dir", "prepare_state_dir",
           "save_snapshot"]

log = logging.getLogger(__name__)


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory (`StateError` when it cannot be)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StateError(f"cannot create the state directory {state_dir}: "
                         f"{e.strerror or e}") from e


def prepare_log_dir(log_path: Path) -> None:
    """Create the log's directory when it is missing (a fresh machine), so that the
    gateway, or a first `echo >>`, can write the log there; the tailer waits for the file
    itself. A directory that cannot be created is waited for instead."""
    directory = log_path.parent
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("the log directory %s does not exist and cannot be created (%s); "
                    "waiting for it to appear", directory, e.strerror or e)
        return
    log.info("created the log directory %s (it did not exist); waiting for the log "
             "to be written there", directory)


def adopt_legacy_overrides(overrides: Overrides, legacy: Path | None) -> None:
    """Copy the old monitor's overrides file into the state directory, once: when the
    overrides use the default location there and no file exists there yet."""
    path = overrides.path
    if legacy is None or path is None:
        return
    try:
        copied = adopt_legacy_file(path, legacy)
    except OSError as e:
        log.warning("category overrides: cannot copy %s to %s: %s; starting without them",
                    legacy, path, e.strerror or e)
        return
    if copied:
        overrides.refresh(force=True)
        log.info("category overrides: copied %s to %s (edits are saved there from now "
                 "on; the old file is left as it is)", legacy, path)


def load_snapshot(state_dir: Path, log_path: Path, cp: Checkpoint, fingerprint: str, *,
                  max_events: int) -> list[Event] | None:
    """Blocking (a worker thread at start): the snapshot's events for `cp`, or None."""
    if not resumes_from(log_path, cp):
        return None  # the checkpointed file is gone: the log is read anyway
    return read_snapshot(state_dir, cp, fingerprint, max_events=max_events)


def save_snapshot(state_dir: Path, events: Sequence[Event], cp: Checkpoint | None,
                  fingerprint: str) -> None:
    """Blocking, after a clean stop: the stored `events` for the final checkpoint `cp`
    (None: there is none for what the store holds, nothing is written)."""
    if cp is None:
        log.info("snapshot: not written (no checkpoint for what the store holds)")
        return
    started = time.perf_counter()
    try:
        size = write_snapshot(state_dir, list(events), cp, fingerprint)
    except (OSError, ValueError) as e:
        log.warning("snapshot: cannot write it in %s: %s", state_dir, e)
        return
    log.info("snapshot: %d events (%.1f MB) written in %.2f s", len(events),
             size / 1e6, time.perf_counter() - started)
