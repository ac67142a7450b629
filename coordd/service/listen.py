"""The listen socket: bound at once, before anything else, so that a busy port is one line.

`listen_socket` binds and listens as hypercorn would, and says what is wrong and what to
do when it cannot; `activation_binds` are the sockets systemd passed instead (socket
activation), which hypercorn takes as they are; `hypercorn_config` serves on either.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

from hypercorn.config import Config as HypercornConfig

from coordd.errors import ListenError

__all__ = ["activation_binds", "hypercorn_config", "listen_socket"]


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` and listening, set up as hypercorn sets up its
    own. Raises `ListenError` with one line saying what is wrong and what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError as e:
        sock.close()
        raise ListenError(_listen_problem(host, port, e)) from None
    return sock


def _listen_problem(host: str, port: int, e: OSError) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if e.errno == errno.EADDRINUSE:
        return (f"cannot listen on {where}: the address is already in use (another monitor, "
                "or another coordd, on that port?); stop it or choose another port with "
                "--port (or [server] port)")
    if e.errno == errno.EACCES:
        return (f"cannot listen on {where}: permission denied (ports below 1024 need "
                "privileges); choose another port with --port (or [server] port)")
    if e.errno == errno.EADDRNOTAVAIL or isinstance(e, socket.gaierror):
        return (f"cannot listen on {where}: no such address on this machine "
                f"({e.strerror or e}); check --host (or [server] host)")
    return f"cannot listen on {where}: {e.strerror or e}; check --host and --port"


def activation_binds(env: dict[str, str] | os._Environ[str]) -> list[str]:
    """Sockets passed by systemd socket activation (LISTEN_FDS, from fd 3 on)."""
    if env.get("LISTEN_PID", "") != str(os.getpid()):
        return []
    count = int(env.get("LISTEN_FDS", "0") or 0)
    return [f"fd://{3 + i}" for i in range(count)]


def hypercorn_config(binds: list[str], *, shutdown_grace: float,
                     heartbeat: float) -> HypercornConfig:
    """hypercorn's settings: the `binds`, the drain time, WebSocket pings, no access log."""
    config = HypercornConfig()
    config.bind = binds
    config.graceful_timeout = shutdown_grace
    config.accesslog = None
    config.websocket_ping_interval = heartbeat
    config.errorlog = logging.getLogger("hypercorn.error")
    return config
