"""`coordd watch`: follow a running daemon's live stream in a terminal.

One line per event on stdout (local time, type, from → to, work session, category, and
as much of the message as the terminal's width leaves), or with `--json` one JSON object
per event (the event as the daemon sent it); notices (connected, cannot reach the daemon,
lost, resync) go to stderr so the event lines can be piped.
Filters by type (exact or a shell-style pattern such as `a2a.*`), role, agent and work
session apply on the client side. A dropped connection is retried with exponential
back-off and resumed with `since=<last seq>&epoch=<epoch>`, so nothing is missed or
printed twice; when the daemon cannot replay (`resync_required`) the watcher says so and
goes on live.

This is a command-line program, so it writes to the streams it is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import random
import re
import shutil
import socket
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import trio
import trio_websocket

from coordd.core.event import agents_of
from coordd.core.jsvalues import O, S, event_time
from coordd.core.pacing import backoff_delay
from coordd.core.vocabulary import ROLES
from coordd.errors import CoorddError

__all__ = ["EventFilter", "fit", "follow", "format_line", "split_csv", "text_cols", "watch_main",
           "watch_url"]

#: Columns of the fixed fields: type, "from → to", work session, category.
TYPE_COLS, PAIR_COLS, SESSION_COLS, CATEGORY_COLS = 12, 14, 12, 17
#: Same bound as hypercorn's default for incoming frames; the hub sends far smaller ones.
MAX_MESSAGE_BYTES = 16 << 20
_ANSI_RE = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)")
_PREVIEW_KEYS = ("message", "replyPreview", "reason", "error", "label", "action", "taskId")


def split_csv(values: Iterable[str] | None) -> list[str]:
    """`["a,b", " c "]` → `["a", "b", "c"]` (repeated flags and CSV both work)."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Client-side filters; an empty set lets everything through."""

    types: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    sessions: frozenset[str] = frozenset()

    @classmethod
    def from_lists(
        cls,
        types: Iterable[str] | None = None,
        roles: Iterable[str] | None = None,
        agents: Iterable[str] | None = None,
        sessions: Iterable[str] | None = None,
    ) -> EventFilter:
        """From the command line's lists of CSV strings. Raises `ValueError` for an
        unknown role."""
        role_list = split_csv(roles)
        unknown = [r for r in role_list if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r} (one of: {', '.join(ROLES)})")
        return cls(
            types=tuple(split_csv(types)),
            roles=frozenset(role_list),
            agents=frozenset(split_csv(agents)),
            sessions=frozenset(split_csv(sessions)),
        )

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether an enriched event passes every filter that is set."""
        data = O(event.get("data"))
        if self.types:
            etype = str(event.get("type"))
            if not any(etype == t or fnmatch.fnmatchcase(etype, t) for t in self.types):
                return False
        if self.roles and (event.get("eventRole") or data.get("eventRole")) not in self.roles:
            return False
        if self.sessions and S(data.get("workSessionId")) not in self.sessions:
            return False
        if self.agents:
            involved = {S(event.get("agentId")), *agents_of(event, data)}
            if not involved & self.agents:
                return False
        return True


def _clean(text: str) -> str:
    """One line, no escape sequences, control or format characters (an event must not
    drive the terminal)."""
    out = []
    for ch in _ANSI_RE.sub("", text):
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            continue
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def _preview(data: Mapping[str, Any]) -> str:
    for key in _PREVIEW_KEYS:
        value = S(data.get(key))
        if value is not None:
            return _clean(value)
    return ""


def _char_cols(ch: str) -> int:
    """Terminal columns of one character: 2 for wide East Asian ones (Hangul, CJK…),
    0 for combining marks."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_cols(text: str) -> int:
    """Terminal columns `text` takes."""
    return sum(_char_cols(ch) for ch in text)


def fit(text: str, cols: int) -> str:
    """`text` cut to at most `cols` terminal columns, ending in "…" when cut."""
    if text_cols(text) <= cols:
        return text
    out, used = [], 0
    for ch in text:
        w = _char_cols(ch)
        if used + w > cols - 1:
            break
        out.append(ch)
        used += w
    return "".join(out).rstrip() + "…" if cols > 0 else ""


def _pad(text: str, cols: int) -> str:
    return text + " " * max(0, cols - text_cols(text))


def _local_time(ms: float) -> str:
    try:
        when = dt.datetime.fromtimestamp(ms / 1000.0)
    except (OverflowError, OSError, ValueError):
        when = dt.datetime.now()
    return when.strftime("%H:%M:%S")


