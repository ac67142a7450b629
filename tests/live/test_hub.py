"""The WebSocket hub, end to end: a real hypercorn + Quart-Trio server in the test's
nursery and real trio-websocket clients.

Real sockets, so no autojump clock here; every wait sits under `fail_after` so that a
broken build fails instead of hanging. Nothing asserts on time.
"""

from __future__ import annotations

import json
import socket
from functools import partial
from typing import Any

import orjson
import pytest
import trio
import trio_websocket

from coordd.core.event import Event
from coordd.core.jsvalues import iso_ms
from coordd.live.hub import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, Hub
from coordd.live.messages import CHUNK_EVENTS, Batch, chunks, coalesce, with_seq
from tests.live.helpers import GUARD, T0, events, make_event, start_server

MAX_MESSAGE = 64 << 20


# ---------------------------------------------------------------------------- helpers










def connect(url: str, **kw: Any) -> Any:
    kw.setdefault("max_message_size", MAX_MESSAGE)
    return trio_websocket.open_websocket_url(url, **kw)


async def recv(conn: Any) -> dict[str, Any]:
    with trio.fail_after(GUARD):
        text = await conn.get_message()
    assert isinstance(text, str)
    # Compact frames: re-serialising compactly gives the same text back.
    assert orjson.dumps(json.loads(text)).decode() == text
    return json.loads(text)  # type: ignore[no-any-return]


async def recv_seqs_until(conn: Any, last: int) -> tuple[list[int], list[dict[str, Any]]]:
    """Event seqs from `coordination_event_new` messages until `last` is seen."""
    seqs: list[int] = []
    msgs: list[dict[str, Any]] = []
    while not seqs or seqs[-1] < last:
        msg = await recv(conn)
        msgs.append(msg)
        if msg["type"] == "coordination_event_new":
            seqs.extend(e["seq"] for e in msg["data"]["events"])
    return seqs, msgs


def expected_event(ev: Event) -> dict[str, Any]:
    return {**ev.as_dict(), "seq": ev.seq}


#: The first notice number of a hub whose clock says T0.
NOTICE0 = int(T0) * 1000


def new_hub(epoch: str = "E1", **kw: Any) -> Hub:
    kw.setdefault("clock_ms", lambda: T0)
    return Hub(epoch=lambda: epoch, **kw)


# ---------------------------------------------------------------------------- pure parts


def test_seq_is_spliced_into_the_stored_bytes() -> None:
    ev = make_event(7)
    out = with_seq(ev)
    assert out.startswith(ev.json[:-1])
    assert orjson.loads(out) == {**ev.as_dict(), "seq": 7}
    empty = Event(3, {"type": "x"}, b"{}")
    assert orjson.loads(with_seq(empty)) == {"seq": 3}


def test_chunks_bound_events_and_bytes_and_keep_order() -> None:
    evs = events(1, 1201)
    sizes = [len(c) for c in chunks(evs)]
    assert sizes == [CHUNK_EVENTS, CHUNK_EVENTS, 201]
    big = events(1, 6, pad=300_000)  # ~300 KB each: three per 1 MiB frame
    parts = list(chunks(big))
    assert [ev.seq for c in parts for ev in c] == [1, 2, 3, 4, 5, 6]
    assert all(sum(len(e.json) for e in c) <= 1 << 20 for c in parts)
    assert len(parts) == 2
    huge = events(1, 2, pad=2_000_000)  # larger than a frame: still sent, alone
    assert [len(c) for c in chunks(huge)] == [1, 1]


def texts(group: list[Batch]) -> list[dict[str, Any]]:
    return [json.loads(text) for text, _, _ in coalesce(group)]


def test_a_lagging_client_gets_small_batches_merged() -> None:
    b1 = Batch.of([make_event(1, ws="ws_a"), make_event(2, "continuation.sent", ws="ws_b")],
                  "E1", T0)
    b2 = Batch.of([make_event(3, ws="ws_c"), make_event(4, ws="ws_a")], "E1", T0 + 7)
    b3 = Batch.of([make_event(5, "continuation.backoff", ws=None)], "E1", T0 + 9)
    msgs = texts([b1, b2, b3])
    assert [m["type"] for m in msgs] == [
        "event_log", "coordination_event_new", "continuation_event", "continuation_event"]
    assert [e["seq"] for e in msgs[1]["data"]["events"]] == [1, 2, 3, 4, 5]
    assert msgs[1]["data"]["affectedWorkSessions"] == ["ws_a", "ws_b", "ws_c"]
    assert msgs[1]["timestamp"] == iso_ms(T0 + 9)
    assert [m["data"]["eventData"]["seq"] for m in msgs[2:]] == [2, 5]
    # With seqs, so the sender knows where the client is.
    assert [seq for _, seq, _ in coalesce([b1, b2, b3])] == [0, 5, 2, 5]
    # One batch alone: its shared messages, as built once.
    assert [t for t, _, _ in coalesce([b2])] == [t for t, _ in b2.messages]


