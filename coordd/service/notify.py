"""sd_notify over `$NOTIFY_SOCKET`, in a few lines of our own (abstract sockets included),
and the loop that keeps systemd informed (`STATUS=`, `WATCHDOG=1`).

Without `$NOTIFY_SOCKET` (not started by systemd) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

import trio

__all__ = ["Notifier", "monotonic_usec", "status_loop"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends `KEY=value` datagrams to systemd. Never raises: a failure is logged once."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if addr.startswith("@"):
            self.address = "\0" + addr[1:]  # abstract namespace
        elif addr.startswith("/"):
            self.address = addr
        watchdog = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_usec = int(watchdog) if watchdog.isdigit() else 0
        if pid.isdigit() and int(pid) != os.getpid():
            self.watchdog_usec = 0
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram made of `lines` (e.g. "READY=1", "STATUS=…")."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as e:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address, e)
                self._warned = True
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def status_loop(notifier: Notifier, status_line: Callable[[], str],
                      stalled: Callable[[float], str | None],
                      poll_interval: Callable[[], float]) -> None:
    """STATUS= every few seconds; WATCHDOG=1 only while ingestion makes progress
    (`stalled(limit)` says why not, None when it does; the limit grows with the tailer's
    current `poll_interval()`)."""
    usec = notifier.watchdog_usec
    interval = min(5.0, usec / 2e6) if usec else 5.0
    while True:
        await trio.sleep(interval)
        lines = [f"STATUS={status_line()}"]
        why = stalled(max(usec / 1e6, 3 * poll_interval(), 2.0))
        if usec and why is None:
            lines.append("WATCHDOG=1")
        elif why:
            log.error("watchdog withheld: %s", why)
        notifier.notify(*lines)


def monotonic_usec() -> str:
    """`MONOTONIC_USEC=` for `RELOADING=1`."""
    return f"MONOTONIC_USEC={time.monotonic_ns() // 1000}"
