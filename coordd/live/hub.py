"""WebSocket fan-out: live push to every `/ws` client, with `(epoch, seq)` resume.

The pipeline calls `Hub.publish(events)` on the event loop after the store took a
batch. `publish` is synchronous and never blocks: it builds the batch's messages once
(compact JSON text) and puts the batch on each client's bounded queue with
`send_nowait`. A client whose backlog is over a bound (batches, characters, or half the
replay window in events) is dropped on the spot: it leaves the fan-out at once and its
task closes the socket with code 1013 and a reason saying where to resume
(`since=<last seq it got>&epoch=<epoch>`), which the ring can still replay. Nothing one
client does can delay another client or the publisher. `close_all()` ends every
connection with 1001 (and the same resume hint) at shutdown.

The last `replay_window` events are kept in a ring. A client connecting with
`/ws?since=<seq>&epoch=<epoch>` gets, after `connected`, every event it missed as
`coordination_event_new` messages, then the live stream, with no gap and no duplicate:
the client's queue is registered and the ring snapshotted in the same synchronous step, so
every batch published afterwards is in the queue and none of them is in the snapshot.
When the missed events are not all in the ring (another epoch, `since` too old or not a
number) the client gets `resync_required` instead, then live messages, and re-fetches over
REST. Nothing is silently skipped.

Message shapes (every message also carries `"epoch"` at the top level; built in
`coordd.live.messages`):

- `connected`: `data: {message, epoch, seq}`, `seq` being the last seq at connect time;
- per batch: `event_log`, then `coordination_event_new` (`data: {events, affectedWorkSessions}`,
  each event with its `seq` spliced in), then one `continuation_event` per `continuation.*`
  event (the old monitor announced only the last one of a batch). A large batch is
  split into several `coordination_event_new` messages of at most 500 events and about
  1 MiB, so that no frame is unboundedly large;
- `resync_required`: `data: {reason, epoch, seq}`.

A client that is a few batches behind when its task wakes up gets them merged (one
`event_log`, one `coordination_event_new` with all their events in order, then their
`continuation_event`s) instead of two frames per batch: each frame costs the server far
more than its bytes, and merging is what lets 100 clients keep up with a fast log.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
import trio

from coordd.core.attention import Change, ItemChange
from coordd.core.event import Event
from coordd.live.messages import WELCOME, Batch, Envelope, chunks, coalesce
from coordd.live.subscription import EVERYTHING, PARAMETERS, Subscription, parse_subscription

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_TOO_SLOW", "Hub", "HubStats"]

log = logging.getLogger(__name__)

#: "Try Again Later": the client fell behind and should reconnect with `since`.
CLOSE_TOO_SLOW: Final = 1013
#: The server is shutting down (`Hub.close_all`).
CLOSE_GOING_AWAY: Final = 1001
#: A request the hub will not serve (a malformed subscription).
CLOSE_POLICY: Final = 1008
_DIGITS: Final = re.compile(r"[0-9]{1,18}")
#: How long the close handshake of a closed client may take before its task gives up.
CLOSE_TIMEOUT: Final = 5.0


class WebsocketLike(Protocol):
    """The part of Quart's `websocket` object the hub uses."""

    @property
    def args(self) -> Any: ...

    async def accept(self) -> None: ...

    async def receive(self) -> str | bytes: ...

    async def send(self, data: str) -> None: ...

    async def close(self, code: int, reason: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class HubStats:
    """A snapshot of the hub for `/metrics` and `--check`."""

    epoch: str
    last_seq: int
    clients: int
    connections: int
    batches: int
    events: int
    messages_sent: int
    drops: int
    resyncs: int
    resumes: int
    replayed_events: int
    ring_size: int
    ring_oldest_seq: int | None
    notices: int = 0
    filtered_clients: int = 0


def _wall_ms() -> float:
    return time.time() * 1000.0


class _Client:
    __slots__ = ("closing", "epoch", "live", "pending", "pending_events", "recv", "send",
                 "sent_notice", "sent_seq", "sub")

    def __init__(self, queue: int, epoch: str, sub: Subscription = EVERYTHING) -> None:
        self.send, self.recv = trio.open_memory_channel[Batch](queue)
        self.epoch = epoch
        self.sub = sub
        #: The last seq handed to the socket: where the client resumes if dropped.
        self.sent_seq = 0
        #: The last notice number handed to the socket.
        self.sent_notice = 0
        #: Its replay is sent: from now on only live batches reach it.
        self.live = False
        #: Characters of the batches queued for it and not yet sent.
        self.pending = 0
        self.pending_events = 0
        #: Set when the hub ends this connection: (close code, why).
        self.closing: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class _Notice:
    """A pushed state change, kept for replay: its number in the epoch, the last event seq
    when it happened, the session and agents it concerns (for subscriptions), its text."""

    number: int
    after_seq: int
    ws_id: str | None
    #: None: concerns no agent in particular (a status change passes an agent filter).
    agents: tuple[str | None, ...] | None
    text: str


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a new client gets before live messages: a replay or a resync notice."""

    connected: str
    replay: list[Event]
    resync: str | None
    notices: list[_Notice]


class Hub:
    """The WebSocket fan-out and replay ring. Runs on the trio event loop."""

    def __init__(
        self,
        *,
        epoch: Callable[[], str],
        replay_window: int = 10_000,
        client_queue: int = 2048,
        client_bytes: int = 16 << 20,
        clock_ms: Callable[[], float] = _wall_ms,
        last_seq: Callable[[], int] | None = None,
    ) -> None:
        """`epoch()` names the current sequence space. A client is dropped when it has
        `client_queue` published batches pending, or more than about `client_bytes` of
        them (counted in characters), or more than half `replay_window` events. Batches
        are shared, so the slowest client's backlog bounds the hub's memory whatever the
        batch sizes; and a dropped client can always resume from the ring if it comes
        back before another half window has passed. `last_seq()`, if given, is the
        store's last seq (it can be ahead of what was published, after a restart from a
        checkpoint with no history)."""
        if replay_window < 0 or client_queue < 1 or client_bytes < 1:
            raise ValueError("replay_window must be >= 0, client_queue and client_bytes >= 1")
        self._epoch_fn = epoch
        self._clock = clock_ms
        self._store_last_seq = last_seq
        self._client_queue = client_queue
        self._client_bytes = client_bytes
        # A client dropped for being slow must be able to resume from the ring: its
        # backlog never exceeds half the replay window (the other half is its time to
        # reconnect).
        self._client_events = max(1, replay_window // 2) if replay_window else 1 << 62
        self._ring: deque[Event] = deque(maxlen=replay_window)
        self._ring_epoch: str | None = None
        self._last_seq = 0
        # Notices (status changes, attention items), kept as many as events, and the newest
        # one the ring let go. Numbers grow across restarts and epochs (they start from the
        # clock, in thousandths of a millisecond), so that a number from an earlier run is
        # below `_notice_floor` and never mistaken for one of this run.
        self._notices: deque[_Notice] = deque(maxlen=replay_window)
        self._notice = self._notice_floor = int(clock_ms()) * 1000
        self._notice_lost: _Notice | None = None
        #: `serve` calls still running (a closing connection counts until its close frame
        #: is out): the shutdown waits for them.
        self.serving = 0
        self._clients: set[_Client] = set()
        self._changed = trio.Event()
        self._connections = 0
        self._batches = 0
        self._events = 0
        self._messages_sent = 0
        self._drops = 0
        self._closed: str | None = None
        self._resyncs = 0
        self._resumes = 0
        self._replayed = 0
        self._notices_published = 0

    # ------------------------------------------------------------------ publishing

    def publish(self, events: Sequence[Event]) -> None:
        """Fan a stored batch out to every client and keep it for replay.

        Synchronous, never blocks and never raises (a failure is logged): the pipeline
        calls it on the event loop. The affected work sessions are computed per message
        from `Event.ws_id`.
        """
        try:
            self._publish(events)
        except Exception:
            log.exception("publishing a batch of %d events failed", len(events))

    def _publish(self, events: Sequence[Event]) -> None:
        epoch = self._epoch_fn()
        if epoch != self._ring_epoch:
            self._switch_epoch(epoch)
        # Seqs only grow within an epoch: anything at or below the last one is a replay
        # of an event already pushed, and pushing it again would duplicate it.
        fresh: list[Event] = []
        last = self._last_seq
        for ev in events:
            if ev.seq > last:
                fresh.append(ev)
                last = ev.seq
        if len(fresh) < len(events):
            log.debug("skipped %d already published events", len(events) - len(fresh))
        if not fresh:
            return
        self._last_seq = last
        self._ring.extend(fresh)
        self._batches += 1
        self._events += len(fresh)
        if not self._clients:
            return  # e.g. the history batch at start-up: nobody to build messages for
        self._offer(Batch.of(fresh, epoch, self._clock()), events=fresh)

    def publish_changes(self, changes: Sequence[Change]) -> None:
        """Push state changes (`coordd.core.attention`: attention items opening and
        closing, work sessions changing status) as `attention` / `work_session_status`
        messages, numbered and kept for replay like events. Call it after `publish` of
        the batch that caused them (they name its last seq), or on a clock tick.
        Synchronous, never blocks and never raises."""
        try:
            self._publish_changes(changes)
        except Exception:
            log.exception("publishing %d state changes failed", len(changes))

    def _publish_changes(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        epoch = self._current_epoch()
        now = self._clock()
        env = Envelope(now, epoch)
        seq = self.current_seq()
        for change in changes:
            self._notice += 1
            number = self._notice
            if isinstance(change, ItemChange):
                item = change.item
                text = env.attention(change.op, item.as_json(now), seq, number)
                notice = _Notice(number, seq, item.work_session_id,
                                 (item.from_agent, item.to_agent), text)
            else:
                text = env.status(change.work_session_id, change.old, change.new, change.at,
                                  seq, number)
                notice = _Notice(number, seq, change.work_session_id, None, text)
            if len(self._notices) == self._notices.maxlen:
                self._notice_lost = self._notices[0] if self._notices else notice
            self._notices.append(notice)
            self._notices_published += 1
            if self._clients:
                batch = Batch(epoch, now, ((text, 0),))
                batch.notice = number
                self._offer(batch, notice=notice)

    def _offer(self, batch: Batch, *, events: Sequence[Event] | None = None,
               notice: _Notice | None = None) -> None:
        """Queue `batch` for every client that wants it: a filtered client gets the
        batch of its matching `events` (built once per subscription), or the `notice` if
        it matches. A client that wants none of it and has nothing queued has seen
        everything up to the batch (its resume point moves on)."""
        filtered: dict[tuple[object, ...], Batch | None] = {}
        for client in list(self._clients):
            sub = client.sub
            mine: Batch | None = batch
            if notice is not None and not sub.wants_notice(notice.ws_id, notice.agents):
                mine = None
            elif events is not None and sub.narrows_events:
                if sub.key not in filtered:
                    picked = sub.select(events)
                    filtered[sub.key] = (Batch.of(picked, batch.epoch, batch.now_ms)
                                         if picked else None)
                mine = filtered[sub.key]
            if mine is None:
                if client.live and client.pending == 0:
                    client.sent_seq = max(client.sent_seq, batch.last)
                    client.sent_notice = max(client.sent_notice, batch.notice)
                continue
            # One batch larger than the bounds still goes to a client with nothing pending.
            if client.pending and (client.pending + mine.size > self._client_bytes
                                   or client.pending_events + mine.count > self._client_events):
                self._drop(client)
                continue
            try:
                client.send.send_nowait(mine)
                client.pending += mine.size
                client.pending_events += mine.count
            except trio.WouldBlock:
                self._drop(client)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # Its task is already gone (cancelled between two checkpoints).
                self._clients.discard(client)
                self._notify()

    def _switch_epoch(self, epoch: str) -> None:
        """A new sequence space: the ring and the seqs mean nothing any more."""
        old, self._ring_epoch = self._ring_epoch, epoch
        self._ring.clear()
        self._last_seq = 0
        self._notices.clear()
        self._notice_floor = self._notice
        self._notice_lost = None
        if old is None or not self._clients:
            return
        log.warning("epoch changed from %s to %s: %d client(s) must resync", old, epoch,
                    len(self._clients))
        now = self._clock()
        notice = Envelope(now, epoch).resync("epoch changed", epoch, 0)
        self._resyncs += len(self._clients)
        self._offer(Batch(epoch, now, ((notice, 0),)))

    def _drop(self, client: _Client) -> None:
        """Take a client that cannot keep up out of the fan-out; its task closes it."""
        queued = client.send.statistics().current_buffer_used
        self._end(client, CLOSE_TOO_SLOW, "too slow")
        self._drops += 1
        log.info("dropped a WebSocket client that fell behind (%d batches, %d characters "
                 "pending)", queued, client.pending)

    def _end(self, client: _Client, code: int, why: str) -> None:
        client.closing = (code, why)
        self._clients.discard(client)
        client.send.close()  # wakes its task if it waits for a batch
        self._notify()

    def close_all(self, reason: str = "server shutting down") -> None:
        """Close every connection with 1001 and a reason saying where to resume; refuse
        new ones. Call it when shutting down: clients get a clean close instead of a
        dropped connection, and the server need not wait out its grace period."""
        self._closed = reason
        for client in list(self._clients):
            self._end(client, CLOSE_GOING_AWAY, reason)

    # ------------------------------------------------------------------ serving

    async def serve(self, websocket: WebsocketLike) -> None:
        """Serve one `/ws` connection (the body of the Quart websocket handler).

        Sends `connected`, then the replay or `resync_required`, then live messages, and
        ignores incoming frames. Returns when the client goes away (Quart cancels the
        handler then) or after closing it with 1013 because it fell behind. Cancellation
        unregisters the client.
        """
        # Quart hands over a context-local proxy; every frame would pay its lookup.
        unwrap = getattr(websocket, "_get_current_object", None)
        if unwrap is not None:
            websocket = unwrap()
        args = websocket.args
        sub = parse_subscription(_lists(args))
        self.serving += 1
        try:
            await self._serve(websocket, args, sub)
        finally:
            self.serving -= 1

    async def _serve(self, websocket: WebsocketLike, args: Any,
                     sub: Subscription | str) -> None:
        await websocket.accept()
        if self._closed is not None or isinstance(sub, str):
            # A bad subscription is refused before the upgrade (`coordd.web.app`); this is
            # for a caller that skipped that check.
            code, why = ((CLOSE_GOING_AWAY, self._closed) if self._closed is not None
                         else (CLOSE_POLICY, str(sub)[:123]))
            with trio.move_on_after(CLOSE_TIMEOUT):
                await websocket.close(code, why)
            return
        client = _Client(self._client_queue, self._current_epoch(), sub)
        # Registration and snapshot in one synchronous step: see the module docstring.
        self._clients.add(client)
        self._connections += 1
        self._notify()
        try:
            plan = self._plan(client, args.get("since"), args.get("epoch"), args.get("notice"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._discard_incoming, websocket)
                await self._send_all(websocket, client, plan)
                nursery.cancel_scope.cancel()
        finally:
            if client.closing is None:
                self._clients.discard(client)
                client.send.close()
                self._notify()

    def _current_epoch(self) -> str:
        epoch = self._epoch_fn()
        if epoch != self._ring_epoch:
            self._switch_epoch(epoch)
        return epoch

    def current_seq(self) -> int:
        """The last seq of the current epoch (published, or the store's if ahead)."""
        last = self._last_seq
        if self._store_last_seq is not None:
            last = max(last, self._store_last_seq())
        return last

    def _plan(self, client: _Client, since_raw: str | None, epoch_arg: str | None,
              notice_raw: str | None) -> _Plan:
        epoch = client.epoch
        current = self.current_seq()
        env = Envelope(self._clock(), epoch)
        connected = env.message(b"connected", orjson.dumps(
            {"message": WELCOME, "epoch": epoch, "seq": current, "notice": self._notice}))
        client.sent_seq = current
        client.sent_notice = self._notice
        if since_raw is None:
            return _Plan(connected, [], None, [])  # live only, as upstream
        reason = None
        since = int(since_raw) if _DIGITS.fullmatch(since_raw) else -1
        if since < 0:
            reason = "invalid since: not a non-negative integer"
        elif epoch_arg is not None and epoch_arg != epoch:
            reason = "epoch mismatch"
        elif since > current:
            reason = "since is ahead of the server"
        elif since < current and not (self._ring and self._ring[0].seq <= since + 1):
            reason = "since is older than the replay window"
        notices: list[_Notice] = []
        if reason is None and client.sub.notices:
            notices, reason = self._notice_replay(since, notice_raw)
        if reason is not None:
            self._resyncs += 1
            return _Plan(connected, [], env.resync(reason, epoch, current), [])
        start = bisect.bisect_right(self._ring, since, key=_seq)
        replay = client.sub.select(list(itertools.islice(self._ring, start, None)))
        notices = [n for n in notices if client.sub.wants_notice(n.ws_id, n.agents)]
        # No batch published from now on can overlap the replay: publish() only passes on
        # seqs above the last one, and the snapshot ends there.
        client.sent_seq = since
        if notices:
            client.sent_notice = notices[0].number - 1
        self._resumes += 1
        self._replayed += len(replay)
        return _Plan(connected, replay, None, notices)

    def _notice_replay(self, since: int,
                       notice_raw: str | None) -> tuple[list[_Notice], str | None]:
        """The notices a client resuming after event `since` (and notice `notice_raw`, if
        it says) has not seen, or why they cannot be replayed. Without `notice=` every
        notice since the event is replayed: those after its last event may come twice."""
        lost = self._notice_lost
        if notice_raw is None:
            if lost is not None and lost.after_seq >= since:
                return [], "since is older than the notice replay window"
            return [n for n in self._notices if n.after_seq >= since], None
        number = int(notice_raw) if _DIGITS.fullmatch(notice_raw) else -1
        if number < 0:
            return [], "invalid notice: not a non-negative integer"
        if number > self._notice:
            return [], "notice is ahead of the server"
        if number < self._notice_floor:
            return [], "notice is from an earlier run or epoch"
        if lost is not None and lost.number > number:
            return [], "notice is older than the replay window"
        return [n for n in self._notices if n.number > number], None

    async def _send_all(self, websocket: WebsocketLike, client: _Client, plan: _Plan) -> None:
        await websocket.send(plan.connected)
        self._messages_sent += 1
        if plan.resync is not None:
            await websocket.send(plan.resync)
            self._messages_sent += 1
        # The missed events, each notice after the event it followed.
        events, start = plan.replay, 0
        for notice in plan.notices:
            end = bisect.bisect_right(events, notice.after_seq, lo=start, key=_seq)
            await self._send_replay(websocket, client, events[start:end])
            start = end
            if client.closing is not None:
                break
            await websocket.send(notice.text)
            self._messages_sent += 1
            client.sent_notice = notice.number
        await self._send_replay(websocket, client, events[start:])
        client.live = True
        # The receive end is never closed here: `publish` may still offer to it until the
        # `finally` of `serve` has taken the client out (it runs without a checkpoint).
        recv = client.recv
        async for first in recv:
            group = [first]
            while True:
                try:
                    group.append(recv.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self._send_group(websocket, client, group)
            client.pending -= sum(batch.size for batch in group)
            client.pending_events -= sum(batch.count for batch in group)
            if client.closing is not None:
                break
        if client.closing is not None:
            await self._close(websocket, client, *client.closing)

    async def _send_replay(self, websocket: WebsocketLike, client: _Client,
                           events: Sequence[Event]) -> None:
        for chunk in chunks(events):
            if client.closing is not None:
                return
            await websocket.send(Envelope(self._clock(), client.epoch).chunk(chunk))
            self._messages_sent += 1
            client.sent_seq = chunk[-1].seq

    async def _send_group(self, websocket: WebsocketLike, client: _Client,
                          group: list[Batch]) -> None:
        """Send pending batches in order: runs of event batches merged (`coalesce`),
        notices one by one."""
        run: list[Batch] = []
        for batch in [*group, None]:
            if batch is not None and not batch.notice:
                run.append(batch)
                continue
            for text, seq, epoch in coalesce(run):
                if client.closing is not None:
                    return
                await websocket.send(text)
                self._messages_sent += 1
                if epoch != client.epoch:
                    client.epoch, client.sent_seq = epoch, 0
                if seq:
                    client.sent_seq = seq
            run = []
            if batch is None or client.closing is not None:
                return
            await websocket.send(batch.messages[0][0])
            self._messages_sent += 1
            client.sent_notice = batch.notice

    async def _close(self, websocket: WebsocketLike, client: _Client, code: int,
                     why: str) -> None:
        reason = (f"{why}; reconnect with since={client.sent_seq}&epoch={client.epoch}"
                  f"&notice={client.sent_notice}")
        # A close reason is at most 123 bytes; the epoch is short, but be safe.
        reason = reason.encode()[:123].decode("utf-8", "ignore")
        with trio.move_on_after(CLOSE_TIMEOUT):
            try:
                await websocket.close(code, reason)
            except Exception as e:  # already closed by the peer: nothing left to tell it
                log.debug("closing a WebSocket client failed: %r", e)

    @staticmethod
    async def _discard_incoming(websocket: WebsocketLike) -> None:
        # Incoming frames are ignored (as by the old monitor), but they must be read: an unread
        # receive queue would stop the server from noticing that the client went away.
        while True:
            await websocket.receive()

    # ------------------------------------------------------------------ introspection

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_clients(self, count: int) -> None:
        """Wait until exactly `count` clients are connected (tests and benchmarks)."""
        while len(self._clients) != count:
            await self._changed.wait()

    def statistics(self) -> HubStats:
        """Counters since start and the replay ring's extent."""
        return HubStats(
            epoch=self._ring_epoch or self._epoch_fn(),
            last_seq=self._last_seq,
            clients=len(self._clients),
            connections=self._connections,
            batches=self._batches,
            events=self._events,
            messages_sent=self._messages_sent,
            drops=self._drops,
            resyncs=self._resyncs,
            resumes=self._resumes,
            replayed_events=self._replayed,
            ring_size=len(self._ring),
            ring_oldest_seq=self._ring[0].seq if self._ring else None,
            notices=self._notices_published,
            filtered_clients=sum(1 for c in self._clients if c.sub.narrows_events),
        )


def _seq(ev: Event) -> int:
    return ev.seq


def _lists(args: Any) -> dict[str, list[str]]:
    """The subscription parameters of a query (a multi-dict, or a plain dict in tests)."""
    getlist = getattr(args, "getlist", None)
    out: dict[str, list[str]] = {}
    for name in (*PARAMETERS, "notices"):
        if name in args:
            out[name] = list(getlist(name)) if getlist is not None else [args[name]]
    return out
