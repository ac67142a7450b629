"""Who may write from a browser, and under which names the server may be reached.

Two guards in front of every route of the table and the WebSocket alike:

* **Cross-origin writes.** Browsers send an `Origin` header with every write (and with
  cross-origin reads). A write (POST, PATCH, PUT, DELETE) whose `Origin` is not listed in
  `[server] allowed_origins` is refused with 403, whatever the token and the peer: without
  this, any page open in the operator's browser could write through the loopback address.
  Clients that are not browsers send no `Origin` and are not concerned. A preflight
  (OPTIONS with `Access-Control-Request-Method`) for a write succeeds only for a listed
  origin. Reads keep `Access-Control-Allow-Origin: *`.
* **DNS rebinding.** A request that arrives on a loopback address (always the case when
  `[server] host` is one) must name a loopback host in its `Host` header: `localhost` (or
  a name under `.localhost`), an address of 127.0.0.0/8, `::1` or `0.0.0.0`, with any
  port, or a name listed in `[server] allowed_hosts`. Anything else is answered 421: a page on
  `http://attacker.example` whose name was re-pointed at 127.0.0.1 sends
  `Host: attacker.example`.

Pure functions over header values; the dispatcher in `coordd.web.app` applies them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "WRITE_METHODS",
    "Guard",
    "host_name",
    "is_loopback_name",
    "normalise_origin",
    "peer_is_loopback",
    "same_origin",
]

WRITE_METHODS: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}


def peer_is_loopback(host: str | None) -> bool:
    """All of 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. No address (a Unix socket,
    a test client without a peer) is not loopback."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def normalise_origin(origin: str) -> str:
    """`scheme://host[:port]` in lower case, without a trailing slash or a default port."""
    origin = origin.strip().lower().rstrip("/")
    scheme = origin.split("://", 1)[0]
    default = _DEFAULT_PORTS.get(scheme)
    if default and origin.endswith(default):
        origin = origin[: -len(default)]
    return origin


def host_name(host: str) -> str:
    """The name part of a `Host` header (no port, no IPv6 brackets), in lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name = host[1:end] if end > 0 else host[1:]
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    else:
        name = host  # no port (or a bare IPv6 address)
    return name.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """`localhost`, a name under `.localhost` (browsers resolve those to loopback
    themselves), a loopback address, or `0.0.0.0` / `::` (which reach this machine; no
    page but a local one can be served under them)."""
    if name == "localhost" or name.endswith(".localhost") or peer_is_loopback(name):
        return True
    return name in ("0.0.0.0", "::")


def same_origin(origin: str, host: str) -> bool:
    """Whether `Origin` names the server the request was sent to (its `Host` header), with
    the default port of the origin's scheme made explicit on both sides."""
    origin = normalise_origin(origin)
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme not in _DEFAULT_PORTS:
        return False
    host = host.strip().lower().rstrip("/")
    default = _DEFAULT_PORTS[scheme]
    if host.endswith(default):
        host = host[: -len(default)]
    return bool(host) and authority == host


@dataclass(frozen=True, slots=True)
class Guard:
    """The configured exceptions: origins that may write, extra names the server answers
    to on loopback. `"*"` in either list switches that guard off."""

    origins: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, origins: Iterable[str] = (), hosts: Iterable[str] = ()) -> Guard:
        return cls(frozenset(normalise_origin(o) for o in origins),
                   frozenset(host_name(h) for h in hosts))

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.origins or normalise_origin(origin) in self.origins

    def write_refusal(self, method: str, origin: str | None,
                      host: str | None = None) -> str | None:
        """Why a request must be refused as a cross-origin write, or None. `host` is the
        request's `Host` header: a write from that same origin passes."""
        if method not in WRITE_METHODS or origin is None or self.origin_allowed(origin):
            return None
        if host is not None and same_origin(origin, host):
            return None
        return (f"cross-origin write refused: {method} from Origin {origin!r}, which may not "
                f"write. To allow it, add {normalise_origin(origin)!r} to allowed_origins in "
                "the [server] table of the configuration file")

    def host_refusal(self, host: str | None, local: str | None) -> str | None:
        """Why a request with this `Host` header, arriving on the local address `local`,
        must be refused (a DNS rebinding guard), or None."""
        if host is None or not peer_is_loopback(local) or "*" in self.hosts:
            return None
        name = host_name(host)
        if is_loopback_name(name) or name in self.hosts:
            return None
        return (f"misdirected request: Host {host!r} is not a loopback name or address, and "
                "this server is reached on a loopback address (a guard against DNS "
                "rebinding). Use http://127.0.0.1:<port> or http://localhost:<port>, or, to "
                f"serve this name (e.g. behind a reverse proxy), add {name!r} to "
                "allowed_hosts in the [server] table of the configuration file")
