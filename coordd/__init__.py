"""coordd: a live picture of a multi-agent coordination log.

Only what plugin authors need is exported here; see `docs/plugins.md`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
