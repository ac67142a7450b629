"""The event store: seq bookkeeping, the cap and eviction, resume, the indexes behind
`/api/events` (checked against a naive filter), views and statistics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordd.core.event import Event
from coordd.core.sessions import Filter
from coordd.core.store import Store
from coordd.core.vocabulary import CATEGORIES, ROLES
from tests.wsref import NOW, enriched, ev

DAY = 86_400_000


def seqs(events: Any) -> list[int]:
    return [e.seq for e in events]


def test_extend_holds_the_batch() -> None:
    s = Store()
    s.extend([ev(1, "x", NOW, ws="b"), ev(2, "x", NOW, ws=None),
              ev(3, "x", NOW, ws="a"), ev(4, "x", NOW, ws="b")])
    assert (len(s), s.first_seq, s.last_seq, s.evicted_total) == (4, 1, 4, 0)
    s.extend([])
    assert (len(s), s.last_seq, s.generation) == (4, 4, 1)


@pytest.mark.parametrize("bad", [[3], [5, 5], [6, 4]])
def test_seq_must_increase(bad: list[int]) -> None:
    s = Store()
    s.extend([ev(3, "x", NOW)])
    with pytest.raises(ValueError):
        s.extend([ev(q, "x", NOW) for q in bad])
    assert s.last_seq == 3 and len(s) == 1


def test_cap_keeps_the_newest() -> None:
    s = Store(max_events=5)
    s.extend([ev(i, "x", NOW) for i in range(1, 5)])
    s.extend([ev(i, "x", NOW) for i in range(5, 9)])
    assert seqs(s.iter_events()) == [4, 5, 6, 7, 8]
    assert s.evicted_total == 3
    # A batch larger than the cap: only its newest events are kept.
    s.extend([ev(i, "x", NOW) for i in range(20, 28)])
    assert s.evicted_total == 3 + 8
    assert seqs(s.iter_events()) == [23, 24, 25, 26, 27]
    assert s.first_seq == 23


def test_events_since_for_resume() -> None:
    s = Store(max_events=4)
    s.extend([ev(i, "x", NOW) for i in (1, 2, 3, 5)])
    assert seqs(s.events_since(0) or []) == [1, 2, 3, 5]
    assert seqs(s.events_since(3) or []) == [5]
    assert s.events_since(5) == []
    assert s.events_since(99) == []
    s.extend([ev(6, "x", NOW), ev(7, "x", NOW)])  # evicts 1 and 2
    assert s.events_since(0) is None
    assert s.events_since(1) is None
    assert seqs(s.events_since(2) or []) == [3, 5, 6, 7]


def test_index_lists_compact_after_many_evictions() -> None:
    s = Store(max_events=100)
    seq = 0
    for _ in range(60):
        batch = []
        for _ in range(50):
            seq += 1
            batch.append(ev(seq, "a2a.send" if seq % 3 else "task.updated", NOW + seq,
                            role=ROLES[seq % 4], ws=f"w{seq % 7}"))
        s.extend(batch)
    assert seqs(s.iter_events()) == list(range(seq - 99, seq + 1))
    total, _ = s.count_events(types=frozenset({"task.updated"}))
    assert total == sum(1 for e in s.iter_events() if e.type == "task.updated")
    # compaction really happened: the ring's backing list stays near the cap
    assert len(s._index._ring.items) < 2_000
    assert sum(v.count for v in s.view(Filter()).sessions.values()) == 100


# ---------------------------------------------------------------------------- queries


@st.composite
def store_and_query(draw: st.DrawFn) -> tuple[Store, dict[str, Any]]:
    n = draw(st.integers(0, 60))
    cap = draw(st.integers(1, 60))
    store = Store(max_events=cap)
    evs = []
    for seq in range(1, n + 1):
        evs.append(Event(seq, enriched(
            draw(st.sampled_from(["a2a.send", "a2a.response", "task.updated"])),
            NOW + draw(st.integers(-20, 20)) * 1000,  # many ties
            role=draw(st.sampled_from([*ROLES, None])),
            category=draw(st.sampled_from(CATEGORIES[:4])),
        )))
    cut = draw(st.integers(0, n))
    store.extend(evs[:cut])
    step = draw(st.integers(1, 30))
    for i in range(cut, n, step):  # small and bulk insertions
        store.extend(evs[i:i + step])
    q: dict[str, Any] = {
        "roles": draw(st.sampled_from([None, frozenset({ROLES[0]}),
                                       frozenset({ROLES[1], ROLES[2]})])),
        "types": draw(st.sampled_from([None, frozenset({"a2a.send"}),
                                       frozenset({"a2a.send", "task.updated", "nope"})])),
        "category": draw(st.sampled_from([None, CATEGORIES[0], CATEGORIES[1]])),
        "since": draw(st.sampled_from([None, NOW - 5000, NOW + 19_000])),
        "until": draw(st.sampled_from([None, NOW, NOW - 30_000])),
    }
    return store, q


def naive(store: Store, q: dict[str, Any]) -> list[Event]:
    out = []
    for e in store.iter_events():
        if q["roles"] is not None and e.role not in q["roles"]:
            continue
        if q["types"] is not None and e.type not in q["types"]:
            continue
        if q["category"] is not None and e.category != q["category"]:
            continue
        if q["since"] is not None and e.ts < q["since"]:
            continue
        if q["until"] is not None and e.ts >= q["until"]:
            continue
        out.append(e)
    return out


@settings(max_examples=300, deadline=None)
@given(sq=store_and_query(), limit=st.integers(1, 7))
def test_event_queries_equal_a_naive_filter(sq: tuple[Store, dict[str, Any]], limit: int) -> None:
    store, q = sq
    held = list(store.iter_events())
    # the time index is (ts, seq) order, ties included, whatever the batch sizes were
    assert list(store.iter_by_time()) == sorted(held, key=lambda e: (e.ts, e.seq))
    want = naive(store, q)
    total, cats = store.count_events(**q)
    assert total == len(want)
    expect_cats: dict[str, int] = {}
    for e in want:
        expect_cats[e.category] = expect_cats.get(e.category, 0) + 1
    assert cats == expect_cats
    page, more = store.select_events(limit=limit, matches=total, **q)
    assert page == want[-limit:]
    assert more == (len(want) > limit)
    # walk every older page with the seq cursor: each page is older than the one before,
    # so the walk ends within len(want) pages (an inclusive cursor fails here, not hangs)
    got: list[Event] = list(page)
    for _ in range(len(want)):
        if not more:
            break
        page, more = store.select_events(limit=limit, before_seq=got[0].seq, **q)
        assert page
        assert page[-1].seq < got[0].seq, "the cursor page overlaps the previous page"
        got = page + got
    assert not more, f"still more pages after {len(want)} (a cursor that does not move?)"
    assert got == want


def test_time_range_uses_ts_not_log_order() -> None:
    s = Store()
    s.extend([ev(1, "x", NOW + 5), ev(2, "x", NOW - 5), ev(3, "x", NOW)])
    page, more = s.select_events(limit=10, since=NOW)
    assert seqs(page) == [1, 3] and not more
    assert s.count_events(since=NOW, until=NOW + 1)[0] == 1
    assert seqs(s.iter_by_time()) == [2, 3, 1]
    assert seqs(s.iter_by_time(reverse=True)) == [1, 3, 2]


# ---------------------------------------------------------------------------- views, stats


def test_view_lru_is_bounded() -> None:
    s = Store(max_views=2)
    s.extend([ev(1, "a", NOW), ev(2, "b", NOW), ev(3, "c", NOW)])
    va = s.view(Filter(None, frozenset({"a"})))
    s.view(Filter(None, frozenset({"b"})))
    s.view(Filter(None, frozenset({"c"})))
    assert s.statistics(NOW).views_cached == 2
    assert s.peek_view(Filter(None, frozenset({"a"}))) is None
    assert len(va) == 0  # the evicted view released its sessions
    assert s.peek_view(Filter(None, frozenset({"c"}))) is not None


def test_delta_log_keeps_only_what_lazy_views_need() -> None:
    s = Store(max_events=10)
    for i in range(1, 40):
        s.extend([ev(i, "a2a.send", NOW + i)])
    assert not s._log  # no lazy view: nothing retained (evicted events are freed)
    flt = Filter(None, frozenset({"a2a.send"}))
    s.view(flt)
    for i in range(40, 45):
        s.extend([ev(i, "a2a.send", NOW + i)])
    assert [g for g, _, _ in s._log] == [s.generation - k for k in range(4, -1, -1)]
    assert s.view(flt).sessions["ws_1"].count == 10
    s.extend([ev(45, "a2a.send", NOW + 45)])
    assert [g for g, _, _ in s._log] == [s.generation]
    # Task-Hub's view is pinned: maintained by extend, never rebuilt
    hub = Filter(frozenset({"conversation.main"}), frozenset({"a2a.response"}))
    rebuilds = s.rebuilds
    s.extend([ev(46, "a2a.response", NOW, role="conversation.main", ws="hub")])
    assert s.peek_view(hub) is s.view(hub)
    assert s.view(hub).sessions["hub"].count == 1
    assert s.rebuilds == rebuilds


def test_statistics() -> None:
    s = Store(max_events=3, epoch="e1")
    s.extend([ev(1, "a2a.send", NOW - 2 * DAY, ws="old"),
              ev(2, "a2a.complete", NOW - 1000, ws="quiet"),
              ev(3, "a2a.send", NOW - 1000, ws="live"),
              ev(4, "a2a.send", NOW, ws="live")])
    stats = s.statistics(NOW)
    assert (stats.events, stats.sessions, stats.evicted) == (3, 2, 1)
    assert stats.sessions_by_status == {"ACTIVE": 1, "QUIET": 1, "ARCHIVED": 0}
    assert (stats.first_seq, stats.last_seq, stats.epoch) == (2, 4, "e1")
    assert stats.by_type == {"a2a.complete": 1, "a2a.send": 2}
    assert s.statistics(NOW + 2 * DAY).sessions_by_status["ARCHIVED"] == 2


def test_last_seq_can_be_preset_by_the_pipeline() -> None:
    s = Store()
    s.last_seq = 41
    with pytest.raises(ValueError):
        s.extend([ev(41, "x", NOW)])
    s.extend([ev(42, "x", NOW)])
    assert s.first_seq == 42


def test_evicted_events_are_released_not_kept_by_the_indexes() -> None:
    """A full store that keeps evicting holds on to few evicted events: the index lists
    compact once an eighth of them is dead (at a half, a whole store's worth of evicted
    events stayed alive: +120 MiB at 100,000 events)."""
    import gc

    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is Event)

    base = alive()
    store = Store(max_events=2_000)
    types = ["a2a.send", "a2a.response", "task.started", "continuation.started", "plan.x"]
    seq = 0
    most = 0
    for i in range(400):  # 20,000 events in batches of 50
        batch = []
        for _ in range(50):
            seq += 1
            batch.append(ev(seq, types[seq % len(types)], NOW + seq, ws=f"ws_{seq // 40}"))
        store.extend(batch)
        del batch
        if i % 7 == 0:
            most = max(most, alive() - base)
    assert len(store) == 2_000
    assert most <= 2_000 * 9 // 8 + 64
