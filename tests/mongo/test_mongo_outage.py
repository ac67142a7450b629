"""Outages with the real pymongo driver: a port nobody listens on, short timeouts.

The worker keeps running, `offer` never waits, the lag grows and `statistics()` says "down"
with the driver's error; once a reachable database takes the sink's place every event lands
exactly once. (Real sockets: these tests run on the wall clock, with small back-off.)
"""

from __future__ import annotations

import socket
from typing import Any

import mongomock
import pymongo
import pytest
import trio

from coordd.config import MongoConfig
from coordd.core.event import Event
from coordd.errors import ConfigError, SinkUnavailable
from coordd.mongo.sink import PymongoSink, SyncMarker
from coordd.mongo.sync import SyncSettings, SyncWorker
from tests.mongo.helpers import Daemon, assert_exactly_once, enriched_events

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def unreachable_client(port: int) -> Any:
    return pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                               serverSelectionTimeoutMS=150, connectTimeoutMS=150)


class Switchable:
    """A sink whose backend the test replaces: MongoDB "comes back" at another address."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Db:
    """`assert_exactly_once` reads documents through this."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def events(self) -> list[dict[str, Any]]:
        return list(self.client.task_monitor.coordination_events.find({}, {"_id": 0}))


async def test_down_then_back_every_event_exactly_once() -> None:
    port = closed_port()
    real = unreachable_client(port)
    sink = Switchable(PymongoSink(real))
    d = Daemon()
    settings = SyncSettings(batch_size=20, batch_interval=0.01, buffer_events=50,
                            backoff_initial=0.02, backoff_max=0.1)
    worker = SyncWorker(sink, d.source(), settings)
    d.listeners.append(worker.offer)
    evs = enriched_events(400)
    stored: list[Event] = []
    with trio.fail_after(60):  # a hang guard, not a timing assertion
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            stored += d.feed(evs[:10])
            assert worker.statistics().pending == 10  # taken at once, no await needed
            for _ in range(3000):
                stats = worker.statistics()
                if stats.state == "down" and stats.errors >= 3:
                    break
                if len(stored) < 200:
                    stored += d.feed(evs[len(stored):len(stored) + 5])
                await trio.sleep(0.01)
            stats = worker.statistics()
            assert stats.state == "down"
            assert stats.last_error is not None and "unreachable" in stats.last_error
            assert str(port) in stats.last_error
            assert stats.lag == len(stored) and stats.synced_seq == 0
            assert stats.pending <= 50
            stored += d.feed(evs[len(stored):])
            assert worker.statistics().lag == len(stored) > stats.lag
            back: Any = mongomock.MongoClient()
            sink.inner = PymongoSink(back)
            await worker.wait_synced(stored[-1].seq)
            nursery.cancel_scope.cancel()
    real.close()
    assert_exactly_once(_Db(back), stored)  # type: ignore[arg-type]  # duck-typed Db
    stats = worker.statistics()
    assert (stats.state, stats.lag, stats.duplicates) == ("connected", 0, 0)
    assert PymongoSink(back).read_marker() == SyncMarker("E1", 400)


def test_sink_from_config_reports_an_unreachable_server() -> None:
    port = closed_port()
    sink = PymongoSink.from_config(MongoConfig(uri=f"mongodb://127.0.0.1:{port}",
                                               server_selection_timeout=0.2))
    with pytest.raises(SinkUnavailable, match="unreachable") as info:
        sink.ensure_schema()
    assert len(str(info.value)) <= 300  # the topology dump is cut for health checks
    with pytest.raises(SinkUnavailable):
        sink.write_events([{"eventHash": "x"}])
    sink.close()
    sink.close()


def test_the_sink_says_at_once_when_the_server_is_known_to_be_down() -> None:
    """`unreachable()` reads what the driver last saw (no round trip): None before the first
    attempt and for a fake client, the driver's error once an attempt failed, None again
    when a server answers."""
    port = closed_port()
    sink = PymongoSink.from_config(MongoConfig(uri=f"mongodb://127.0.0.1:{port}",
                                               server_selection_timeout=0.2,
                                               operation_timeout=0.5))
    assert sink.unreachable() is None  # not tried yet: try
    with pytest.raises(SinkUnavailable):
        sink.read_marker()
    reason = sink.unreachable()
    assert reason is not None and reason.startswith("MongoDB unreachable: ")
    assert f"127.0.0.1:{port}" in reason and len(reason) <= 300
    sink.close()
    assert PymongoSink(mongomock.MongoClient()).unreachable() is None


def test_a_uri_that_is_not_mongodb_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[mongo\] uri"):
        PymongoSink.from_uri("http://localhost:27017")


async def test_shutdown_is_not_held_up_by_an_unreachable_server() -> None:
    port = closed_port()
    sink = PymongoSink.from_uri(f"mongodb://127.0.0.1:{port}", server_selection_timeout=0.5)
    d = Daemon()
    worker = SyncWorker(sink, d.source(), SyncSettings(flush_timeout=0.5))
    d.listeners.append(worker.offer)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            d.feed(enriched_events(30))
            await trio.sleep(0.2)  # a server selection is in flight in a thread
            nursery.cancel_scope.cancel()
    assert worker.statistics().synced_seq == 0
