"""The `/ws` message shapes (the old monitor's), assembled from the bytes the store keeps.

Every message is compact JSON text with the envelope `{"type", "agentId"?, "timestamp",
"epoch", "data"}` (upstream's, plus the epoch). Events are never re-serialised: each one's
stored JSON gets its `"seq"` spliced in, and messages are concatenated from those bytes.
A batch's messages are built once (`Batch.of`) and shared by every client; `coalesce`
merges the small batches a lagging client has pending into fewer frames.

Pure: no I/O, no trio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import orjson

from coordd.core.event import Event
from coordd.core.jsvalues import iso_ms

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_EVENTS",
    "LOG_FILE_NAME",
    "WELCOME",
    "Batch",
    "Envelope",
    "Message",
    "affected_sessions",
    "chunks",
    "coalesce",
    "with_seq",
]

CHUNK_EVENTS: Final = 500
CHUNK_BYTES: Final = 1 << 20
LOG_FILE_NAME: Final = "coordination-events.ndjson"
WELCOME: Final = "Connected to Task Monitor"


#: The event's JSON with `"seq"` appended (the same bytes REST answers carry).
with_seq = Event.json_with_seq


def affected_sessions(events: Sequence[Event]) -> list[str]:
    """Distinct `S(data.workSessionId)` in first-seen order."""
    return list(dict.fromkeys(ev.ws_id for ev in events if ev.ws_id is not None))


def chunks(events: Sequence[Event]) -> Iterator[Sequence[Event]]:
    """At most `CHUNK_EVENTS` events and about `CHUNK_BYTES` bytes per message."""
    start, size = 0, 0
    for i, ev in enumerate(events):
        n = len(ev.json)
        if i > start and (i - start >= CHUNK_EVENTS or size + n > CHUNK_BYTES):
            yield events[start:i]
            start, size = i, 0
        size += n
    if start < len(events):
        yield events[start:]


class Envelope:
    """Builds compact message text for one timestamp and epoch."""

    __slots__ = ("_head_tail",)

    def __init__(self, now_ms: float, epoch: str) -> None:
        self._head_tail = (
            b',"timestamp":"' + iso_ms(now_ms).encode() + b'","epoch":' + orjson.dumps(epoch)
        )

    def message(self, mtype: bytes, data: bytes, agent: bytes = b"") -> str:
        # Key order as upstream: type, agentId?, timestamp, (epoch), data.
        out = b'{"type":"' + mtype + b'"' + agent + self._head_tail + b',"data":' + data + b"}"
        return out.decode("utf-8", "replace")

    def event_log(self) -> str:
        return self.message(b"event_log", b'{"event":"change","file":"' + LOG_FILE_NAME.encode()
                            + b'"}')

    def events(self, blob: bytes, affected: list[str]) -> str:
        """`coordination_event_new` from comma-joined event JSON (`with_seq`)."""
        return self.message(b"coordination_event_new", b'{"events":[' + blob
                            + b'],"affectedWorkSessions":' + orjson.dumps(affected) + b"}")

    def events_text(self, events: str, affected: list[str]) -> tuple[str, int, int]:
        """The same from text, with where the events sit in it (for merging later)."""
        head = self.message(b"coordination_event_new", b'{"events":[')[:-1]
        tail = ('],"affectedWorkSessions":' + orjson.dumps(affected).decode("utf-8", "replace")
                + "}}")
        return head + events + tail, len(head), len(head) + len(events)

    def chunk(self, chunk: Sequence[Event]) -> str:
        return self.events(b",".join([with_seq(ev) for ev in chunk]), affected_sessions(chunk))

    def continuation(self, ev: Event) -> str:
        # The raw agentId value as upstream forwards it (absent stays absent); these
        # events are rare, so parsing the stored JSON once here costs nothing.
        try:
            parsed = orjson.loads(ev.json)
        except orjson.JSONDecodeError:
            parsed = {}
        agent = b""
        if isinstance(parsed, dict) and "agentId" in parsed:
            agent = b',"agentId":' + orjson.dumps(parsed["agentId"])
        data = (b'{"event":"change","file":"' + LOG_FILE_NAME.encode() + b'","eventType":'
                + orjson.dumps(ev.type) + b',"eventData":' + with_seq(ev) + b"}")
        return self.message(b"continuation_event", data, agent)

    def status(self, ws_id: str, old: str, new: str, at: float, seq: int, notice: int) -> str:
        """`work_session_status`: a session's status changed (by an event or the clock)."""
        return self.message(b"work_session_status", orjson.dumps(
            {"workSessionId": ws_id, "from": old, "to": new, "at": at, "seq": seq,
             "notice": notice}))

    def attention(self, op: str, item: dict[str, object], seq: int, notice: int) -> str:
        """`attention`: an item opened or closed (`item` in its `/api/attention` shape)."""
        return self.message(b"attention", orjson.dumps(
            {"op": op, "item": item, "seq": seq, "notice": notice}))

    def resync(self, reason: str, epoch: str, seq: int) -> str:
        return self.message(b"resync_required",
                            orjson.dumps({"reason": reason, "epoch": epoch, "seq": seq}))


