"""The exception tree of coordd.

::

    CoorddError
    ├── ConfigError          a bad configuration file, table or key (names all three)
    ├── StateError           the state directory or the checkpoint cannot be used
    ├── PluginError          a plugin cannot be loaded or registered
    ├── SinkUnavailable      the MongoDB tier cannot be reached (the daemon keeps serving)
    ├── ListenError          the listen address cannot be bound (busy port, no permission)
    ├── ComponentCrashed     a long-lived component stopped on its own (exit non-zero)
    └── BadRequest           a request parameter or body that cannot be used (a 400; also
                             a ValueError)

Errors that a single event or request causes never surface as exceptions to callers:
they are counted and logged (lines), or answered with a 4xx (requests).
"""

from __future__ import annotations

__all__ = ["BadRequest", "ComponentCrashed", "ConfigError", "CoorddError", "ListenError",
           "PluginError", "SinkUnavailable", "StateError"]


class CoorddError(Exception):
    """Base class of every error coordd raises on purpose."""


class ConfigError(CoorddError):
    """A configuration problem; the message names the file, the table and the key."""


class StateError(CoorddError):
    """The state directory or the checkpoint in it cannot be used."""


class PluginError(CoorddError):
    """A plugin could not be loaded or registered."""


class SinkUnavailable(CoorddError):
    """The durable sink (MongoDB) is unreachable or failing."""


class ListenError(CoorddError):
    """The listen address cannot be bound (busy port, no such address, no permission)."""


class ComponentCrashed(CoorddError):
    """A long-lived component failed or stopped on its own; the daemon must exit non-zero."""

    def __init__(self, name: str) -> None:
        super().__init__(f"component {name!r} stopped unexpectedly")
        self.name = name


class BadRequest(CoorddError, ValueError):
    """A request parameter or body that cannot be used; the message says why (a 400)."""
