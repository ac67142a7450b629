from __future__ import annotations

import os
import socket
from pathlib import Path

from coordd.service.notify import Notifier


def _listener(address: str | bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(address)
    s.settimeout(2)
    return s


def test_notify_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with _listener(path) as sock:
        n = Notifier({"NOTIFY_SOCKET": path})
        assert n.enabled
        assert n.notify("READY=1", "STATUS=42 events")
        assert sock.recv(4096) == b"READY=1\nSTATUS=42 events"
        n.close()


def test_notify_abstract_socket() -> None:
    name = f"coordd-test-{os.getpid()}"
    with _listener("\0" + name) as sock:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"
        n.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.notify("READY=1") is False


def test_unreachable_socket_never_raises(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.notify("READY=1") is False
    assert n.notify("READY=1") is False


def test_watchdog_interval_only_for_our_pid() -> None:
    assert Notifier({"WATCHDOG_USEC": "20000000"}).watchdog_usec == 20_000_000
    mine = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_usec == 20_000_000
    other = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other).watchdog_usec == 0
