"""What the routes ask for their answers: one query-backend protocol, and its memory side.

The web layer knows nothing of where an answer comes from: every route that reads or
writes work sessions and events awaits one `QueryBackend` method, which returns the
status and the body bytes (`coordd.core.queries`' `Response`). Two implementations:

* `MemoryQueries` (here): the in-memory store, through the pure functions of
  `coordd.core.queries`; an event search (~0.1-0.4 s over 100k events) and the overrides
  file's write (fsynced) run in a worker thread, everything else on the event loop.
* `coordd.mongo.queries.MongoQueries`: search, deep paging and stats from MongoDB,
  falling back to memory when MongoDB fails; the other routes from memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from coordd.core import queries
from coordd.core.params import Params
from coordd.core.queries import Response
from coordd.core.store import Store

__all__ = ["MemoryQueries", "QueryBackend"]


class QueryBackend(Protocol):
    """The routes' answers; `now_ms` is the caller's clock (epoch milliseconds), `segment`
    the work-session id as it was in the path (still percent-encoded)."""

    async def get_events(self, params: Params, now_ms: float) -> Response: ...

    async def search_events(self, params: Params, now_ms: float) -> Response: ...

    async def get_work_sessions(self, params: Params, now_ms: float) -> Response: ...

    async def search_work_sessions(self, params: Params, now_ms: float) -> Response: ...

    async def get_work_session(self, segment: str, params: Params,
                               now_ms: float) -> Response: ...

    async def patch_category(self, segment: str, body: bytes, params: Params,
                             now_ms: float) -> Response: ...

    async def get_stats(self, params: Params, now_ms: float) -> Response: ...


class MemoryQueries:
    """`QueryBackend` over the in-memory store; `store()` is the store to answer from (a
    follower replaces it on a new epoch)."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self.store = store

    async def get_events(self, params: Params, now_ms: float) -> Response:
        return queries.get_events(self.store(), params, now_ms)

    async def search_events(self, params: Params, now_ms: float) -> Response:
        # Validated and snapshotted here; the matching off the event loop.
        job = queries.search_events_job(self.store(), params, now_ms)
        return await trio.to_thread.run_sync(job)

    async def get_work_sessions(self, params: Params, now_ms: float) -> Response:
        return queries.get_work_sessions(self.store(), params, now_ms)

    async def search_work_sessions(self, params: Params, now_ms: float) -> Response:
        return queries.search_work_sessions(self.store(), params, now_ms)

    async def get_work_session(self, segment: str, params: Params,
                               now_ms: float) -> Response:
        return queries.get_work_session(self.store(), segment, params, now_ms)

    async def patch_category(self, segment: str, body: bytes, params: Params,
                             now_ms: float) -> Response:
        # Validated here (it reads the store); the overrides file is written and fsynced
        # off the event loop.
        job = queries.patch_category_job(self.store(), segment, body, now_ms, params)
        return await trio.to_thread.run_sync(job)

    async def get_stats(self, params: Params, now_ms: float) -> Response:
        return queries.get_stats(self.store(), params, now_ms)
