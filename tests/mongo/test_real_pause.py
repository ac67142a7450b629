"""The outage path against the real server: FerretDB (started by `make test-mongo`, its pid in
COORDD_TEST_FERRETDB_PID) is stopped (SIGSTOP: it accepts nothing and answers nothing, as a
hung or unreachable server) while events keep arriving, then resumed (SIGCONT). The sync
worker never blocks the daemon, says the server is down, and once it answers again every
event is in MongoDB exactly once, the marker at the last seq."""

from __future__ import annotations

import os
import secrets
import signal
from typing import Any

import pytest
import trio

from coordd.mongo.sink import SyncMarker
from coordd.mongo.sync import SyncWorker
from tests.mongo.helpers import (
    FAST,
    Daemon,
    Db,
    assert_exactly_once,
    enriched_events,
    eventually,
)

URI = os.environ.get("COORDD_TEST_MONGODB_URI", "")
PID = os.environ.get("COORDD_TEST_FERRETDB_PID", "")
#: Where make test-mongo keeps the server's current pid (the outage test restarts it).
PIDFILE = os.environ.get("COORDD_TEST_FERRETDB_PIDFILE", "")

pytestmark = [
    pytest.mark.mongo,
    pytest.mark.skipif(not URI, reason="COORDD_TEST_MONGODB_URI is not set"),
    pytest.mark.skipif(not PID, reason="needs the server make test-mongo started "
                       "(COORDD_TEST_FERRETDB_PID) to stop and resume it"),
]


def server_pid() -> int:
    """The server's pid now: the pid file's when there is one, else the first process's."""
    if PIDFILE:
        with open(PIDFILE) as f:
            return int(f.read())
    return int(PID)


async def test_server_stopped_and_resumed_mid_stream_loses_nothing_and_writes_once() -> None:
    import pymongo

    # Short driver timeouts: a stopped server is noticed in well under a second.
    client: Any = pymongo.MongoClient(URI, serverSelectionTimeoutMS=500, socketTimeoutMS=500,
                                      connectTimeoutMS=500)
    name = f"coordd_test_{secrets.token_hex(4)}"
    db = Db("pymongo", client=client, database=name)
    pid = server_pid()
    evs = enriched_events(600, seed=5)
    daemon = Daemon()
    stored = daemon.feed(evs[:200])
    worker = SyncWorker(db.sink, daemon.source(), FAST)
    stopped = False
    try:
        with trio.fail_after(120):  # a hang guard, not a timing assertion
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                await worker.wait_synced(200)
                os.kill(pid, signal.SIGSTOP)
                stopped = True
                # Events keep arriving while the server is gone: offered, never waited on.
                for i in range(200, 400, 50):
                    stored += daemon.feed(evs[i:i + 50])
                    await trio.sleep(0.2)
                await eventually(lambda: worker.statistics().consecutive_failures > 0)
                down = worker.statistics()
                assert down.state != "connected" and down.last_error
                assert down.lag >= 200 and down.synced_seq <= 400
                os.kill(pid, signal.SIGCONT)
                stopped = False
                stored += daemon.feed(evs[400:])
                await worker.wait_synced(600)
                up = worker.statistics()
                assert up.state == "connected" and up.lag == 0
                nursery.cancel_scope.cancel()
        assert_exactly_once(db, stored)
        assert db.marker() == SyncMarker("E1", 600)
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        client.drop_database(name)
        client.close()
