"""The store's events on disk at shutdown, so that a restart does not parse the log again.

Parsing and enriching 100,000 log lines is most of a cold start (~40 µs a line on a small
machine). At a clean shutdown, right after the final checkpoint, the pipeline writes every
stored event as a plain record (`coordd.core.event.event_record`: the enriched JSON and the
fields extracted from it) to `snapshot.bin` in the state directory; the next start loads
those records instead of the log lines up to the checkpoint, which the pipeline then
drops unparsed (the same path as a warm restart from MongoDB).

A snapshot stands for the log only when nothing that shaped it changed, so it is used
only when
- it was written for exactly the checkpoint the daemon resumes from (a crash after
  further events leaves a newer checkpoint: the snapshot is then ignored);
- its fingerprint is the current one: coordd's version and line rules, the classifier
  plugins (names and versions), the main agents and the category vocabulary, which decide
  every event's role and category;
- it covers the whole window a cold start would read (the checkpoint's last
  `max_events` seqs; a larger `[store] max_events` than when it was written means a
  cold start).
Anything else — or a file that is not a complete snapshot (its length and CRC are
checked) — means a cold start from the log, logged with the reason. The file is written
atomically (`coordd.core.files.write_atomically`) and is only ever read by coordd itself,
in its own state directory: the records are `marshal` data, compact and fast to load.

No trio here: the pipeline calls `write_snapshot` at shutdown, the service calls
`read_snapshot` in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from coordd import __version__
from coordd.core.event import (
    LINE_RULES_VERSION,
    RECORD_FIELDS,
    Event,
    event_from_record,
    event_record,
)
from coordd.core.files import write_atomically
from coordd.tail.checkpoint import (
    STATE_DIR_MODE,
    Checkpoint,
    checkpoint_from_json,
    checkpoint_to_json,
)

__all__ = ["SNAPSHOT_NAME", "read_snapshot", "snapshot_fingerprint", "snapshot_header",
           "write_snapshot"]

log = logging.getLogger(__name__)

SNAPSHOT_NAME: Final = "snapshot.bin"
_MAGIC: Final = b"coordd-snapshot\n"
_FORMAT: Final = 1


def snapshot_fingerprint(plugins: Iterable[tuple[str, str | None]],
                         main_agents: Iterable[str], categories: Iterable[str] = (),
                         settings: Mapping[str, Any] | None = None) -> str:
    """What the stored events depend on, as a digest: coordd's version, record layout and
    line rules, the enabled classifier plugins `(name, version)`, the main agents, the
    category vocabulary and the plugins' settings (`[plugins.<name>]` tables: a changed
    pattern classifies the same log differently)."""
    doc = [__version__, list(RECORD_FIELDS), LINE_RULES_VERSION,
           sorted([n, v or ""] for n, v in plugins), sorted(main_agents), list(categories),
           settings or {}]
    return hashlib.sha256(orjson.dumps(doc, default=str,
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


def write_snapshot(state_dir: Path, events: Sequence[Event], cp: Checkpoint,
                   fingerprint: str) -> int:
    """Write the stored `events` (seq order, the last one `cp.seq`) for checkpoint `cp`
    atomically; the number of bytes written. Raises `OSError` or `ValueError`."""
    if events and events[-1].seq != cp.seq:
        raise ValueError(f"the events end at seq {events[-1].seq}, the checkpoint at {cp.seq}")
    body = marshal.dumps([event_record(ev) for ev in events])
    header = orjson.dumps({
        "format": _FORMAT, "checkpoint": orjson.Fragment(checkpoint_to_json(cp).strip()),
        "fingerprint": fingerprint, "count": len(events), "bytes": len(body),
        "crc32": zlib.crc32(body),
    }) + b"\n"
    state_dir = Path(state_dir)
    # A stop killed while writing (systemd's TimeoutStopSec) leaves its temporary file.
    for stale in state_dir.glob(f".{SNAPSHOT_NAME}.*.tmp"):
        stale.unlink(missing_ok=True)
    write_atomically(state_dir / SNAPSHOT_NAME, [_MAGIC, header, body], dir_mode=STATE_DIR_MODE)
    return len(_MAGIC) + len(header) + len(body)


def read_snapshot(state_dir: Path, cp: Checkpoint, fingerprint: str, *,
                  max_events: int) -> list[Event] | None:
    """The events of the snapshot written for `cp`, the newest `max_events` of them, or
    None when there is no usable one (the reason logged). Never raises."""
    started = time.perf_counter()
    path = Path(state_dir) / SNAPSHOT_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("snapshot: cannot read %s (%s): reading the log", path, e)
        return None
    try:
        events = _parse(raw, cp, fingerprint, max_events)
    except ValueError as e:
        log.info("snapshot: %s: reading the log", e)
        return None
    log.info("snapshot: %d events of epoch %s loaded from %s in %.2f s", len(events),
             cp.epoch, path, time.perf_counter() - started)
    return events


def snapshot_header(state_dir: Path) -> tuple[Checkpoint, int] | None:
    """The checkpoint the snapshot was written for and its number of events (its header
    only: for `coordd --check`); None when there is none. Raises `ValueError` when the
    file is not a readable snapshot, `OSError` when it cannot be read."""
    try:
        with open(Path(state_dir) / SNAPSHOT_NAME, "rb") as f:
            start = f.read(_HEADER_MAX)
    except FileNotFoundError:
        return None
    head, _ = _header(start)
    return head[0], head[1]


_HEADER_MAX: Final = 4096


def _header(raw: bytes) -> tuple[tuple[Checkpoint, int, int, int, str], int]:
    """((checkpoint, count, bytes, crc32, fingerprint), offset of the body)."""
    if not raw.startswith(_MAGIC):
        raise ValueError("not a coordd snapshot")
    end = raw.find(b"\n", len(_MAGIC), _HEADER_MAX)
    try:
        head = orjson.loads(raw[len(_MAGIC):end])
        written_for = checkpoint_from_json(orjson.dumps(head["checkpoint"]))
        count, size, crc = head["count"], head["bytes"], head["crc32"]
        fmt, fp = head["format"], head["fingerprint"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"unreadable header ({e})") from None
    if fmt != _FORMAT:
        raise ValueError(f"format {fmt!r}, not {_FORMAT}")
    return (written_for, count, size, crc, fp), end + 1


def _parse(raw: bytes, cp: Checkpoint, fingerprint: str, max_events: int) -> list[Event]:
    (written_for, count, size, crc, fp), body_at = _header(raw)
    if written_for != cp:
        raise ValueError(f"written for seq {written_for.seq} of epoch {written_for.epoch}, "
                         f"the checkpoint is at seq {cp.seq} of epoch {cp.epoch}")
    if fp != fingerprint:
        raise ValueError("coordd's version, the plugins or the main agents changed")
    body = memoryview(raw)[body_at:]
    if len(body) != size or zlib.crc32(body) != crc:
        raise ValueError("incomplete or damaged")
    records = marshal.loads(body)
    if type(records) is not list or len(records) != count:
        raise ValueError("damaged records")
    first = max(1, cp.seq - max_events + 1)
    records = records[-max_events:] if len(records) > max_events else records
    try:
        events = [event_from_record(r) for r in records]
    except (TypeError, ValueError) as e:
        raise ValueError(f"damaged records ({e})") from None
    # The whole window a cold start would read, in order, or nothing.
    if cp.seq and (not events or events[0].seq != first or events[-1].seq != cp.seq
                   or len(events) != cp.seq - first + 1):
        raise ValueError(f"holds {len(events)} events, a cold start reads seqs "
                         f"{first}..{cp.seq}")
    return events