def test_merging_keeps_order_bounds_and_epochs() -> None:
    small = [Batch.of(events(s, s + 199), "E1", T0) for s in (1, 201, 401)]
    big = Batch.of(events(601, 1700), "E1", T0)  # three chunks of its own
    notice = Batch("E2", T0, (("resync", 0),))
    after = Batch.of(events(1, 2), "E2", T0)
    msgs = list(coalesce([*small, big, notice, after]))
    seqs: list[int] = []
    kinds = []
    for text, _, epoch in msgs:
        if text == "resync":
            kinds.append(("resync", epoch))
            continue
        m = json.loads(text)
        kinds.append((m["type"], epoch))
        if m["type"] == "coordination_event_new":
            assert len(m["data"]["events"]) <= CHUNK_EVENTS
            seqs.extend(e["seq"] for e in m["data"]["events"])
    assert seqs == [*range(1, 1701), 1, 2]
    assert kinds == [
        ("event_log", "E1"), ("coordination_event_new", "E1"),   # 1..400 merged
        ("event_log", "E1"), ("coordination_event_new", "E1"),   # 401..600 (500 cap)
        ("event_log", "E1"), *[("coordination_event_new", "E1")] * 3,  # the big one
        ("resync", "E2"), ("event_log", "E2"), ("coordination_event_new", "E2"),
    ]


def test_publish_without_clients_fills_the_ring_and_skips_seen_seqs() -> None:
    hub = new_hub(replay_window=5)
    hub.publish(events(1, 4))
    hub.publish(events(3, 8))  # 3 and 4 again: published once only
    st = hub.statistics()
    assert (st.ring_size, st.ring_oldest_seq, st.last_seq, st.events) == (5, 4, 8, 8)
    assert st.clients == 0 and st.messages_sent == 0


def test_publish_never_raises() -> None:
    def broken_epoch() -> str:
        raise RuntimeError("boom")

    hub = Hub(epoch=broken_epoch)
    hub.publish(events(1, 2))  # logged, not raised: the pipeline must go on


# ---------------------------------------------------------------------------- messages


async def test_connected_message_shape(nursery: trio.Nursery) -> None:
    hub = new_hub()
    hub.publish(events(1, 3))
    server = await start_server(nursery, hub)
    async with connect(server.url) as conn:
        with trio.fail_after(GUARD):
            text = await conn.get_message()
    assert text == (
        '{"type":"connected","timestamp":"2026-02-17T12:12:38.110Z","epoch":"E1",'
        '"data":{"message":"Connected to Task Monitor","epoch":"E1","seq":3,'
        f'"notice":{NOTICE0}}}}}'
    )


async def test_batch_gives_event_log_events_and_one_continuation_per_event(
    nursery: trio.Nursery,
) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    batch = [
        make_event(1, ws="ws_a"),
        make_event(2, "continuation.sent", ws=None, agent="eden"),
        make_event(3, ws="ws_b"),
        make_event(4, "continuation.backoff", ws="ws_a", agent=None),
        make_event(5, ws="ws_b"),
    ]
    async with connect(server.url) as conn:
        assert (await recv(conn))["type"] == "connected"
        hub.publish(batch)
        msgs = [await recv(conn) for _ in range(4)]
    assert msgs[0] == {
        "type": "event_log", "timestamp": "2026-02-17T12:12:38.110Z", "epoch": "E1",
        "data": {"event": "change", "file": "coordination-events.ndjson"},
    }
    assert list(msgs[1]) == ["type", "timestamp", "epoch", "data"]
    assert msgs[1]["type"] == "coordination_event_new"
    assert msgs[1]["data"] == {
        "events": [expected_event(ev) for ev in batch],
        "affectedWorkSessions": ["ws_a", "ws_b"],
    }
    assert msgs[2] == {
        "type": "continuation_event", "agentId": "eden",
        "timestamp": "2026-02-17T12:12:38.110Z", "epoch": "E1",
        "data": {"event": "change", "file": "coordination-events.ndjson",
                 "eventType": "continuation.sent", "eventData": expected_event(batch[1])},
    }
    assert list(msgs[2]) == ["type", "agentId", "timestamp", "epoch", "data"]
    # An event without agentId: the key is absent, as JSON.stringify drops undefined.
    assert "agentId" not in msgs[3]
    assert msgs[3]["data"]["eventType"] == "continuation.backoff"
    assert msgs[3]["data"]["eventData"] == expected_event(batch[3])


