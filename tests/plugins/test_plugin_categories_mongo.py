"""A plugin's category in the MongoDB tier: the documents the sync worker writes, a warm
restart's history and a follower's answers all keep it (in-process, mongomock)."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import mongomock
import pytest
import trio

from coordd.config import Config
from coordd.mongo.schema import EVENTS, SESSIONS
from coordd.service.service import Service
from tests.mongo.helpers import eventually, service_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("coordd_rules") is None,
                                reason="plugins/coordd-rules is not installed")


def config(tmp_path: Path, name: str, **extra: dict[str, object]) -> Config:
    toml = tmp_path / "coordd.toml"
    toml.write_text("[plugins.rules.categories.billing]\npatterns = ['\\binvoice\\b']\n")
    return service_config(tmp_path, name, toml=toml, **extra)


def write_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "coordination-events.ndjson"
    log.parent.mkdir(exist_ok=True)
    events = [("ws_bill", "please send the invoice"), ("ws_code", "코드 구현 진행 상황 공유")]
    with open(log, "w") as f:
        for n, (ws, message) in enumerate(events):
            f.write(json.dumps({"type": "a2a.send", "agentId": "ruda", "ts": 1_767_000_000_000 + n,
                                "data": {"fromAgent": "ruda", "toAgent": "main",
                                         "workSessionId": ws, "message": message}}) + "\n")


async def billing_sessions(port: int) -> list[str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.get("/api/work-sessions", params={"viewCategory": "billing"})
        assert r.status_code == 200, r.text
        return [s["workSessionId"] for s in r.json()["sessions"]]


async def test_a_plugin_category_in_documents_warm_restarts_and_followers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("COORDD_PLUGINS", "keywords,rules")
    client: Any = mongomock.MongoClient()
    write_log(tmp_path)
    tailing = Service(config(tmp_path, "a"), mongo_client=client)
    follower = Service(config(tmp_path, "b", mode={"follower": True}), mongo_client=client)
    async with trio.open_nursery() as nursery:
        a = await nursery.start(tailing.run)
        assert tailing.mongo is not None and tailing.mongo.sync is not None
        await tailing.mongo.sync.wait_synced(tailing.store.last_seq)
        db = client[tailing.config.mongo.database]
        doc = db[EVENTS].find_one({"data.workSessionId": "ws_bill"})
        assert (doc["collabCategory"], doc["derived"]["category"]) == ("billing", "billing")
        await eventually(lambda: db[SESSIONS].find_one({"_id": "ws_bill"}) is not None)
        assert db[SESSIONS].find_one({"_id": "ws_bill"})["collabCategory"] == "billing"
        assert await billing_sessions(a.port) == ["ws_bill"]
        b = await nursery.start(follower.run)
        assert await billing_sessions(b.port) == ["ws_bill"]
        follower.request_shutdown()
        tailing.request_shutdown()
    (tmp_path / "a" / "state" / "snapshot.bin").unlink()  # warm from MongoDB, not the snapshot
    caplog.set_level(logging.INFO)
    second = Service(config(tmp_path, "a"), mongo_client=client)
    async with trio.open_nursery() as nursery:
        c = await nursery.start(second.run)
        assert "2 events loaded from MongoDB" in caplog.text
        assert [ev.category for ev in second.store.iter_events()] == ["billing",
                                                                       "engineering_build"]
        assert await billing_sessions(c.port) == ["ws_bill"]
        second.request_shutdown()
