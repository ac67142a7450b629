"""What the real-server tests share: the server's URI (`make test-mongo` sets
COORDD_TEST_MONGODB_URI), their marks, and a database of their own on that server, dropped
afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any, Final

import pytest

from tests.mongo.helpers import Db

URI: Final = os.environ.get("COORDD_TEST_MONGODB_URI", "")

#: A real-server test module's `pytestmark`: selected by `-m mongo`, skipped without a server
#: (and `make test-mongo` fails on a skip).
REAL_SERVER: Final = [
    pytest.mark.mongo,
    pytest.mark.skipif(not URI, reason="COORDD_TEST_MONGODB_URI is not set"),
]


@contextlib.contextmanager
def real_db(**client_options: Any) -> Iterator[Db]:
    """A `Db` on a fresh database `coordd_test_<random>` of the server, dropped at the end.
    `client_options` go to `pymongo.MongoClient` (default: 5 s server selection)."""
    import pymongo

    client: Any = pymongo.MongoClient(URI, **{"serverSelectionTimeoutMS": 5000,
                                              **client_options})
    name = f"coordd_test_{secrets.token_hex(4)}"
    try:
        yield Db("pymongo", client=client, database=name)
    finally:
        client.drop_database(name)
        client.close()