async def test_batches_pending_together_reach_the_client_merged(nursery: trio.Nursery) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.url) as conn:
        await recv(conn)
        # No checkpoint in between: all three are pending when the client's task runs.
        hub.publish(events(1, 2, ws="ws_a"))
        hub.publish(events(3, 3, ws="ws_b"))
        hub.publish(events(4, 6, ws="ws_a"))
        assert (await recv(conn))["type"] == "event_log"
        msg = await recv(conn)
    assert [e["seq"] for e in msg["data"]["events"]] == [1, 2, 3, 4, 5, 6]
    assert msg["data"]["affectedWorkSessions"] == ["ws_a", "ws_b"]


async def test_large_batch_is_split_into_bounded_messages(nursery: trio.Nursery) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    batch = [*events(1, 1100, ws=None), make_event(1101, ws="ws_z")]
    async with connect(server.url) as conn:
        await recv(conn)
        hub.publish(batch)
        assert (await recv(conn))["type"] == "event_log"
        parts = [await recv(conn) for _ in range(3)]
    assert [len(p["data"]["events"]) for p in parts] == [500, 500, 101]
    assert [e["seq"] for p in parts for e in p["data"]["events"]] == list(range(1, 1102))
    # affectedWorkSessions is per message.
    assert [p["data"]["affectedWorkSessions"] for p in parts] == [[], [], ["ws_z"]]


# ---------------------------------------------------------------------------- resume


async def test_resume_replays_with_no_gap_or_duplicate_while_publishing(
    nursery: trio.Nursery,
) -> None:
    hub = new_hub(client_queue=100_000)
    hub.publish(events(1, 1200))
    server = await start_server(nursery, hub)
    last = 4000

    async def publisher() -> None:
        seq = 1201
        while seq <= last:
            hub.publish(events(seq, min(seq + 6, last)))
            seq += 7
            await trio.lowlevel.checkpoint()

    async with connect(server.ws_url(since=50, epoch="E1")) as conn:
        nursery.start_soon(publisher)
        connected = await recv(conn)
        assert connected["type"] == "connected"
        seqs, msgs = await recv_seqs_until(conn, last)
    assert seqs == list(range(51, last + 1))
    # The replay comes first, in chunks of at most 500 events, then live batches.
    first = msgs[0]
    assert first["type"] == "coordination_event_new"
    assert first["data"]["events"][0]["seq"] == 51
    assert len(first["data"]["events"]) == 500
    assert hub.statistics().resumes == 1
    assert hub.statistics().replayed_events >= 1150


async def test_since_without_epoch_resumes_in_the_current_epoch(nursery: trio.Nursery) -> None:
    hub = new_hub()
    hub.publish(events(1, 10))
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(since=7)) as conn:
        await recv(conn)
        replay = await recv(conn)
        assert [e["seq"] for e in replay["data"]["events"]] == [8, 9, 10]
        assert replay["data"]["affectedWorkSessions"] == ["ws_1"]
        hub.publish(events(11, 11))
        assert (await recv(conn))["type"] == "event_log"
        live = await recv(conn)
    assert [e["seq"] for e in live["data"]["events"]] == [11]


async def test_since_at_the_last_seq_replays_nothing(nursery: trio.Nursery) -> None:
    hub = new_hub()
    hub.publish(events(1, 10))
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(since=10, epoch="E1")) as conn:
        await recv(conn)
        hub.publish(events(11, 12))
        assert (await recv(conn))["type"] == "event_log"
        seqs, _ = await recv_seqs_until(conn, 12)
    assert seqs == [11, 12]


