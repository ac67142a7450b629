"""The whole daemon in-process with MongoDB (mongomock behind the same seam as the real
client): a tailing instance and a follower over one database answer the same over HTTP,
and a restarted tailing instance comes back warm, as it was."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import mongomock
import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from coordd.config import Config
from coordd.service.service import Service
from coordd.synth.gen import lines
from tests.mongo.helpers import eventually, service_config

ROUTES = [
    ("/api/events", {"limit": "1000"}),
    ("/api/events", {"type": "a2a.send,a2a.response", "limit": "7"}),
    ("/api/events", {"since": "0", "limit": "50"}),
    ("/api/work-sessions", {"limit": "1000"}),
    ("/api/work-sessions", {"role": "conversation.main", "type": "a2a.response"}),
    ("/api/events/search", {"q": "ruda", "limit": "20"}),
    ("/api/work-sessions/search", {"q": "eden"}),
    ("/api/stats", {}),
]


def config(tmp_path: Path, name: str, **extra: dict[str, object]) -> Config:
    return service_config(tmp_path, name, **{"store": {"max_events": 120}, **extra})


def append(tmp_path: Path, n: int, seed: int) -> None:
    log = tmp_path / "logs" / "coordination-events.ndjson"
    log.parent.mkdir(exist_ok=True)
    with open(log, "ab") as f:
        f.writelines(lines(n, seed=seed))




async def resumed(port: int, since: int, epoch: str) -> list[int]:
    """The seqs a WebSocket client resuming with `since`/`epoch` is replayed."""
    url = f"ws://127.0.0.1:{port}/ws?since={since}&epoch={epoch}"
    with trio.fail_after(20):  # a hang guard
        async with open_websocket_url(url) as ws:
            hello = orjson.loads(await ws.get_message())
            assert (hello["type"], hello["epoch"]) == ("connected", epoch)
            seqs: list[int] = []
            while len(seqs) < hello["data"]["seq"] - since:
                msg = orjson.loads(await ws.get_message())
                assert msg["type"] != "resync_required", msg
                if msg["type"] == "coordination_event_new":
                    seqs += [e["seq"] for e in msg["data"]["events"]]
            return seqs


async def bodies(port: int) -> list[Any]:
    out = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for path, params in ROUTES:
            r = await client.get(path, params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert "degraded" not in body, body
            out.append(body)
    return out


async def attention(port: int) -> list[Any]:
    """Open and recently closed attention items (without their age, which moves)."""
    out: list[Any] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for state in ("open", "closed"):
            body = (await client.get("/api/attention", params={"state": state})).json()
            out.append([{k: v for k, v in item.items() if k != "ageMs"}
                        for item in body["items"]])
    assert out[0] or out[1], "the log opens no attention item: the comparison would be empty"
    return out


async def test_a_follower_answers_like_the_tailing_instance_over_http(tmp_path: Path) -> None:
    client = mongomock.MongoClient()
    append(tmp_path, 300, seed=11)
    tailing = Service(config(tmp_path, "a"), mongo_client=client)
    follower = Service(config(tmp_path, "b", mode={"follower": True}), mongo_client=client)
    async with trio.open_nursery() as nursery:
        a = await nursery.start(tailing.run)
        assert tailing.mongo is not None and tailing.mongo.sync is not None
        await tailing.mongo.sync.wait_synced(tailing.store.last_seq)
        b = await nursery.start(follower.run)
        assert follower.tailer is None and follower.pipeline is None
        assert follower.mongo is not None and follower.mongo.sync is None
        assert follower.store.last_seq == tailing.store.last_seq == 120
        assert await bodies(b.port) == await bodies(a.port)
        assert await attention(b.port) == await attention(a.port)

        append(tmp_path, 40, seed=12)
        await eventually(lambda: follower.store.last_seq == 160)
        assert await bodies(b.port) == await bodies(a.port)
        assert await attention(b.port) == await attention(a.port)
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"http://127.0.0.1:{b.port}/api/health")).json()
            tailing_health = (await http.get(f"http://127.0.0.1:{a.port}/api/health")).json()
        assert health["checks"]["follower"][0]["status"] == "pass"
        # What the server lacks, probed at connect, and the fallback in use (mongomock has
        # no change streams: the follower polls).
        server = tailing_health["checks"]["mongo-server"][0]
        assert server["observedValue"]["missing"] == ["change_streams"]
        assert "the follower polls the sync marker" in server["observedValue"]["fallbacks"][
            "change_streams"]
        # A WebSocket client of the tailing instance resumes on the follower.
        assert await resumed(b.port, 150, tailing.store.epoch) == list(range(151, 161))
        follower.request_shutdown()
        tailing.request_shutdown()
    assert not (tmp_path / "b" / "state" / "checkpoint.json").exists()


async def test_a_restart_with_mongodb_is_warm_and_the_same(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = mongomock.MongoClient()
    append(tmp_path, 200, seed=13)
    first = Service(config(tmp_path, "a"), mongo_client=client)
    async with trio.open_nursery() as nursery:
        a = await nursery.start(first.run)
        assert first.mongo is not None and first.mongo.sync is not None
        await first.mongo.sync.wait_synced(first.store.last_seq)
        before = await bodies(a.port)
        items_before = await attention(a.port)
        epoch = first.store.epoch
        first.request_shutdown()
    caplog.set_level(logging.INFO)
    second = Service(config(tmp_path, "a"), mongo_client=client)
    async with trio.open_nursery() as nursery:
        b = await nursery.start(second.run)
        assert "120 events loaded from MongoDB, 120 log lines skipped" in caplog.text
        assert second.pipeline is not None and second.pipeline.statistics().accepted == 120
        assert (second.store.epoch, second.store.last_seq) == (epoch, 120)
        assert await bodies(b.port) == before
        assert await attention(b.port) == items_before
        # seq and epoch survived the restart: a client resumes where it was.
        assert await resumed(b.port, 110, epoch) == list(range(111, 121))
        second.request_shutdown()
