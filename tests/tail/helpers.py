"""Helpers shared by the tests of this package (no test module imports another)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import trio

from coordd.tail.checkpoint import FileId
from coordd.tail.tailer import LineBatch

F1 = FileId(1, 10, 4, "a" * 64)


def line(n: int) -> bytes:
    return json.dumps({"type": "a2a.send", "agentId": "ruda", "ts": 1_000 + n,
                       "data": {"n": n, "workSessionId": "ws_1"}}).encode()


class FakeTailer:
    """Sends the given batches, then waits (like a tailer on a quiet log)."""

    def __init__(self, batches: Sequence[LineBatch], resumed: bool) -> None:
        self.batches = list(batches)
        self.resumed = resumed

    async def run(self, send: trio.MemorySendChannel[LineBatch], *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with send:
            for b in self.batches:
                await send.send(b)
            await trio.sleep_forever()