def terminal_width() -> int:
    """The terminal's width in columns (`$COLUMNS`, else the terminal's, else 80)."""
    return shutil.get_terminal_size((80, 24)).columns


def format_line(event: Mapping[str, Any], *, now_ms: float | None = None,
                width: int | None = None) -> str:
    """`HH:MM:SS  type  from → to  session  category  preview` for one enriched event, in
    at most `width` terminal columns (default: the terminal's width): the message
    preview takes what the other fields leave, and is cut with "…".

    The time is the event's own in local time; events without one show the time they
    arrived (`now_ms`, default now). A long work-session id shows its start.
    """
    width = terminal_width() if width is None else width
    data = O(event.get("data"))
    ts = event_time(event) or (time.time() * 1000.0 if now_ms is None else now_ms)
    src, dst = (_clean(a) if a != "unknown" else "?" for a in agents_of(event, data))
    category = S(event.get("collabCategory")) or S(data.get("collabCategory")) or "-"
    session = fit(_clean(S(data.get("workSessionId")) or "-"), SESSION_COLS)
    fields = [_local_time(ts), _pad(_clean(str(event.get("type"))), TYPE_COLS),
              _pad(f"{src} → {dst}", PAIR_COLS), _pad(session, SESSION_COLS),
              _pad(_clean(category), CATEGORY_COLS)]
    head = "  ".join(fields) + "  "
    line = head + fit(_preview(data), max(0, width - text_cols(head)))
    return fit(line.rstrip(), width)


def watch_url(args: argparse.Namespace) -> str:
    """`args.url`, else `ws://<host>:<port>/ws` from the flags, `--config`, the
    `TASK_MONITOR_HOST`/`TASK_MONITOR_PORT` environment, or 127.0.0.1:3847."""
    url = getattr(args, "url", None)
    if url:
        return str(url)
    from coordd.config import load_config

    cfg = load_config(
        getattr(args, "config", None),
        overrides={"server": {"host": getattr(args, "host", None),
                              "port": getattr(args, "port", None)}},
    )
    host = cfg.server.host
    # A wildcard listen address is not somewhere to connect to.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{cfg.server.port}/ws"


def _resume_url(url: str, since: int | None, epoch: str | None) -> str:
    if since is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("since", "epoch")]
    query.append(("since", str(since)))
    if epoch is not None:
        query.append(("epoch", epoch))
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Follower:
    """The watcher's position in the stream and what it printed."""

    def __init__(self, filt: EventFilter, max_events: int | None, out: TextIO,
                 err: TextIO, *, json_lines: bool = False, width: int | None = None) -> None:
        self.filt = filt
        self.max_events = max_events
        self.out = out
        self.err = err
        self.json_lines = json_lines
        self.width = width
        self.epoch: str | None = None
        self.last_seq: int | None = None
        self.printed = 0

    def notice(self, text: str) -> None:
        print(f"coordd watch: {text}", file=self.err, flush=True)

    @property
    def done(self) -> bool:
        return self.max_events is not None and self.printed >= self.max_events

    def render(self, event: Mapping[str, Any]) -> str:
        """One output line: the event as one JSON object, or the terminal line."""
        if self.json_lines:
            return orjson.dumps(event).decode()
        return format_line(event, width=self.width)

    def handle(self, text: str | bytes) -> None:
        """Apply one server message."""
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.notice("ignored a message that is not JSON")
            return
        if not isinstance(msg, dict):
            return
        mtype = msg.get("type")
        data = O(msg.get("data"))
        epoch = msg.get("epoch")
        if mtype == "connected":
            seq = data.get("seq")
            if self.last_seq is None and isinstance(seq, int):
                self.last_seq = seq  # first connection: live from here on
            if isinstance(epoch, str):
                self.epoch = epoch
        elif mtype == "resync_required":
            self.notice(f"the server cannot replay what was missed ({data.get('reason')}); "
                        "continuing live, earlier events are available over REST")
            new_epoch, seq = data.get("epoch"), data.get("seq")
            self.epoch = new_epoch if isinstance(new_epoch, str) else self.epoch
            self.last_seq = seq if isinstance(seq, int) else None
        elif mtype == "coordination_event_new":
            if isinstance(epoch, str) and epoch != self.epoch:
                self.epoch, self.last_seq = epoch, None
            events = data.get("events")
            for event in events if isinstance(events, list) else ():
                if not isinstance(event, dict):
                    continue
                seq = event.get("seq")
                if isinstance(seq, int):
                    if self.last_seq is not None and seq <= self.last_seq:
                        continue  # already printed before a reconnect
                    self.last_seq = seq
                if self.filt.matches(event):
                    self.out.write(self.render(event) + "\n")
                    self.printed += 1
                    if self.done:
                        break
            self.out.flush()


