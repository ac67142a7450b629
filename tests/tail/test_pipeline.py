"""The pipeline: seq numbering across restarts, rejection counting, checkpoint position."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from coordd.core.enrich import Enricher
from coordd.core.event import Event
from coordd.core.store import Store
from coordd.plugins.host import PluginHost
from coordd.tail.checkpoint import Checkpoint, FileId, load_checkpoint
from coordd.tail.excerpt import printable_excerpt
from coordd.tail.pipeline import Pipeline
from coordd.tail.tailer import LineBatch
from tests.tail.helpers import F1, FakeTailer, line

F2 = FileId(1, 11, 4, "b" * 64)






def enricher(prepare: Any = None) -> Enricher:
    host = PluginHost(load_entry_points=False, extra=[_keywords()])
    host.start()
    return Enricher(host, host.vocabulary(), lambda: frozenset({"main", "ruda"}),
                    prepare=prepare)


def _keywords() -> Any:
    from coordd.plugins import keywords

    return ("keywords", keywords)


async def run_pipeline(tmp_path: Path, batches: Sequence[LineBatch], *,
                       checkpoint: Checkpoint | None = None, resumed: bool = False,
                       listeners: Sequence[Any] = (),
                       prepare: Any = None) -> tuple[Pipeline, Store]:
    store = Store(max_events=1000)
    p = Pipeline(FakeTailer(batches, resumed), enricher(prepare), store,  # type: ignore[arg-type]
                 state_dir=tmp_path, checkpoint=checkpoint, checkpoint_interval=0.01,
                 listeners=listeners)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    return p, store


def ns(store: Store) -> list[tuple[int, int]]:
    return [(ev.seq, json.loads(ev.json)["data"]["n"]) for ev in store.iter_events()]


async def test_first_run_numbers_from_one_and_checkpoints(tmp_path: Path) -> None:
    batches = [LineBatch([line(1), line(2)], F1, 100, history=True),
               LineBatch([line(3)], F1, 150, history=True, caught_up=True),
               LineBatch([line(4)], F1, 200, history=False)]
    p, store = await run_pipeline(tmp_path, batches)
    assert ns(store) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    cp = load_checkpoint(tmp_path)
    assert cp is not None and (cp.file, cp.offset, cp.seq, cp.epoch) == (F1, 200, 4, p.epoch)


async def test_resume_numbers_history_backwards_from_the_checkpoint(tmp_path: Path) -> None:
    cp = Checkpoint(F1, 150, 41, "epoch-1")
    batches = [LineBatch([line(1), line(2), line(3)], F1, 150, history=True),
               LineBatch([line(4)], F1, 200, history=False),
               LineBatch([], F1, 200, history=False, caught_up=True)]
    p, store = await run_pipeline(tmp_path, batches, checkpoint=cp, resumed=True)
    assert ns(store) == [(39, 1), (40, 2), (41, 3), (42, 4)]
    assert p.epoch == store.epoch == "epoch-1"
    saved = load_checkpoint(tmp_path)
    assert saved is not None and (saved.offset, saved.seq) == (200, 42)


async def test_unmatched_checkpoint_starts_a_new_epoch(tmp_path: Path) -> None:
    cp = Checkpoint(F2, 10, 7, "old-epoch")
    batches = [LineBatch([line(1)], F1, 50, history=True, caught_up=True)]
    p, store = await run_pipeline(tmp_path, batches, checkpoint=cp, resumed=False)
    assert ns(store) == [(1, 1)]
    assert p.epoch != "old-epoch" and store.epoch == p.epoch


async def test_junk_is_counted_by_reason_and_loses_nothing_else(tmp_path: Path) -> None:
    batches = [LineBatch([line(1), b"{oops", b"", b"[1]", b'{"type":" "}', b"\xff",
                          b'{"a":NaN}', line(2)], F1, 99, history=True, caught_up=True)]
    p, store = await run_pipeline(tmp_path, batches)
    assert ns(store) == [(1, 1), (2, 2)]
    # b"\xff" decodes to U+FFFD, which is not JSON: malformed, not "repaired".
    assert p.statistics().rejected == {"malformed_json": 2, "not_object": 1, "no_type": 1,
                                       "non_finite": 1}
    assert p.statistics().repaired == 0


async def test_invalid_utf8_inside_a_string_is_repaired_and_kept(tmp_path: Path) -> None:
    bad = line(2).replace(b'"n": 2', b'"n": 2, "m": "a\xffb\xe2\x82"')
    batches = [LineBatch([line(1), bad, line(3)], F1, 99, history=True, caught_up=True)]
    p, store = await run_pipeline(tmp_path, batches)
    assert ns(store) == [(1, 1), (2, 2), (3, 3)]
    # One U+FFFD per invalid sequence: the lone 0xff, the truncated 3-byte sequence.
    assert list(store.iter_events())[1].as_dict()["data"]["m"] == "a\ufffdb\ufffd"
    stats = p.statistics()
    assert (stats.repaired, stats.rejected, stats.accepted) == (1, {}, 3)


async def test_skipped_line_warnings_say_where_the_line_is_and_how_it_began(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [line(1), b"[1]", line(2), b'{"type":" ","x":"\xff"}', b"{oops\t\x7f"]
    end = 1000 + sum(len(x) + 1 for x in lines)  # the batch starts at byte 1000
    batches = [LineBatch(lines, F1, end, history=True, caught_up=True,
                         path=Path("/var/log/c.ndjson"))]
    with caplog.at_level(logging.WARNING, logger="coordd.tail.pipeline"):
        await run_pipeline(tmp_path, batches)
    start = [1000 + sum(len(x) + 1 for x in lines[:i]) for i in range(len(lines))]
    warnings = [r.getMessage() for r in caplog.records]
    assert f"skipped a line (not_object) at byte {start[1]} of /var/log/c.ndjson: '[1]'" \
        in warnings
    assert (f"skipped a line (no_type) at byte {start[3]} of /var/log/c.ndjson: "
            "'{\"type\":\" \",\"x\":\"\\xff\"}'") in warnings
    assert (f"skipped a line (malformed_json) at byte {start[4]} of /var/log/c.ndjson: "
            "'{oops\\t\\x7f'") in warnings


def test_a_long_line_is_cut_in_its_excerpt() -> None:
    assert printable_excerpt(b"x" * 150, limit=10) == "'xxxxxxxxxx'... (150 bytes)"
    assert printable_excerpt("코드 \\".encode()) == "'코드 \\\\'"


async def test_late_write_to_a_rotated_file_keeps_the_checkpoint_forward(tmp_path: Path) -> None:
    batches = [LineBatch([line(1)], F1, 50, history=True, caught_up=True),
               LineBatch([line(2)], F2, 40, history=False),
               LineBatch([line(3)], F1, 90, history=False)]  # late write to the old file
    _, store = await run_pipeline(tmp_path, batches)
    assert ns(store) == [(1, 1), (2, 2), (3, 3)]
    cp = load_checkpoint(tmp_path)
    assert cp is not None and (cp.file, cp.offset) == (F2, 40)


async def test_a_failing_listener_does_not_stop_ingestion(tmp_path: Path) -> None:
    seen: list[int] = []

    def bad(events: Sequence[Event]) -> None:
        raise RuntimeError("listener bug")

    def good(events: Sequence[Event]) -> None:
        seen.extend(ev.seq for ev in events)

    batches = [LineBatch([line(1)], F1, 50, history=True, caught_up=True),
               LineBatch([line(2)], F1, 90, history=False)]
    _, store = await run_pipeline(tmp_path, batches, listeners=[bad, good])
    assert seen == [1, 2] and len(store) == 2


@pytest.mark.parametrize("history", [True, False])
async def test_ready_only_after_the_initial_read(tmp_path: Path, history: bool) -> None:
    store = Store(max_events=10)
    batches = [LineBatch([line(1)], F1, 50, history=True),
               LineBatch([line(2)], F1, 90, history=history, caught_up=True)]
    p = Pipeline(FakeTailer(batches, False), enricher(), store,  # type: ignore[arg-type]
                 state_dir=None, checkpoint=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run)
        assert len(store) == 2 and p.caught_up.is_set()
        nursery.cancel_scope.cancel()


async def test_prepared_sources_for_live_events_only(tmp_path: Path) -> None:
    """With an enricher that has a `prepare` (a sync worker runs) each live event reaches
    the listeners with what `prepare` made of it; the history, stored all at once, never
    has one."""
    seen: dict[int, Any] = {}

    def prepare(ev: Event, enriched: dict[str, Any], data_json: bytes | None) -> Any:
        assert data_json == json.dumps(enriched["data"], separators=(",", ":")).encode()
        return ("prepared", enriched["data"]["n"])

    def listener(events: Sequence[Event]) -> None:
        seen.update((ev.seq, ev.source) for ev in events)

    batches = [LineBatch([line(1), line(2)], F1, 100, history=True, caught_up=True),
               LineBatch([line(3), line(4)], F1, 200, history=False)]
    _, store = await run_pipeline(tmp_path, batches, listeners=[listener], prepare=prepare)
    assert seen == {1: None, 2: None, 3: ("prepared", 3), 4: ("prepared", 4)}
    assert ns(store) == [(1, 1), (2, 2), (3, 3), (4, 4)]


def test_the_rate_limited_log_says_how_many_it_dropped(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from coordd.core.pacing import RateLimitedLog

    now = [0.0]
    ratelog = RateLimitedLog(logging.getLogger("coordd.test"), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="coordd.test"):
        for t in (0.0, 1.0, 2.0, 10.0, 10.5):
            now[0] = t
            ratelog.warning("k", "skipped %s", t)
        ratelog.warning("other", "another kind")
    assert [r.getMessage() for r in caplog.records] == [
        "skipped 0.0", "skipped 10.0 (2 more like this since the last message)",
        "another kind"]
