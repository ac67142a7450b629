"""Capability detection at connect: what the server lacks, and which fallback replaces it."""

from __future__ import annotations

import os
import secrets
from typing import Any

import mongomock
import pytest

from coordd.mongo.capabilities import FALLBACKS, Capabilities, is_unsupported, probe

URI = os.environ.get("COORDD_TEST_MONGODB_URI", "")
SERVER = os.environ.get("COORDD_TEST_MONGODB_SERVER", "")


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def test_not_supported_is_told_apart_from_failing_now() -> None:
    assert is_unsupported(Refused(238, "The operator $switch is not implemented yet"))
    assert is_unsupported(Refused(40573, "The $changeStream stage is only supported on "
                                         "replica sets"))
    assert is_unsupported(NotImplementedError("mongomock"))
    assert not is_unsupported(Refused(11600, "interrupted at shutdown"))
    assert not is_unsupported(TimeoutError("timed out"))


def test_missing_features_name_their_fallbacks() -> None:
    full = Capabilities.full("MongoDB 7.0.12", (7, 0, 12))
    assert full.missing() == [] and full.describe() == "MongoDB 7.0.12: every feature coordd uses"
    lean = Capabilities("FerretDB v1.24.2", (7, 0, 42), text_index=False, change_streams=False)
    assert lean.missing() == ["text_index", "change_streams"]
    assert lean.fallbacks() == {k: FALLBACKS[k] for k in ("text_index", "change_streams")}
    assert lean.as_json()["version"] == "7.0.42"


def test_a_probe_of_mongomock_leaves_nothing_behind() -> None:
    db = mongomock.MongoClient().coordd
    cap = probe(db)
    assert cap.change_streams is False  # mongomock has no change streams
    assert db.list_collection_names() == []


@pytest.mark.mongo
@pytest.mark.skipif(not URI, reason="COORDD_TEST_MONGODB_URI is not set")
def test_a_probe_of_the_real_server() -> None:
    import pymongo

    client: Any = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000)
    name = f"coordd_test_{secrets.token_hex(4)}"
    try:
        cap = probe(client[name])
        assert client[name].list_collection_names() == []
        if SERVER == "ferretdb":
            assert cap.server.startswith("FerretDB v1.24")
            # What FerretDB 1.24 on SQLite lacks (docs/mongodb.md lists the fallbacks).
            assert cap.missing() == ["text_index", "change_streams", "ttl_index",
                                     "expressions", "accumulators", "dotted_keys"]
        else:
            assert cap.server.startswith("MongoDB")
    finally:
        client.drop_database(name)
        client.close()
