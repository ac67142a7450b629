"""The hub's notices (`attention`, `work_session_status`) and `/ws` subscriptions, end to
end: a real hypercorn + Quart-Trio server in the test's nursery and real trio-websocket
clients, as in `test_hub`.

Real sockets, so no autojump clock here; every wait sits under `fail_after`. Nothing
asserts on time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from coordd.core.attention import AttentionItem, Change, ItemChange, StatusChange
from coordd.core.event import Event
from coordd.live.hub import CLOSE_GOING_AWAY, Hub
from coordd.live.subscription import (
    MAX_VALUE_CHARS,
    MAX_VALUES,
    Subscription,
    parse_subscription,
)
from tests.live.helpers import GUARD, T0, events, start_server
from tests.web.helpers import handshake, make_app

#: The first notice number of a hub whose clock says T0 (numbers start from the clock).
NOTICE0 = int(T0) * 1000
#: The close code of a connection the hub refuses to serve.
CLOSE_POLICY = 1008


def new_hub(epoch: str = "E1", **kw: Any) -> Hub:
    kw.setdefault("clock_ms", lambda: T0)
    return Hub(epoch=lambda: epoch, **kw)


def connect(url: str) -> Any:
    return trio_websocket.open_websocket_url(url, max_message_size=64 << 20)


async def recv(conn: Any) -> dict[str, Any]:
    with trio.fail_after(GUARD):
        text = await conn.get_message()
    return json.loads(text)  # type: ignore[no-any-return]


def ev(seq: int, etype: str = "a2a.send", ws: str = "ws_a", agent: str = "main",
       role: str = "conversation.main") -> Event:
    return Event(seq, {"type": etype, "agentId": agent, "ts": T0 - 1000 + seq,
                       "data": {"workSessionId": ws, "fromAgent": agent, "toAgent": "ruda",
                                "message": f"message {seq}"},
                       "eventRole": role})


def item(ws: str, from_agent: str = "main", to_agent: str = "ruda",
         thread: str = "pair:main_ruda") -> AttentionItem:
    return AttentionItem(
        id=f"awaiting_reply:{ws}:{thread}", kind="awaiting_reply", work_session_id=ws,
        thread_id=thread, from_agent=from_agent, to_agent=to_agent, since=T0 - 5000, seq=1,
        detail=f"{to_agent} has not answered {from_agent} for 1 min", opened_at=T0 - 100)


def opened(ws: str, **kw: str) -> ItemChange:
    return ItemChange("open", item(ws, **kw))


def status(ws: str, new: str = "QUIET") -> StatusChange:
    return StatusChange(ws, "ACTIVE", new, T0 - 10)


Token = tuple[str, Any]


async def tokens_until(conn: Any, last_seq: int) -> list[Token]:
    """What a client receives until event `last_seq`: ("e", seq) per event, ("n", notice
    number) per notice, ("resync", reason); event_log frames are left out."""
    out: list[Token] = []
    while not out or out[-1] != ("e", last_seq):
        msg = await recv(conn)
        kind = msg["type"]
        if kind == "coordination_event_new":
            out.extend(("e", e["seq"]) for e in msg["data"]["events"])
        elif kind in ("attention", "work_session_status"):
            out.append(("n", msg["data"]["notice"]))
        elif kind == "resync_required":
            out.append(("resync", msg["data"]["reason"]))
        else:
            assert kind == "event_log", msg
    return out


async def settle() -> None:
    """Until every task (the server's included) waits: a client's task is then live."""
    with trio.fail_after(GUARD):
        await trio.testing.wait_all_tasks_blocked(0.01)


# ---------------------------------------------------------------------------- live notices


async def test_notices_follow_the_batch_that_caused_them(nursery: trio.Nursery) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    changes: list[Change] = [opened("ws_a"), status("ws_a")]
    async with connect(server.url) as conn:
        hello = await recv(conn)
        assert hello["data"]["notice"] == NOTICE0
        # No checkpoint in between: the three are pending together when the client's
        # task runs, and still come in order (notices are never merged into a batch).
        hub.publish(events(1, 3, ws="ws_a"))
        hub.publish_changes(changes)
        hub.publish(events(4, 4, ws="ws_a"))
        msgs = [await recv(conn) for _ in range(6)]
    assert [m["type"] for m in msgs] == [
        "event_log", "coordination_event_new", "attention", "work_session_status",
        "event_log", "coordination_event_new"]
    assert [e["seq"] for e in msgs[1]["data"]["events"]] == [1, 2, 3]
    assert msgs[2] == {
        "type": "attention", "timestamp": "2026-02-17T12:12:38.110Z", "epoch": "E1",
        "data": {"op": "open", "item": item("ws_a").as_json(T0), "seq": 3,
                 "notice": NOTICE0 + 1},
    }
    assert msgs[2]["data"]["item"]["ageMs"] == 5000
    assert msgs[3] == {
        "type": "work_session_status", "timestamp": "2026-02-17T12:12:38.110Z", "epoch": "E1",
        "data": {"workSessionId": "ws_a", "from": "ACTIVE", "to": "QUIET", "at": T0 - 10,
                 "seq": 3, "notice": NOTICE0 + 2},
    }
    assert [e["seq"] for e in msgs[5]["data"]["events"]] == [4]
    assert hub.statistics().notices == 2


async def test_a_notice_on_the_clock_names_the_last_seq(nursery: trio.Nursery) -> None:
    hub = new_hub()
    hub.publish(events(1, 7))
    server = await start_server(nursery, hub)
    async with connect(server.url) as conn:
        await recv(conn)
        hub.publish_changes([ItemChange("close", item("ws_1"))])
        msg = await recv(conn)
    assert msg["type"] == "attention"
    assert msg["data"]["op"] == "close"
    assert (msg["data"]["seq"], msg["data"]["notice"]) == (7, NOTICE0 + 1)


# ---------------------------------------------------------------------------- resume


def history(hub: Hub) -> None:
    """Events 1..10; notice +1 after event 5, +2 and +3 after event 8."""
    hub.publish(events(1, 5))
    hub.publish_changes([opened("ws_1")])
    hub.publish(events(6, 8))
    hub.publish_changes([status("ws_1"), ItemChange("close", item("ws_1"))])
    hub.publish(events(9, 10))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": 4, "notice": NOTICE0},
         [("e", 5), ("n", NOTICE0 + 1), ("e", 6), ("e", 7), ("e", 8), ("n", NOTICE0 + 2),
          ("n", NOTICE0 + 3), ("e", 9), ("e", 10)]),
        ({"since": 6, "notice": NOTICE0 + 2},
         [("e", 7), ("e", 8), ("n", NOTICE0 + 3), ("e", 9), ("e", 10)]),
        ({"since": 8, "notice": NOTICE0 + 3}, [("e", 9), ("e", 10)]),
        ({"since": 10, "notice": NOTICE0 + 3}, []),
        # Without notice=: every notice at or after the event (some may come twice).
        ({"since": 5},
         [("n", NOTICE0 + 1), ("e", 6), ("e", 7), ("e", 8), ("n", NOTICE0 + 2),
          ("n", NOTICE0 + 3), ("e", 9), ("e", 10)]),
        ({"since": 9}, [("e", 10)]),
    ],
    ids=["notice-before", "notice-mid", "notice-all-seen", "up-to-date", "no-notice",
         "no-notice-after"],
)
async def test_resume_replays_events_and_notices_interleaved(
    nursery: trio.Nursery, params: dict[str, Any], expected: list[Token],
) -> None:
    hub = new_hub()
    history(hub)
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(epoch="E1", **params)) as conn:
        assert (await recv(conn))["type"] == "connected"
        got = await tokens_until(conn, 10) if expected else []
        # Then live, with nothing replayed twice.
        hub.publish(events(11, 11))
        hub.publish_changes([status("ws_1", "ARCHIVED")])
        hub.publish(events(12, 12))
        got += await tokens_until(conn, 12)
    assert got == [*expected, ("e", 11), ("n", NOTICE0 + 4), ("e", 12)]
    assert hub.statistics().resyncs == 0


@pytest.mark.parametrize(
    ("notice", "reason"),
    [
        (NOTICE0 + 4, "notice is ahead of the server"),
        (NOTICE0 - 1, "notice is from an earlier run or epoch"),
        ("1e3", "invalid notice: not a non-negative integer"),
        ("", "invalid notice: not a non-negative integer"),
    ],
)
async def test_a_notice_the_hub_cannot_resume_from_asks_for_a_resync(
    nursery: trio.Nursery, notice: Any, reason: str,
) -> None:
    hub = new_hub()
    history(hub)
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(since=6, epoch="E1", notice=notice)) as conn:
        await recv(conn)
        msg = await recv(conn)
        assert msg["type"] == "resync_required"
        assert msg["data"] == {"reason": reason, "epoch": "E1", "seq": 10}
        # Then live messages only.
        hub.publish_changes([status("ws_1")])
        live = await recv(conn)
    assert live["type"] == "work_session_status"
    assert live["data"]["notice"] == NOTICE0 + 4
    assert hub.statistics().resyncs == 1


async def test_notices_lost_from_the_ring_ask_for_a_resync(nursery: trio.Nursery) -> None:
    # Four notices kept: after six, +1 and +2 are gone.
    hub = new_hub(replay_window=4)
    hub.publish(events(1, 10))  # the ring holds 7..10
    hub.publish_changes([status("ws_1") for _ in range(6)])
    server = await start_server(nursery, hub)
    cases = [({"notice": NOTICE0 + 1}, "notice is older than the replay window"),
             ({}, "since is older than the notice replay window")]
    for extra, reason in cases:
        async with connect(server.ws_url(since=8, epoch="E1", **extra)) as conn:
            await recv(conn)
            msg = await recv(conn)
        assert msg["type"] == "resync_required"
        assert msg["data"]["reason"] == reason
    # The newest one lost is the last the client must have seen: the rest are kept.
    async with connect(server.ws_url(since=8, epoch="E1", notice=NOTICE0 + 2)) as conn:
        await recv(conn)
        hub.publish(events(11, 11))
        got = await tokens_until(conn, 11)
    assert got == [("e", 9), ("e", 10), *[("n", NOTICE0 + n) for n in range(3, 7)], ("e", 11)]


async def test_epoch_change_clears_the_notices(nursery: trio.Nursery) -> None:
    current = ["E1"]
    hub = Hub(epoch=lambda: current[0], clock_ms=lambda: T0)
    history(hub)
    current[0] = "E2"
    hub.publish(events(1, 2))
    server = await start_server(nursery, hub)
    # A number of the old epoch is below the new floor.
    async with connect(server.ws_url(since=0, epoch="E2", notice=NOTICE0 + 2)) as conn:
        await recv(conn)
        msg = await recv(conn)
    assert msg["data"]["reason"] == "notice is from an earlier run or epoch"
    # Without notice=: the events of the new epoch, none of the old notices.
    async with connect(server.ws_url(since=0, epoch="E2")) as conn:
        await recv(conn)
        assert await tokens_until(conn, 2) == [("e", 1), ("e", 2)]
    # Numbers go on from the old epoch's; the floor itself means "seen none of E2".
    hub.publish_changes([status("ws_1")])
    async with connect(server.ws_url(since=0, epoch="E2", notice=NOTICE0 + 3)) as conn:
        hello = await recv(conn)
        assert hello["data"]["notice"] == NOTICE0 + 4
        hub.publish(events(3, 3))
        got = await tokens_until(conn, 3)
    assert got == [("e", 1), ("e", 2), ("n", NOTICE0 + 4), ("e", 3)]


async def test_notices_off_gets_events_only(nursery: trio.Nursery) -> None:
    hub = new_hub(replay_window=4)
    hub.publish(events(1, 10))
    hub.publish_changes([status("ws_1") for _ in range(6)])  # some lost from the ring
    server = await start_server(nursery, hub)
    # No notice replayed, so none lost: a resume, not a resync.
    async with connect(server.ws_url(since=8, epoch="E1", notices=0)) as conn:
        await recv(conn)
        hub.publish_changes([opened("ws_1")])
        hub.publish(events(11, 11))
        got = await tokens_until(conn, 11)
        await settle()
        hub.close_all()
        with trio.fail_after(GUARD), pytest.raises(trio_websocket.ConnectionClosed) as e:
            await conn.get_message()
    assert got == [("e", 9), ("e", 10), ("e", 11)]
    assert e.value.reason is not None and e.value.reason.code == CLOSE_GOING_AWAY
    assert hub.statistics().resyncs == 0


# ---------------------------------------------------------------------------- subscriptions

#: Four events told apart by session, type, agent and role; then one every filter below
#: matches, sent last so that each client knows when it has everything.
MIXED = [
    ev(1, "a2a.send", "ws_a", "main", "conversation.main"),
    ev(2, "a2a.send", "ws_b", "eden", "conversation.main"),
    ev(3, "task.update", "ws_a", "eden", "orchestration.task"),
    ev(4, "task.update", "ws_b", "main", "orchestration.task"),
]
MARKER = ev(5, "a2a.send", "ws_a", "eden", "orchestration.task")
#: Item of ws_a (main -> ruda), item of ws_b (eden -> ruda), status of ws_a, of ws_b.
NOTICES: list[Change] = [opened("ws_a"), opened("ws_b", from_agent="eden", thread="t"),
                         status("ws_a"), status("ws_b")]
N_A, N_B, N_STA, N_STB = (("n", NOTICE0 + i) for i in range(1, 5))

SUBSCRIPTIONS = [
    ({"session": "ws_a"}, [("e", 1), ("e", 3), N_A, N_STA]),
    ({"type": "a2a.send"}, [("e", 1), ("e", 2), N_A, N_B, N_STA, N_STB]),
    ({"agent": "eden"}, [("e", 2), ("e", 3), N_B, N_STA, N_STB]),
    ({"role": "orchestration.task"}, [("e", 3), ("e", 4), N_A, N_B, N_STA, N_STB]),
    ({"session": "ws_a", "agent": "eden"}, [("e", 3), N_STA]),
    ({"session": "ws_b,ws_a", "notices": "0"}, [("e", 1), ("e", 2), ("e", 3), ("e", 4)]),
]
SUB_IDS = ["session", "type", "agent", "role", "session+agent", "sessions-no-notices"]


@pytest.mark.parametrize(("params", "expected"), SUBSCRIPTIONS, ids=SUB_IDS)
async def test_a_subscription_gets_only_matching_events_and_notices(
    nursery: trio.Nursery, params: dict[str, str], expected: list[Token],
) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.url) as everything, connect(server.ws_url(**params)) as conn:
        await recv(everything)
        await recv(conn)
        with trio.fail_after(GUARD):
            await hub.wait_clients(2)
        assert hub.statistics().filtered_clients == 1
        hub.publish(MIXED)
        hub.publish_changes(NOTICES)
        hub.publish([MARKER])
        filtered: list[dict[str, Any]] = []
        got: list[Token] = []
        while got[-1:] != [("e", 5)]:
            msg = await recv(conn)
            filtered.append(msg)
            got += await _tokens_of(msg)
        unfiltered = await tokens_until(everything, 5)
    assert got == [*expected, ("e", 5)]
    assert unfiltered == [("e", n) for n in range(1, 5)] + [N_A, N_B, N_STA, N_STB, ("e", 5)]
    # One coordination_event_new for the batch, with only its matching events (and the
    # marker's merged in when no notice came between them).
    news = [m for m in filtered if m["type"] == "coordination_event_new"]
    first = news[0]["data"]
    wanted = [e for e in [*MIXED, MARKER] if ("e", e.seq) in got[:len(first["events"])]]
    assert first["events"] == [{**e.as_dict(), "seq": e.seq} for e in wanted]
    assert first["affectedWorkSessions"] == list(dict.fromkeys(e.ws_id for e in wanted))
    assert len(news) == (1 if ("e", 5) in got[:len(first["events"])] else 2)


async def _tokens_of(msg: dict[str, Any]) -> list[Token]:
    if msg["type"] == "coordination_event_new":
        return [("e", e["seq"]) for e in msg["data"]["events"]]
    if msg["type"] in ("attention", "work_session_status"):
        return [("n", msg["data"]["notice"])]
    return []


@pytest.mark.parametrize(("params", "expected"), SUBSCRIPTIONS, ids=SUB_IDS)
async def test_a_subscription_resumes_with_only_matching_events_and_notices(
    nursery: trio.Nursery, params: dict[str, str], expected: list[Token],
) -> None:
    hub = new_hub()
    hub.publish(MIXED)
    hub.publish_changes(NOTICES)
    hub.publish([MARKER])
    server = await start_server(nursery, hub)
    url = server.ws_url(since=0, epoch="E1", notice=NOTICE0, **params)
    async with connect(url) as conn:
        await recv(conn)
        got = await tokens_until(conn, 5)
    assert got == [*expected, ("e", 5)]


async def test_a_client_matching_nothing_still_moves_its_resume_point(
    nursery: trio.Nursery,
) -> None:
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(session="ws_z")) as idle, \
            connect(server.ws_url(session="ws_a", notices=0)) as busy:
        await recv(idle)
        await recv(busy)
        await settle()
        hub.publish(MIXED)
        hub.publish_changes(NOTICES)
        await tokens_until(busy, 3)
        await settle()
        hub.close_all()
        reasons = []
        for conn in (idle, busy):
            with trio.fail_after(GUARD), pytest.raises(trio_websocket.ConnectionClosed) as e:
                while True:
                    await conn.get_message()
            assert e.value.reason is not None
            reasons.append(e.value.reason.reason)
    # The idle client was sent nothing, yet it has nothing left to be replayed. The busy
    # one had a batch queued when the notices it does not want went by: it stays at its
    # last event (a resume replays nothing it wants: the rest is filtered again).
    assert reasons == [
        f"server shutting down; reconnect with since=4&epoch=E1&notice={NOTICE0 + 4}",
        f"server shutting down; reconnect with since=3&epoch=E1&notice={NOTICE0}",
    ]


async def test_the_hub_closes_a_bad_subscription_that_reaches_it(nursery: trio.Nursery) -> None:
    # The web app refuses it before the upgrade; the hub still does not serve it.
    hub = new_hub()
    server = await start_server(nursery, hub)
    async with connect(server.ws_url(session="")) as conn:
        with trio.fail_after(GUARD), pytest.raises(trio_websocket.ConnectionClosed) as e:
            await conn.get_message()
    assert e.value.reason is not None
    assert e.value.reason.code == CLOSE_POLICY
    assert (e.value.reason.reason or "").startswith("session= is empty")
    assert hub.statistics().connections == 0


# ---------------------------------------------------------------------------- parsing


def test_parse_subscription_accepts_commas_repeats_and_spaces() -> None:
    sub = parse_subscription({"session": ["a, b", "c"], "agent": ["eden"],
                              "type": ["x,"], "notices": ["1", "false"]})
    assert sub == Subscription(sessions=frozenset({"a", "b", "c"}), types=frozenset({"x"}),
                               agents=frozenset({"eden"}), notices=False)
    assert parse_subscription({}) == Subscription()
    assert not Subscription().narrows_events
    for flag, on in [("0", False), ("1", True), ("TRUE", True), ("false", False)]:
        got = parse_subscription({"notices": [flag]})
        assert isinstance(got, Subscription) and got.notices is on
        assert not got.narrows_events


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"session": [""]}, "session= is empty"),
        ({"role": [" , ,"]}, "role= is empty"),
        ({"agent": [",".join(f"a{i}" for i in range(MAX_VALUES + 1))]},
         f"agent= lists {MAX_VALUES + 1} values; at most {MAX_VALUES} are allowed"),
        ({"type": [",".join(f"t{i}" for i in range(60))] * 2},
         f"type= lists 120 values; at most {MAX_VALUES} are allowed"),
        ({"session": ["x" * (MAX_VALUE_CHARS + 1)]},
         f"session= value {'x' * 40!r}… is over {MAX_VALUE_CHARS} characters"),
        ({"notices": ["maybe"]}, "notices='maybe': use notices=0 (events only) or notices=1"),
        ({"notices": ["0", ""]}, "notices='': use notices=0"),
    ],
)
def test_parse_subscription_errors_say_how_to_fix_them(
    args: dict[str, list[str]], error: str,
) -> None:
    got = parse_subscription(args)
    assert isinstance(got, str)
    assert got.startswith(error)


def test_exactly_max_values_is_accepted() -> None:
    got = parse_subscription({"session": [",".join(f"s{i}" for i in range(MAX_VALUES))]})
    assert isinstance(got, Subscription)
    assert got.sessions is not None and len(got.sessions) == MAX_VALUES


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (b"session=", "session= is empty"),
        (b"since=3&agent=" + b",".join(b"a%d" % i for i in range(MAX_VALUES + 1)),
         "agent= lists 101 values"),
        (b"notices=off", "notices='off': use notices=0"),
    ],
)
async def test_a_bad_subscription_is_refused_with_400_before_the_upgrade(
    query: bytes, error: str,
) -> None:
    served: list[Any] = []

    async def serve(ws: Any) -> None:
        served.append(ws)

    answer = await handshake(make_app(websocket=serve), "/ws", query=query)
    assert [m["type"] for m in answer] == ["websocket.http.response.start",
                                          "websocket.http.response.body"]
    assert answer[0]["status"] == 400
    assert dict(answer[0]["headers"])[b"content-type"] == b"application/json"
    assert json.loads(answer[1]["body"])["error"].startswith(error)
    assert served == []


async def test_a_good_subscription_reaches_the_handler() -> None:
    served: list[dict[str, list[str]]] = []

    async def serve(ws: Any) -> None:
        served.append({k: ws.args.getlist(k) for k in ws.args})
        await ws.accept()
        await ws.close(1000)

    query = b"session=a,b&session=c&type=a2a.send&notices=0"
    answer = await handshake(make_app(websocket=serve), "/ws", query=query)
    assert [m["type"] for m in answer] == ["websocket.accept", "websocket.close"]
    assert served == [{"session": ["a,b", "c"], "type": ["a2a.send"], "notices": ["0"]}]
