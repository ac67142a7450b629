"""`AttentionRunner`: the tracker fed by stored batches and by its own timer task.

Trio's autojump clock drives time: the runner's clock is `BASE` plus trio's time, so a
deadline in event milliseconds is a point on trio's clock, and each test checks that a
change caused only by time is published at its boundary (within 1 ms), not before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from coordd.config import AttentionConfig
from coordd.core.attention import Change, ItemChange, StatusChange
from coordd.core.event import Event
from coordd.core.vocabulary import ARCHIVE_AFTER_MS
from coordd.service.attention import AttentionRunner

#: The runner's clock at trio time 0 (epoch ms).
BASE = 1_771_330_358_110.0
REPLY_S = 60.0
#: Longer than the archive delay: no session falls silent in these tests.
SILENT_S = 2 * ARCHIVE_AFTER_MS / 1000


def clock_ms() -> float:
    return BASE + trio.current_time() * 1000


def at_ms(trio_s: float) -> float:
    return BASE + trio_s * 1000


def ev(seq: int, ts: float, etype: str = "a2a.send", ws: str = "ws_1", *,
       to: str = "ruda", **data: Any) -> Event:
    return Event(seq, {"type": etype, "agentId": "main", "ts": ts,
                       "data": {"workSessionId": ws, "fromAgent": "main", "toAgent": to,
                                **data}})


@dataclass
class Published:
    """What the runner handed to the hub, with trio's time at each call."""

    calls: list[tuple[float, list[Change]]] = field(default_factory=list)

    def __call__(self, changes: Any) -> None:
        self.calls.append((trio.current_time(), list(changes)))

    @property
    def changes(self) -> list[Change]:
        return [c for _, batch in self.calls for c in batch]


def new_runner(published: Published) -> AttentionRunner:
    config = AttentionConfig(reply_timeout=REPLY_S, silent_after=SILENT_S, closed_kept=10)
    return AttentionRunner(config, published, clock_ms=clock_ms)


async def started(nursery: trio.Nursery, published: Published) -> AttentionRunner:
    runner = new_runner(published)
    await nursery.start(runner.run)
    return runner


async def sleep_until(trio_s: float) -> None:
    await trio.sleep(trio_s - trio.current_time())


async def test_prime_builds_the_state_and_pushes_nothing(
    autojump_clock: Any, nursery: trio.Nursery,
) -> None:
    published = Published()
    runner = await started(nursery, published)
    await trio.sleep(1)
    now = clock_ms()
    history = [
        ev(1, now - 300_000),  # unanswered for five minutes: overdue already
        ev(2, now - 200_000, "a2a.response", "ws_2", outcome="failed"),
        ev(3, now - 100_000, "a2a.send", "ws_3"),
        ev(4, now - 90_000, "a2a.complete", "ws_3"),  # answered
    ]
    assert runner.prime(history) == 4
    assert sorted(i.kind for i in runner.tracker.open_items()) == ["awaiting_reply", "failed"]
    await trio.sleep(600)
    assert published.calls == []


async def test_batches_before_prime_are_ignored(
    autojump_clock: Any, nursery: trio.Nursery,
) -> None:
    published = Published()
    runner = await started(nursery, published)
    runner.listener([ev(1, clock_ms())])  # part of the history: prime reads it
    assert runner.tracker.next_deadline() is None
    await trio.sleep(10 * REPLY_S)
    assert published.calls == []
    assert runner.prime([]) == 0
    await trio.sleep(10 * REPLY_S)
    assert published.calls == []
    assert runner.tracker.open_items() == []


