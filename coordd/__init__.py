"""coordd: a live picture of a multi-agent coordination log.

Only what plugin authors need is exported here; see `docs/plugins.md`.
"""

from __future__ import annotations

from coordd.hookspecs import Classification, hookimpl

__all__ = ["Classification", "__version__", "hookimpl"]

__version__ = "0.1.0"
