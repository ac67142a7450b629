"""Pacing: how often a repeated warning is logged, how long to wait before a retry.

The one rate-limited logger (`RateLimitedLog`) and the one back-off (`backoff_delay`) of
the daemon: the tailer, the pipeline, the MongoDB tier and `coordd watch` use these. Plain
Python (no trio): the clock and the random source are arguments.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["RateLimitedLog", "backoff_delay"]


class RateLimitedLog:
    """At most one message per `interval` seconds per key on `logger`; the next one that
    is logged says how many were dropped meanwhile. Wall-clock pacing (`clock`,
    monotonic seconds): this is about log volume, not behaviour."""

    def __init__(self, logger: logging.Logger, interval: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._dropped: Counter[str] = Counter()

    def admit(self, key: str) -> str | None:
        """The suffix for a message about `key` that may be logged now (saying how many
        were dropped, or empty), or None when it must be dropped (and is counted)."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._dropped[key] += 1
            return None
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        return f" ({dropped} more like this since the last message)" if dropped else ""

    def warning(self, key: str, msg: str, *args: object) -> None:
        """`logger.warning(msg, *args)` unless a message about `key` was logged less than
        `interval` seconds ago."""
        suffix = self.admit(key)
        if suffix is not None:
            self.logger.warning(msg + suffix, *args)


def backoff_delay(failures: int, initial: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number `failures` (≥ 1): exponential, capped, "equal jitter" —
    half of it fixed, half random — so retries spread out yet never hammer."""
    ceiling = min(cap, initial * 2.0 ** min(failures - 1, 62))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
