"""What the routes ask for their answers: one query-backend protocol, and its memory side.

The web layer knows nothing of where an answer comes from: every route that reads or
writes work sessions and events awaits one `QueryBackend` method, which returns the
status and the body bytes (`coordd.core.queries`' `Response`). Two implementations:

* `MemoryQueries` (here): the in-memory store, through the pure functions of
  `coordd.core.queries`; an event search (~0.1-0.4 s over 100k events) and the overrides
  file's write (fsynced) run in a worker thread, everything else on the event loop.
* `coordd.mongo.queries.MongoQueries`: search, deep paging and stats from MongoDB,
  falling back to memory when MongoDB fails; the other routes from memory.

`export` answers a `Stream` instead of body bytes (or a `Response` for a bad request):
the dispatcher sends its chunks as they come, so an export's size never sits in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import trio

from coordd.core import queries
from coordd.core.export import export_chunks, export_query
from coordd.core.params import Params
from coordd.core.queries import Response
from coordd.core.store import Store
from coordd.errors import BadRequest

__all__ = ["MemoryQueries", "QueryBackend", "Stream", "chunks_in_thread"]


@dataclass(frozen=True, slots=True)
class Stream:
    """A 200 answer sent as it is produced: `chunks` yields the body's parts (the
    dispatcher closes it when the client goes away); `filename`, when set, makes it a
    `Content-Disposition: attachment`."""

    content_type: bytes
    chunks: AsyncIterator[bytes]
    filename: str | None = None


async def chunks_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` pulled one at a time in a worker thread (producing a chunk may take
    milliseconds: the event loop goes on meanwhile); the consumer's pace is the
    producer's, so at most one chunk waits in memory."""
    while True:
        chunk = await trio.to_thread.run_sync(next, chunks, None)
        if chunk is None:
            return
        yield chunk


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

    async def export(self, params: Params, now_ms: float) -> Response | Stream: ...


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

    async def export(self, params: Params, now_ms: float) -> Response | Stream:
        """`GET /api/export` (`coordd.core.export`) over a snapshot of the held events."""
        try:
            q = export_query(params)
        except BadRequest as exc:
            return queries.error(400, str(exc))
        held = list(self.store().iter_events())  # a snapshot: the store moves on
        return Stream(q.content_type, chunks_in_thread(export_chunks(held, q)), q.filename)
