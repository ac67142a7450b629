"""Manual work-session category overrides (`PATCH /api/work-sessions/<id>/category`).

The overrides live in a small JSON file keyed by the raw work-session id::

    {"<id>": {"collabCategory": "<category>", "updatedAt": "<ISO>", "updatedBy": "<who>"?}}

`Overrides` keeps the map in memory and applies it at read time (the work-session
aggregates never bake it in), so a PATCH is visible at once and an edit by another
process is picked up on the next request: `refresh()` compares the file's mtime, size and
inode at most once per `check_interval_s`. Writes go to a temporary file in the same
directory, are fsynced and renamed over the old file, so a crash never leaves a torn
file (upstream wrote in place). The file format stays upstream's: 2-space indented JSON
plus a trailing newline.

This module does small, synchronous file I/O and imports neither trio nor pymongo; the
web layer runs `set` (the write and its fsyncs) in a worker thread, off the event loop.

By default the file lives in the state directory (`[openclaw] category_overrides`
empty): a directory the daemon may write under the systemd unit's `ProtectHome=`, where
the temporary file of the atomic write can be created. `adopt_legacy_file` copies the old
monitor's file from `~/.openclaw` once, when the state directory has none yet.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from coordd.core.files import write_atomically
from coordd.core.jsvalues import S, iso_ms, loads
from coordd.core.vocabulary import BUILTIN_VOCABULARY, CategoryVocabulary

__all__ = ["Override", "Overrides", "adopt_legacy_file"]

log = logging.getLogger(__name__)

_NO_STAT: Final = (0, -1, 0)


@dataclass(frozen=True, slots=True)
class Override:
    """One manual category: the category, when and (optionally) by whom it was set."""

    category: str
    updated_at: str
    updated_by: str | None = None

    def as_json(self) -> dict[str, str]:
        """The entry as upstream writes and returns it (`updatedBy` only when known)."""
        out = {"collabCategory": self.category, "updatedAt": self.updated_at}
        if self.updated_by is not None:
            out["updatedBy"] = self.updated_by
        return out


class Overrides:
    """The override map, its file, and change detection.

    `path=None` keeps overrides in memory only (tests, or no state directory).
    `categories` are the valid categories (the service passes the plugin host's, so that
    an override to a plugin's category is kept from the first read on); an entry of the
    file naming any other is ignored.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        categories: CategoryVocabulary = BUILTIN_VOCABULARY,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000.0,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.categories = categories
        self._interval = check_interval_s
        self._clock = clock
        self._wall_ms = wall_ms
        self._entries: dict[str, Override] = {}
        #: Entries of the file naming a category that is not valid now (a plugin's, while
        #: it is disabled): not applied, but written back, so that they are not lost.
        self._unknown: dict[str, Any] = {}
        self._categories: dict[str, str] = {}
        self._stat: tuple[int, int, int] = _NO_STAT
        self._checked_at: float | None = None
        #: Held while `set` reads, writes and installs the file (possibly in a thread).
        self._lock = threading.Lock()
        #: Bumped whenever the map changes, so callers can memoise derived figures.
        self.version = 0
        self.reloads = 0
        self.read_errors = 0
        self.refresh(force=True)

    # ------------------------------------------------------------------ reading

    def get(self, ws_id: str) -> str | None:
        """The overriding category of a work session, or None."""
        return self._categories.get(ws_id)

    def categories_by_session(self) -> Mapping[str, str]:
        """Work-session id → overriding category (read-only view; do not keep it)."""
        return self._categories

    def entries(self) -> Mapping[str, Override]:
        """Work-session id → the full override entry."""
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the file if another process changed it; True when the map changed.

        Without `force`, the file is stat'ed at most once per `check_interval_s`.
        A missing file means no overrides (upstream: the cache is reset to empty).
        Never waits: while `set` writes the file (in a worker thread) it returns False.
        """
        if self.path is None or not self._lock.acquire(blocking=False):
            return False
        try:
            return self._refresh(force)
        finally:
            self._lock.release()

    def _refresh(self, force: bool) -> bool:
        assert self.path is not None
        now = self._clock()
        if not force and self._checked_at is not None and now - self._checked_at < self._interval:
            return False
        self._checked_at = now
        try:
            st = os.stat(self.path)
            ident = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            ident = _NO_STAT
        except OSError as exc:
            log.warning("cannot stat category overrides %s: %s", self.path, exc)
            return False
        if ident == self._stat and not force:
            return False
        self._stat = ident
        entries = self._read() if ident != _NO_STAT else {}
        if entries == self._entries:
            return False
        self._install(entries)
        self.reloads += 1
        log.info("category overrides reloaded from %s: %d entries", self.path, len(entries))
        return True

    def _read(self) -> dict[str, Override]:
        assert self.path is not None
        try:
            raw = self.path.read_bytes()
            doc = loads(raw)
        except (OSError, ValueError) as exc:
            # Upstream treats an unreadable or invalid file as "no overrides".
            self.read_errors += 1
            log.warning("ignoring unreadable category overrides %s: %s", self.path, exc)
            return {}
        return self._parse(doc)

    def _parse(self, doc: Any) -> dict[str, Override]:
        out: dict[str, Override] = {}
        self._unknown = {}
        if type(doc) is not dict:
            return out
        now_iso = iso_ms(self._wall_ms())
        for ws_id, entry in doc.items():
            if type(entry) is not dict:
                continue
            cat = S(entry.get("collabCategory"))
            if cat is None:
                continue
            if cat not in self.categories:
                self._unknown[ws_id] = entry
                continue
            at = entry.get("updatedAt")
            out[ws_id] = Override(
                category=cat,
                updated_at=at if type(at) is str and at else now_iso,
                updated_by=S(entry.get("updatedBy")),
            )
        if self._unknown:
            ws_id, entry = next(iter(self._unknown.items()))
            log.warning("category overrides %s: %d entries name a category that is not valid "
                        "now (e.g. %r: %r) and are ignored, but kept in the file; valid: %s "
                        "(is the plugin that declares it disabled?)", self.path,
                        len(self._unknown), ws_id, S(entry.get("collabCategory")),
                        self.categories.listing())
        return out

    def _install(self, entries: dict[str, Override]) -> None:
        self._entries = entries
        self._categories = {k: v.category for k, v in entries.items()}
        self.version += 1

    # ------------------------------------------------------------------ writing

    def set(self, ws_id: str, category: str, *, updated_by: str | None, now_ms: float) -> Override:
        """Override one session's category: re-read the file, write it atomically, then
        update memory. Raises `ValueError` for an unknown category (the message lists the
        valid ones) and `OSError` when
        the file cannot be written (memory is then left unchanged). Blocking file I/O:
        the web layer calls it in a worker thread; concurrent calls are serialised."""
        if category not in self.categories:
            raise ValueError(f"unknown category {category!r}: expected one of "
                             f"{self.categories.listing()}")
        with self._lock:
            if self.path is not None:
                self._refresh(True)
            entry = Override(category, iso_ms(now_ms), updated_by)
            entries = dict(self._entries)
            entries[ws_id] = entry
            if self.path is not None:
                self._write(entries)
            self._install(entries)
        return entry

    def _write(self, entries: Mapping[str, Override]) -> None:
        assert self.path is not None
        doc = {**self._unknown, **{k: v.as_json() for k, v in entries.items()}}
        # JSON.stringify(doc, null, 2) + "\n": same separators, non-ASCII raw.
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        write_atomically(self.path, [text.encode("utf-8", "backslashreplace")])
        st = os.stat(self.path)
        self._stat = (st.st_mtime_ns, st.st_size, st.st_ino)
        self._checked_at = self._clock()


def adopt_legacy_file(path: Path, legacy: Path) -> bool:
    """Copy the old monitor's overrides file `legacy` to `path` (atomically) when `path`
    does not exist yet and `legacy` does; True when copied. Raises `OSError` when the
    copy cannot be written."""
    if path.exists():
        return False
    try:
        data = legacy.read_bytes()
    except FileNotFoundError:
        return False
    write_atomically(path, [data])
    return True