async def test_replay_window_boundary(nursery: trio.Nursery) -> None:
    hub = new_hub(replay_window=10)
    hub.publish(events(1, 30))  # ring holds 21..30
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(since=20, epoch="E1")) as conn:
        await recv(conn)
        seqs, _ = await recv_seqs_until(conn, 30)
    assert seqs == list(range(21, 31))
    async with connect(server.ws_url(since=19, epoch="E1")) as conn:
        await recv(conn)
        msg = await recv(conn)
    assert msg["type"] == "resync_required"
    assert msg["data"]["reason"] == "since is older than the replay window"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"since": 5, "epoch": "OTHER"}, "epoch mismatch"),
        ({"since": 2, "epoch": "E1"}, "since is older than the replay window"),
        ({"since": "abc"}, "invalid since: not a non-negative integer"),
        ({"since": ""}, "invalid since: not a non-negative integer"),
        ({"since": "-1"}, "invalid since: not a non-negative integer"),
        ({"since": "1.5", "epoch": "E1"}, "invalid since: not a non-negative integer"),
        ({"since": 99, "epoch": "E1"}, "since is ahead of the server"),
        ({"since": 21, "epoch": "E1"}, "since is ahead of the server"),  # one past the last
    ],
)
async def test_resync_required_then_live(
    nursery: trio.Nursery, params: dict[str, Any], reason: str
) -> None:
    hub = new_hub(replay_window=5)
    hub.publish(events(1, 20))
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(**params)) as conn:
        assert (await recv(conn))["type"] == "connected"
        msg = await recv(conn)
        assert msg == {
            "type": "resync_required", "timestamp": "2026-02-17T12:12:38.110Z", "epoch": "E1",
            "data": {"reason": reason, "epoch": "E1", "seq": 20},
        }
        hub.publish(events(21, 22))
        assert (await recv(conn))["type"] == "event_log"
        live = await recv(conn)
    assert [e["seq"] for e in live["data"]["events"]] == [21, 22]
    assert hub.statistics().resyncs == 1


async def test_epoch_change_tells_connected_clients_to_resync(nursery: trio.Nursery) -> None:
    current = ["E1"]
    hub = Hub(epoch=lambda: current[0], clock_ms=lambda: T0)
    hub.publish(events(1, 5))
    server = await start_server(nursery, hub)
    async with connect(server.url) as conn:
        await recv(conn)
        current[0] = "E2"
        hub.publish(events(1, 2))  # a new sequence space starts again at 1
        notice = await recv(conn)
        assert notice["type"] == "resync_required"
        assert notice["epoch"] == "E2"
        assert notice["data"]["reason"] == "epoch changed"
        assert (await recv(conn))["type"] == "event_log"
        live = await recv(conn)
    assert live["epoch"] == "E2"
    assert [e["seq"] for e in live["data"]["events"]] == [1, 2]
    assert hub.statistics().ring_oldest_seq == 1


# ---------------------------------------------------------------------------- backpressure


async def open_slow_client(nursery: trio.Nursery, url: str) -> Any:
    """A client with a tiny receive buffer that does not read until told to."""
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    conn = await trio_websocket.wrap_client_stream(
        nursery, stream, host, "/ws", message_queue_size=1, max_message_size=MAX_MESSAGE
    )
    return conn


async def run_in(scope: trio.CancelScope, fn: Any, *args: Any) -> None:
    with scope:
        await fn(*args)


@pytest.mark.parametrize(
    "bounds",
    [{"client_queue": 4}, {"client_queue": 100_000, "client_bytes": 500_000},
     {"client_queue": 100_000, "replay_window": 600}],
    ids=["batches", "bytes", "events"],
)
async def test_slow_client_is_closed_with_1013_and_never_delays_others(
    nursery: trio.Nursery, bounds: dict[str, int],
) -> None:
    # The events bound is half the replay window: a dropped client can still resume.
    hub = Hub(epoch=lambda: "E1", clock_ms=lambda: T0,
              replay_window=bounds.get("replay_window", 1_000_000),
              client_queue=bounds["client_queue"], client_bytes=bounds.get("client_bytes", 1 << 30))
    server = await start_server(nursery, hub)
    got: list[int] = []
    progress_send, progress_recv = trio.open_memory_channel[int](1000)

    async def fast_reader(conn: Any) -> None:
        while True:
            msg = await recv(conn)
            if msg["type"] == "coordination_event_new":
                got.extend(e["seq"] for e in msg["data"]["events"])
                await progress_send.send(got[-1])

    async with connect(server.url) as fast:
        await recv(fast)
        slow = await open_slow_client(nursery, server.url)
        with trio.fail_after(GUARD):
            await hub.wait_clients(2)
        reader = trio.CancelScope()
        nursery.start_soon(partial(run_in, reader, fast_reader, fast))
        seq, per_batch = 0, 100
        with trio.fail_after(GUARD):
            while hub.statistics().drops == 0:
                assert seq < 400 * per_batch, "the slow client was never dropped"
                # publish() is synchronous: it returns even though one client is stuck.
                hub.publish(events(seq + 1, seq + per_batch, pad=1000))
                seq += per_batch
                while await progress_recv.receive() < seq:
                    pass
        # Dropped at once from the fan-out, while the fast client stays.
        assert hub.statistics().clients == 1
        hub.publish(events(seq + 1, seq + per_batch))
        seq += per_batch
        with trio.fail_after(GUARD):
            while await progress_recv.receive() < seq:
                pass
        assert got == list(range(1, seq + 1))
        reader.cancel()

        # The slow client now reads: what was already on its way, then the close.
        slow_seqs: list[int] = []
        with trio.fail_after(GUARD), pytest.raises(trio_websocket.ConnectionClosed) as closed:
            while True:
                msg = json.loads(await slow.get_message())
                if msg["type"] == "coordination_event_new":
                    slow_seqs.extend(e["seq"] for e in msg["data"]["events"])
        reason = closed.value.reason
        assert reason is not None and reason.code == CLOSE_TOO_SLOW
        assert slow_seqs == list(range(1, len(slow_seqs) + 1))
        assert reason.reason == (
            f"too slow; reconnect with since={slow_seqs[-1]}&epoch=E1&notice={NOTICE0}")

        # Resuming from the reason's position gives exactly the rest.
        async with connect(server.ws_url(since=slow_seqs[-1], epoch="E1")) as again:
            await recv(again)
            rest, _ = await recv_seqs_until(again, seq)
        assert slow_seqs + rest == list(range(1, seq + 1))
    assert hub.statistics().drops == 1


