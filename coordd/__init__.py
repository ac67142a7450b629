"""coordd: a live picture of a multi-agent coordination log.

Only what plugin authors need is exported here: `hookimpl` to mark hook implementations,
`Classification` for a classifier's answer, and `__version__`; their tests have
`coordd.testing`. See `docs/plugins.md`; the rest of the package is not an API.
"""

from __future__ import annotations

from coordd.hookspecs import Classification, hookimpl

__all__ = ["Classification", "__version__", "hookimpl"]

__version__ = "0.1.0"
