"""stdlib logging to stderr: plain lines (journald adds the time) or JSON lines."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

__all__ = ["JsonFormatter", "setup_logging"]

_HANDLER_NAME = "coordd-stderr"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup_logging(level: str = "INFO", fmt: str = "plain") -> None:
    """(Re)configure the root logger; called at start and again on SIGHUP."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.setLevel(level)
    # hypercorn's access log is noisy at INFO; keep its errors.
    logging.getLogger("hypercorn.access").setLevel(max(logging.WARNING, root.level))