async def test_disconnected_clients_are_cleaned_up(nursery: trio.Nursery) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.url) as keep:
        await recv(keep)
        async with connect(server.url) as a:
            await recv(a)
            # An abrupt disconnect: the TCP connection goes without a close handshake.
            b = await open_slow_client(nursery, server.url)
            with trio.fail_after(GUARD):
                await hub.wait_clients(3)
            await b._stream.aclose()
            with trio.fail_after(GUARD):
                await hub.wait_clients(2)
        with trio.fail_after(GUARD):
            await hub.wait_clients(1)
        hub.publish(events(1, 3))
        assert (await recv(keep))["type"] == "event_log"
        seqs, _ = await recv_seqs_until(keep, 3)
        assert seqs == [1, 2, 3]
    with trio.fail_after(GUARD):
        await hub.wait_clients(0)
    st = hub.statistics()
    assert (st.clients, st.connections, st.drops) == (0, 3, 0)


async def test_close_all_closes_with_1001_and_where_to_resume(nursery: trio.Nursery) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.url) as a, connect(server.ws_url(since=0, epoch="E1")) as b:
        await recv(a)
        await recv(b)
        hub.publish(events(1, 3))
        for conn in (a, b):
            assert (await recv(conn))["type"] == "event_log"
            await recv_seqs_until(conn, 3)
        hub.close_all()
        for conn in (a, b):
            with trio.fail_after(GUARD), pytest.raises(trio_websocket.ConnectionClosed) as e:
                await conn.get_message()
            assert e.value.reason is not None
            assert e.value.reason.code == CLOSE_GOING_AWAY
            assert e.value.reason.reason == (
                f"server shutting down; reconnect with since=3&epoch=E1&notice={NOTICE0}")
    with trio.fail_after(GUARD):
        await hub.wait_clients(0)
    # Late comers are turned away the same way, without a `connected`.
    async with connect(server.url) as late:
        with trio.fail_after(GUARD), pytest.raises(trio_websocket.ConnectionClosed) as e:
            await late.get_message()
    assert e.value.reason is not None and e.value.reason.code == CLOSE_GOING_AWAY
    assert hub.statistics().drops == 0


async def test_incoming_frames_are_ignored(nursery: trio.Nursery) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.url) as conn:
        await recv(conn)
        for i in range(100):  # more than any receive queue on the way holds
            await conn.send_message(f"hello {i}")
        hub.publish(events(1, 1))
        assert (await recv(conn))["type"] == "event_log"
        seqs, _ = await recv_seqs_until(conn, 1)
    assert seqs == [1]


async def test_server_drop_ends_the_connection(nursery: trio.Nursery) -> None:
    # The harness test_watch relies on: drop() cuts live connections.
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.url) as conn:
        await recv(conn)
        server.drop()
        with trio.fail_after(GUARD), pytest.raises(trio_websocket.ConnectionClosed):
            await conn.get_message()
    with trio.fail_after(GUARD):
        await hub.wait_clients(0)