#: A message ready to send and the highest seq it carries (0 for none).
Message = tuple[str, int]


class Batch:
    """One published batch: its messages, built once and shared by every client queue.

    A batch that fits in one `coordination_event_new` remembers where its events sit in
    that message (`span`), so that a client that fell a few batches behind can be sent
    them merged into one event_log + coordination_event_new instead of two frames per
    batch, without keeping a second copy of the events. `size` (characters of all its
    messages) is what it costs each client queue that holds it.
    """

    __slots__ = ("affected", "count", "epoch", "last", "messages", "notice", "now_ms", "size",
                 "span", "tail")

    def __init__(self, epoch: str, now_ms: float, messages: tuple[Message, ...]) -> None:
        self.epoch = epoch
        self.now_ms = now_ms
        self.messages = messages
        self.size = sum(len(text) for text, _ in messages)
        self.span: tuple[int, int] | None = None
        self.affected: list[str] = []
        self.tail: tuple[Message, ...] = ()
        self.count = 0
        self.last = 0
        #: The notice number of a notice's batch (0: not a notice).
        self.notice = 0

    @classmethod
    def of(cls, events: Sequence[Event], epoch: str, now_ms: float) -> Batch:
        env = Envelope(now_ms, epoch)
        tail = tuple((env.continuation(ev), ev.seq) for ev in events
                     if ev.type.startswith("continuation."))
        parts = list(chunks(events))
        span = None
        affected: list[str] = []
        if len(parts) == 1:
            affected = affected_sessions(events)
            blob = b",".join([with_seq(ev) for ev in events]).decode("utf-8", "replace")
            text, start, end = env.events_text(blob, affected)
            span = (start, end)
            body: tuple[Message, ...] = ((text, events[-1].seq),)
        else:
            body = tuple((env.chunk(c), c[-1].seq) for c in parts)
        batch = cls(epoch, now_ms, ((env.event_log(), 0), *body, *tail))
        batch.span, batch.affected, batch.tail = span, affected, tail
        batch.count, batch.last = len(events), events[-1].seq
        return batch

    def events_json(self) -> str:
        """The comma-joined events of a one-chunk batch, cut out of its message."""
        assert self.span is not None
        start, end = self.span
        return self.messages[1][0][start:end]


def coalesce(group: list[Batch]) -> Iterator[tuple[str, int, str]]:
    """The messages of a client's pending batches, as (text, seq, epoch).

    Consecutive small batches of one epoch are merged within the per-message bounds: one
    `event_log`, one `coordination_event_new` with all their events in order, then their
    `continuation_event`s. A client that keeps up gets each batch's shared messages.
    """
    run: list[Batch] = []
    count = size = 0
    for batch in [*group, None]:
        fits = (batch is not None and batch.span is not None and bool(run)
                and batch.epoch == run[0].epoch and count + batch.count <= CHUNK_EVENTS
                and size + batch.size <= CHUNK_BYTES)
        if run and not fits:
            yield from _merged(run)
            run, count, size = [], 0, 0
        if batch is None:
            break
        if batch.span is not None:
            run.append(batch)
            count, size = count + batch.count, size + batch.size
        else:
            for text, seq in batch.messages:
                yield text, seq, batch.epoch


def _merged(run: list[Batch]) -> Iterator[tuple[str, int, str]]:
    last = run[-1]
    if len(run) == 1:
        for text, seq in last.messages:
            yield text, seq, last.epoch
        return
    env = Envelope(last.now_ms, last.epoch)
    affected = list(dict.fromkeys(ws for b in run for ws in b.affected))
    text, _, _ = env.events_text(",".join([b.events_json() for b in run]), affected)
    yield env.event_log(), 0, last.epoch
    yield text, last.last, last.epoch
    for b in run:
        for text, seq in b.tail:
            yield text, seq, last.epoch
