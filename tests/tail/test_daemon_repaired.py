"""Black-box: a line with invalid UTF-8 inside a JSON string is decoded with U+FFFD and kept
(counted as repaired), the old monitor's way; a line that is not JSON after decoding is
skipped, and the warning says where it was and what it looked like."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.daemon import Daemon, event

pytestmark = pytest.mark.slow

#: One bad byte (0xff) and a truncated two-byte sequence (0xc3 before "(") inside the
#: message string: each becomes one U+FFFD, as bytes.decode("utf-8", "replace") does.
BAD = (b'{"type":"a2a.send","agentId":"ruda","ts":1767000000002,'
       b'"data":{"n":2,"workSessionId":"ws_0","message":"bad \xff\xc3( byte"}}')


def pipeline_figures(d: Daemon) -> dict:
    health = d.get("/api/health").json()
    return health["checks"]["pipeline"][0]["observedValue"]  # type: ignore[no-any-return]


def test_invalid_utf8_inside_a_string_keeps_the_event(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    try:
        d.append(event(1), BAD, event(3))
        d.start()
        r = d.get("/api/events", params={"limit": "100"})
        body = r.json()
        assert body["total"] == 3
        assert [e["data"]["n"] for e in body["events"]] == [1, 2, 3]
        assert body["events"][1]["data"]["message"] == "bad \ufffd\ufffd( byte"
        figures = pipeline_figures(d)
        assert figures["repaired"] == 1
        assert figures["rejected"] == {}
        assert "coordd_lines_repaired_total 1.0" in d.get("/metrics").text
        session = d.get("/api/work-sessions/ws_0").json()["session"]
        assert session["eventCount"] == 3
        seqs = [e["seq"] for e in body["events"]]

        # A clean stop (snapshot) and a crash (checkpoint, log re-read) both keep it,
        # with the seq it had.
        assert d.stop() == 0
        d.start()
        assert [e["seq"] for e in d.events()] == seqs
        d.send_signal(signal.SIGKILL)
        d.proc.wait()  # type: ignore[union-attr]
        d.append(event(4))
        d.start()
        again = d.events()
        assert [e["seq"] for e in again][:3] == seqs
        assert [e["data"]["n"] for e in again] == [1, 2, 3, 4]
        assert again[1]["data"]["message"] == "bad \ufffd\ufffd( byte"
    finally:
        d.kill()


def test_a_line_that_is_not_json_after_decoding_is_skipped_with_its_offset(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    try:
        first = b'{"type":"a2a.send","ts":1,"data":{"n":1}}'
        junk = b'\xff{"type": oops, \x01 not json at all'
        d.append(first, junk, event(3))
        d.start()
        assert [e["data"]["n"] for e in d.events()] == [1, 3]
        figures = pipeline_figures(d)
        assert figures["rejected"] == {"malformed_json": 1}
        assert figures["repaired"] == 0
        warning = next(line for line in d.lines if "skipped a line" in line)
        assert f"at byte {len(first) + 1} of {d.log_path}" in warning
        # A printable, repr-style excerpt: control characters and bad bytes escaped.
        assert "'\\xff{\"type\": oops, \\x01 not json at all'" in warning
    finally:
        d.kill()