async def test_an_unanswered_send_opens_at_the_reply_timeout_and_a_reply_closes_it(
    autojump_clock: Any, nursery: trio.Nursery,
) -> None:
    published = Published()
    runner = await started(nursery, published)
    runner.prime([])
    await trio.sleep(5)
    sent_at = trio.current_time()
    runner.listener([ev(1, clock_ms())])
    assert published.calls == []  # a first send changes nothing yet
    deadline = sent_at + REPLY_S
    await sleep_until(deadline - 0.002)
    assert published.calls == []
    await sleep_until(deadline + 1)
    [(when, changes)] = published.calls
    assert when == pytest.approx(deadline, abs=0.001)
    [change] = changes
    assert isinstance(change, ItemChange) and change.op == "open"
    assert change.item.kind == "awaiting_reply"
    assert change.item.seq == 1
    assert change.item.opened_at == pytest.approx(at_ms(deadline), abs=1)
    assert runner.ticks >= 1

    published.calls.clear()
    replied = trio.current_time()
    runner.listener([ev(2, clock_ms(), "a2a.response")])
    [(when, changes)] = published.calls  # at once, from the listener
    assert when == replied
    [change] = changes
    assert isinstance(change, ItemChange) and change.op == "close"
    assert change.item.id == "awaiting_reply:ws_1:pair:main_ruda"
    assert runner.tracker.open_items() == []


async def test_a_session_is_archived_on_the_clock_with_no_new_event(
    autojump_clock: Any, nursery: trio.Nursery,
) -> None:
    published = Published()
    runner = await started(nursery, published)
    runner.prime([])
    await trio.sleep(3)
    last = trio.current_time()
    runner.listener([ev(1, clock_ms(), "task.update", status="running")])
    deadline = last + (ARCHIVE_AFTER_MS + 1) / 1000
    await sleep_until(deadline - 0.002)
    assert published.calls == []
    assert runner.tracker.status_of("ws_1") == "ACTIVE"
    await sleep_until(deadline + 60)
    [(when, changes)] = published.calls
    assert when == pytest.approx(deadline, abs=0.001)
    assert changes == [StatusChange("ws_1", "ACTIVE", "ARCHIVED", at_ms(last) + ARCHIVE_AFTER_MS
                                    + 1)]


async def test_a_new_event_wakes_the_timer_for_an_earlier_deadline(
    autojump_clock: Any, nursery: trio.Nursery,
) -> None:
    published = Published()
    runner = await started(nursery, published)
    # The history leaves one deadline, a day away: the runner sleeps for it.
    runner.prime([ev(1, clock_ms(), "a2a.complete")])
    await trio.sleep(100)
    assert runner.tracker.next_deadline() == pytest.approx(at_ms(ARCHIVE_AFTER_MS / 1000),
                                                           abs=2)
    ticks = runner.ticks
    sent_at = trio.current_time()
    runner.listener([ev(2, clock_ms(), "a2a.send", "ws_2")])
    await sleep_until(sent_at + REPLY_S + 1)
    assert runner.ticks > ticks
    [(when, changes)] = published.calls
    assert when == pytest.approx(sent_at + REPLY_S, abs=0.001)
    assert [(c.op, c.item.work_session_id) for c in changes
            if isinstance(c, ItemChange)] == [("open", "ws_2")]


async def test_reset_starts_empty_and_live(autojump_clock: Any, nursery: trio.Nursery) -> None:
    published = Published()
    runner = await started(nursery, published)
    runner.prime([ev(1, clock_ms() - 600_000)])
    old = runner.tracker
    assert old.open_items() != []
    runner.reset()
    assert runner.tracker is not old
    assert runner.tracker.open_items() == []
    assert runner.tracker.next_deadline() is None
    assert runner.tracker.status_of("ws_1") is None
    # The old tracker's archive deadline does not fire; the new one's send does.
    sent_at = trio.current_time()
    runner.listener([ev(2, clock_ms(), "a2a.send", "ws_9")])
    await sleep_until(ARCHIVE_AFTER_MS / 1000 - 400)  # past the old one, before ws_9's
    [(when, [change])] = published.calls
    assert when == pytest.approx(sent_at + REPLY_S, abs=0.001)
    assert isinstance(change, ItemChange) and change.op == "open"
    assert change.item.work_session_id == "ws_9"


async def test_reset_without_prime_makes_the_listener_live(
    autojump_clock: Any, nursery: trio.Nursery,
) -> None:
    published = Published()
    runner = await started(nursery, published)
    runner.reset()  # a follower's new epoch: no history to read
    runner.listener([ev(1, clock_ms(), "a2a.response", outcome="no_reply")])
    [(_, [change])] = published.calls
    assert isinstance(change, ItemChange)
    assert (change.op, change.item.kind) == ("open", "failed")
