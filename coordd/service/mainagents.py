"""The main-agent set, read from openclaw.json (JSON or JSON5).

Every configured agent counts as a "main" agent, plus `main` and `ruda` always.
The file is re-read only when it changes (mtime, size or inode), is parsed as strict
JSON first and then as JSON5 (the gateway writes JSON5, so comments and trailing
commas are legal there; upstream's strict parse failed on them), and any problem
(unreadable, unparsable) leaves the defaults in force, is logged once per file version
as a warning and reported by `status()` for `coordd --check` and `/api/health`. A
missing file is not a problem (a fresh install): the defaults apply, said once at INFO
level, and the check passes.

Synchronous file I/O, no trio: `current()` is called from the enrichment worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import json5

from coordd.core.jsvalues import O, S, loads

__all__ = ["DEFAULT_MAIN_AGENTS", "MainAgents", "resolve_main_agents"]

log = logging.getLogger(__name__)

DEFAULT_MAIN_AGENTS: Final = frozenset({"main", "ruda"})


def resolve_main_agents(config: Any) -> frozenset[str]:
    """`resolveMainAgentIdsFromConfig`: the main-agent ids a parsed config names.

    Ids are trimmed and lower-cased, empty ones ignored; `main` and `ruda` are always
    included. Anything unusable yields just the defaults.
    """
    ids: set[str] = set(DEFAULT_MAIN_AGENTS)

    def add(value: Any) -> None:
        text = S(value)
        if text is not None:
            ids.add(text.lower())

    agents = O(O(config).get("agents"))
    listed = agents.get("list")
    if type(listed) is list:
        for element in listed:
            add(O(element).get("id"))
    for key, value in agents.items():
        if key in ("list", "defaults"):
            continue
        entry = O(value)
        if type(entry.get("id")) is str:
            add(entry["id"])
        elif entry:
            add(key)
    return frozenset(ids)


def _parse(text: str) -> Any:
    """Strict JSON first (what upstream did), then JSON5 (what the gateway writes)."""
    try:
        return loads(text)
    except ValueError as strict_error:
        try:
            return json5.loads(text)
        except Exception as exc:  # json5 raises ValueError, but also others on odd input
            raise ValueError(f"not JSON ({strict_error}) nor JSON5 ({exc})") from exc


class MainAgents:
    """The current main-agent set, following changes to openclaw.json.

    `check_interval` (seconds) bounds how often the file is stat'ed: `current()` runs
    once per event, and a stat per event would cost more than the enrichment itself.
    """

    def __init__(self, path: Path | None, *, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Follow `path`; None means no file (the defaults, reported as such)."""
        self._path = path
        self._check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next_check = float("-inf")
        self._key: tuple[int, int, int] | None = None
        self._agents = DEFAULT_MAIN_AGENTS
        self._status: tuple[str, str] = ("pass", "no openclaw.json configured; main agents "
                                         "are the defaults main, ruda")
        self._reported: tuple[str, str] | None = None

    def current(self) -> frozenset[str]:
        """The main-agent set (lower-case ids); re-reads the file only when it changed."""
        if self._path is None:
            return self._agents
        now = self._clock()
        if now < self._next_check:
            return self._agents
        with self._lock:
            self._next_check = now + self._check_interval
            self._refresh(self._path)
            return self._agents

    def status(self) -> tuple[str, str]:
        """`("pass"|"warn", message)` describing the file, for `coordd --check`."""
        if self._path is not None:
            with self._lock:
                self._refresh(self._path)
        return self._status

    def _refresh(self, path: Path) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            # A fresh install, or a gateway that keeps no agent list: nothing to fix.
            self._key = None
            self._set(DEFAULT_MAIN_AGENTS, "pass", f"{path} does not exist; main agents are "
                      "the defaults main, ruda")
            return
        except OSError as exc:
            # A failure is not cached: the next check looks again.
            self._key = None
            self._set(DEFAULT_MAIN_AGENTS, "warn", f"{path}: cannot be read "
                      f"({exc.strerror or exc}); main agents are the defaults main, ruda")
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self._key:
            return
        self._key = key
        try:
            text = path.read_bytes().decode("utf-8-sig")
            config = _parse(text)
        except (OSError, ValueError) as exc:
            self._set(DEFAULT_MAIN_AGENTS, "warn", f"{path}: {exc}; main agents are the "
                      "defaults main, ruda")
            return
        agents = resolve_main_agents(config)
        if not isinstance(config, Mapping) or not O(config.get("agents")):
            self._set(agents, "warn", f"{path}: no `agents` object; main agents are the "
                      "defaults main, ruda")
            return
        names = ", ".join(sorted(agents))
        self._set(agents, "pass", f"{path}: {len(agents)} main agents ({names})")

    def _set(self, agents: frozenset[str], level: str, message: str) -> None:
        self._agents = agents
        self._status = (level, message)
        if self._reported != self._status:
            self._reported = self._status
            if level == "pass":
                log.info("main agents: %s", message)
            else:
                log.warning("main agents: %s", message)
