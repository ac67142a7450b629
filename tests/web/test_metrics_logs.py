"""/metrics content from a running daemon, and the log formats."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from coordd.service.logs import JsonFormatter, setup_logging
from coordd.web.routes import route_template
from tests.daemon import Daemon, event


@pytest.mark.slow
def test_metrics_cover_every_component(tmp_path: Path) -> None:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    d = Daemon(tmp_path, "--log-format", "json")
    try:
        d.append(event(1), b"{broken", event(2))
        d.start()
        d.get("/api/work-sessions/ws_0")
        d.get("/api/events")
        text = d.get("/metrics").text
    finally:
        d.kill()
    for name in ("coordd_events_ingested_total 2.0",
                 'coordd_events_skipped_total{reason="malformed_json"} 1.0',
                 "coordd_tail_bytes_read_total", "coordd_tail_lag_bytes 0.0",
                 "coordd_tail_rotations_total", "coordd_seq 2.0", "coordd_store_events 2.0",
                 'coordd_sessions{status=', "coordd_ws_clients 0.0", "coordd_ws_drops_total",
                 'coordd_plugin_calls_total{plugin="keywords"}', "coordd_plugin_seconds_total",
                 'coordd_http_request_duration_seconds_count{method="GET",'
                 'route="/api/work-sessions/:id"}'):
        assert name in text, name
    # --log-format json: every line the daemon wrote is a JSON object
    lines = [line for line in d.lines if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)


def test_json_formatter() -> None:
    record = logging.LogRecord("coordd.x", logging.WARNING, __file__, 1, "skipped %d", (3,), None)
    out = json.loads(JsonFormatter().format(record))
    assert (out["level"], out["logger"], out["message"]) == ("WARNING", "coordd.x", "skipped 3")


def test_setup_logging_is_idempotent_and_changes_the_level() -> None:
    root = logging.getLogger()
    try:
        setup_logging("DEBUG", "plain")
        setup_logging("ERROR", "json")
        ours = [h for h in root.handlers if h.get_name() == "coordd-stderr"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
        assert root.level == logging.ERROR
    finally:
        setup_logging("WARNING", "plain")


def test_route_template_bounds_cardinality() -> None:
    assert route_template("/api/work-sessions/ws_123") == "/api/work-sessions/:id"
    assert route_template("/api/work-sessions/ws_1/category") == "/api/work-sessions/:id/category"
    assert route_template("/api/work-sessions/search") == "/api/work-sessions/search"
    assert route_template("/random/junk") == "other"
