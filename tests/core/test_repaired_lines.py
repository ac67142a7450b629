"""Lines with invalid UTF-8 inside a JSON string: decoded with U+FFFD, kept, hashed over the
decoded text (as the old monitor, which decodes the file as UTF-8 first), and numbered alike
by the pipeline and the MongoDB re-read."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from coordd.core.enrich import Enricher
from coordd.core.event import parse_line
from coordd.core.jsvalues import event_hash
from coordd.mongo.reread import LogRereader
from coordd.plugins import keywords
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS
from coordd.tail.checkpoint import Checkpoint, file_id, read_prefix

BAD = (b'{"type":"a2a.send","agentId":"ruda","ts":1767000000002,'
       b'"data":{"n":2,"workSessionId":"ws_0","message":"\xec\xbd\x94\xeb bad \xff"}}')


def enricher() -> Enricher:
    host = PluginHost(load_entry_points=False, extra=[("keywords", keywords)], budget=1e9)
    host.start()
    return Enricher(host, host.vocabulary(), lambda: DEFAULT_MAIN_AGENTS)


def good(n: int) -> bytes:
    return json.dumps({"type": "a2a.send", "agentId": "ruda", "ts": 1767000000000 + n,
                       "data": {"n": n, "workSessionId": "ws_0"}}).encode()


def test_parse_line_replaces_each_invalid_sequence_and_says_so() -> None:
    parsed = parse_line(BAD)
    assert parsed.reason is None and parsed.repaired
    # "코" is valid; 0xeb opens a 3-byte sequence that " " ends: one U+FFFD; 0xff: one.
    assert parsed.value["data"]["message"] == "코\ufffd bad \ufffd"
    assert parse_line(b"\xff").reason == "malformed_json"
    assert not parse_line(b'{"type":"a"}').repaired


def test_event_hash_is_over_the_decoded_text() -> None:
    enriched = enricher().enrich(parse_line(BAD).value)
    assert enriched is not None
    # The old monitor: UTF-8 read (U+FFFD), JSON.parse, enrich, then
    # sha256(type|agentId|TS|JSON.stringify(data)) with U+FFFD written raw.
    data = json.dumps(enriched["data"], ensure_ascii=False, separators=(",", ":"))
    assert "\ufffd bad \ufffd" in data
    text = f"a2a.send|ruda|1767000000002|{data}"
    assert event_hash(enriched) == hashlib.sha256(text.encode("utf-8")).hexdigest()


async def test_the_reread_numbers_and_hashes_a_repaired_line_as_the_pipeline(
        tmp_path: Path) -> None:
    log = tmp_path / "coordination-events.ndjson"
    log.write_bytes(b"\n".join([good(1), BAD, good(3)]) + b"\n")
    fd = os.open(log, os.O_RDONLY)
    try:
        anchor = Checkpoint(file_id(os.fstat(fd), read_prefix(fd)), log.stat().st_size, 3, "E")
    finally:
        os.close(fd)
    rr = LogRereader(log, enricher(), lambda: anchor)
    got = [ev async for batch in rr(0) for ev in batch]
    assert [ev.seq for ev in got] == [1, 2, 3]
    stored = enricher().enrich(parse_line(BAD).value)
    assert stored is not None
    assert event_hash(got[1].as_dict()) == event_hash(stored)