async def follow(
    url: str,
    *,
    filt: EventFilter | None = None,
    max_events: int | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    json_lines: bool = False,
    width: int | None = None,
    backoff: float = 0.5,
    max_backoff: float = 10.0,
    connect_timeout: float = 10.0,
) -> int:
    """Print the stream at `url` until `max_events` lines were printed (forever if None):
    one JSON object per event with `json_lines`, else one line of at most `width`
    columns (default: the terminal's width, asked for each line).

    Reconnects after any connection loss, waiting up to `backoff` seconds and doubling up
    to `max_backoff` (`backoff_delay`: with jitter, so many watchers do not come back at
    once); the wait goes back to `backoff` once a connection is up. Each failed attempt
    is one notice line saying what failed and when the next attempt is. Returns 0.
    Cancellation stops it at once.
    """
    state = _Follower(filt or EventFilter(), max_events, out or sys.stdout, err or sys.stderr,
                      json_lines=json_lines, width=width)
    if state.done:
        return 0
    failures = 0
    rng = random.Random()
    while True:
        target = _resume_url(url, state.last_seq, state.epoch)
        try:
            async with trio_websocket.open_websocket_url(
                target, max_message_size=MAX_MESSAGE_BYTES, connect_timeout=connect_timeout,
                receive_buffer_size=None,
                disconnect_timeout=1.0,
            ) as conn:
                resumed = state.last_seq is not None
                state.notice(f"connected to {target}" if resumed else f"connected to {url}")
                failures = 0
                while not state.done:
                    state.handle(await conn.get_message())
            return 0
        except trio_websocket.ConnectionClosed as e:
            reason = e.reason
            detail = f"code {reason.code}" if reason is not None else "no close frame"
            if reason is not None and reason.reason:
                detail += f": {reason.reason}"
            problem = f"connection lost ({detail})"
        except (OSError, trio_websocket.HandshakeError, trio.BrokenResourceError) as e:
            problem = f"cannot reach {_http_base(url)} ({_connect_detail(e)}; is coordd running?)"
        failures += 1
        wait = backoff_delay(failures, backoff, max_backoff, rng)
        state.notice(f"{problem}, retrying in {wait:.1f}s")
        await trio.sleep(wait)


def _http_base(url: str) -> str:
    """`ws://host:port/ws?…` → `http://host:port`: the daemon's address as one opens it."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _connect_detail(e: BaseException) -> str:
    """Why a connection attempt failed, in a few words (the root cause: trio-websocket's
    HandshakeError says nothing itself, trio's OSError wraps one error per address)."""
    for exc in _causes(e):
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, TimeoutError | trio.TooSlowError):
            return "timed out"
        if isinstance(exc, socket.gaierror):
            return f"unknown host: {exc.strerror or exc}"
    return str(e) or str(e.__cause__ or "") or type(e).__name__


def _causes(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [e]
    while todo:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        todo += [x for x in (exc.__cause__, exc.__context__) if x is not None]
        if isinstance(exc, BaseExceptionGroup):
            todo += list(exc.exceptions)


def watch_main(args: argparse.Namespace) -> int:
    """`coordd watch`: 0 after `--max-events` lines or on Ctrl-C, 2 for bad arguments."""
    try:
        filt = EventFilter.from_lists(getattr(args, "type", None), getattr(args, "role", None),
                                      getattr(args, "agent", None),
                                      getattr(args, "session", None))
        url = watch_url(args)
    except (ValueError, CoorddError) as e:
        print(f"coordd watch: {e}", file=sys.stderr)
        return 2
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        print(f"coordd watch: not a WebSocket URL: {url!r} (expected ws://host:port/ws)",
              file=sys.stderr)
        return 2
    max_events = getattr(args, "max_events", None)
    if max_events is not None and max_events < 0:
        print("coordd watch: --max-events must be 0 or more", file=sys.stderr)
        return 2
    try:
        return trio.run(partial(follow, url, filt=filt, max_events=max_events,
                                json_lines=bool(getattr(args, "json", False))))
    except (KeyboardInterrupt, BrokenPipeError):
        # Ctrl-C, or `coordd watch | head` whose reader is gone: both are a normal end.
        return 0
    except BaseExceptionGroup as group:
        if group.split((KeyboardInterrupt, BrokenPipeError))[1] is None:
            return 0
        raise
