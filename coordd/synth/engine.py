"""The engine of the synthetic log generator: session templates, placement, merging.

Pure (no I/O, no trio). A work session is planned once by `coordd.synth.flows` with
placeholders for agents and ids (`coordd.synth.text.Slots`) and compiled to one `%`-format
byte string per event. Each instance of a template gets fresh ids, a permutation of the
agents and its own place in time, so a line costs one `bytes % tuple` in C: that keeps a
million lines to a few seconds, while small logs still plan every session afresh.

`merge` interleaves the placed sessions in time order (a heap of running sessions, each
placed when it starts) and writes a few events a little late, as several writers do.
Sessions come either from a finite, pre-sized list (`coordd.synth.gen.planned`) or from an
endless Poisson stream (`stream`, for `coordd demo`).
"""

from __future__ import annotations

import heapq
import random
import re
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any, Final

import orjson

from coordd.core.jsvalues import dumps, iso_ms
from coordd.synth.flows import SessionBuilder
from coordd.synth.text import MAIN_AGENTS, SLOT_MAKERS, WORKERS, Slots, Vocabulary

__all__ = [
    "CONCURRENCY",
    "EVENTS_PER_SESSION",
    "PlannedLine",
    "SessionPlan",
    "merge",
    "render",
    "stream",
]

EVENTS_PER_SESSION: Final = 30
#: Average number of work sessions running at once.
CONCURRENCY: Final = 3.0
#: Share of events carrying `timestampMs`, and of those in "ISO" sessions (written by an
#: older gateway) that carry an ISO `timestamp`.
TIMESTAMP_MS_SHARE: Final = 0.004
ISO_SHARE_IN_ISO_SESSION: Final = 0.5
#: Share of events a busy writer flushes after one to four later events.
LATE_SHARE: Final = 0.003
#: Distinct plans kept per session size (fewer for large sizes: about `EVENTS_PER_SIZE`
#: planned events per size); further sessions of that size reuse one with fresh values.
TEMPLATES_PER_SIZE: Final = 8
EVENTS_PER_SIZE: Final = 240

_MARK_RE: Final = re.compile(rb"@@(\d+)@@")
_MAIN_BYTES: Final = tuple(a.encode() for a in MAIN_AGENTS)
_WORKER_BYTES: Final = tuple(a.encode() for a in WORKERS)
_FIRST_ID_SLOT: Final = 1 + len(MAIN_AGENTS) + len(WORKERS)

#: One event ready to be written: (ts, time shape, format, slot getter, slot values).
#: The time shape is 0 for `ts`, 1 for an ISO `timestamp`, 2 for `timestampMs`.
PlannedLine = tuple[int, int, bytes, Any, list[bytes]]
#: One session to place: (first ms, duration ms, number of events, ISO-writer flag).
SessionPlan = tuple[int, float, int, bool]


def render(item: PlannedLine, ts: int | None = None) -> bytes:
    """The log line (with its newline) of a planned event, at `ts` if given."""
    planned_ts, shape, fmt, getter, values = item
    if ts is None:
        ts = planned_ts
    if shape == 0:
        values[0] = b'"ts":%d' % ts
    elif shape == 1:
        values[0] = b'"timestamp":"' + iso_ms(ts).encode() + b'"'
    else:
        values[0] = b'"timestampMs":%d' % ts
    return fmt % getter(values)  # type: ignore[no-any-return]  # a str: a format applied


class _Template:
    """One planned session compiled to `%`-format lines."""

    __slots__ = ("events", "kinds")

    def __init__(self, kinds: list[str], events: list[tuple[float, float, bytes, Any]]) -> None:
        self.kinds = kinds
        self.events = events


def _compile(builder: SessionBuilder) -> _Template:
    events = []
    for fixed, idle, etype, agent, data in builder.build():
        try:
            body = orjson.dumps(data)
        except orjson.JSONEncodeError:
            body = dumps(data)  # lone surrogates: escaped like JSON.stringify
        line = (b'{"type":' + orjson.dumps(etype) + b',"agentId":' + orjson.dumps(agent)
                + b",@@%d@@," % Slots.TIME + b'"data":' + body + b"}\n")
        if b"%" in line:
            line = line.replace(b"%", b"%%")  # literal text in a %-format
        parts = _MARK_RE.split(line)
        fmt = b"%s".join(parts[0::2])
        getter = itemgetter(*map(int, parts[1::2]))  # one slot at least: the time
        events.append((fixed, idle, fmt, getter))
    return _Template(builder.slots.kinds, events)


def _casts(rng: random.Random, count: int = 64) -> list[list[bytes]]:
    """`count` permutations of the agents, for `_values` to start from."""
    return [[b"", *rng.sample(_MAIN_BYTES, len(_MAIN_BYTES)),
             *rng.sample(_WORKER_BYTES, len(_WORKER_BYTES))] for _ in range(count)]


def _values(rng: random.Random, kinds: list[str], casts: list[list[bytes]]) -> list[bytes]:
    """Fresh values for a template's slots: the agents permuted, new ids."""
    values = casts[int(rng.random() * len(casts))].copy()
    makers = SLOT_MAKERS
    for kind in kinds[_FIRST_ID_SLOT:]:
        values.append(makers[kind](rng).encode())
    return values


def _place(rng: random.Random, template: _Template, values: list[bytes], first: int,
           duration: float, iso: bool, end: int | None) -> list[PlannedLine]:
    """Put one instance of `template` in `[first, first + duration]` (and not after `end`).

    Flow-internal delays (a reply takes seconds) are kept; the idle time between flows is
    stretched to fill the duration, and everything shrinks if even that is too long.
    """
    events = template.events
    fixed, idle = events[-1][0], events[-1][1]
    if fixed >= duration:
        shrink, stretch = (duration / fixed if fixed else 0.0), 0.0
    else:
        shrink, stretch = 1.0, ((duration - fixed) / idle if idle else 0.0)
    p_iso = TIMESTAMP_MS_SHARE + (ISO_SHARE_IN_ISO_SESSION if iso else 0.0)
    rnd = rng.random
    out: list[PlannedLine] = []
    for f, e, fmt, getter in events:
        ts = int(first + f * shrink + e * stretch)
        if end is not None and ts > end:
            ts = end
        r = rnd()
        shape = 0 if r >= p_iso else (2 if r < TIMESTAMP_MS_SHARE else 1)
        out.append((ts, shape, fmt, getter, values))
    return out


def merge(rng: random.Random, vocab: Vocabulary, plans: Iterable[SessionPlan],
          n: int | None = None, end: int | None = None) -> Iterator[PlannedLine]:
    """Interleave sessions (`plans` sorted by start) in time order; `n` events at most.

    Each session is planned (or a template reused) when its start comes up, so memory
    holds only the sessions running at that moment plus the template library.
    """
    library: dict[int, list[_Template]] = {}
    casts = _casts(rng)
    heap: list[tuple[int, int, int, list[PlannedLine]]] = []
    late: list[tuple[int, PlannedLine]] = []  # (release after this many events, event)
    push, replace, pop = heapq.heappush, heapq.heapreplace, heapq.heappop
    rnd = rng.random
    upcoming = iter(plans)
    nxt = next(upcoming, None)
    sid = 0
    emitted = 0
    next_late = 1 + int(rng.expovariate(LATE_SHARE))
    while n is None or emitted < n:
        while nxt is not None and (not heap or nxt[0] <= heap[0][0]):
            first, duration, size, iso = nxt
            shelf = library.setdefault(size, [])
            cap = max(2, min(TEMPLATES_PER_SIZE, EVENTS_PER_SIZE // size))
            if len(shelf) < cap:
                template = _compile(SessionBuilder(rng, vocab, size))
                shelf.append(template)
            else:
                template = shelf[int(rnd() * cap)]
            values = _values(rng, template.kinds, casts)
            events = _place(rng, template, values, first, duration, iso, end)
            push(heap, (events[0][0], sid, 0, events))
            sid += 1
            nxt = next(upcoming, None)
        if not heap:
            break
        _, key, pos, events = heap[0]
        if pos + 1 < len(events):
            replace(heap, (events[pos + 1][0], key, pos + 1, events))
        else:
            pop(heap)
        emitted += 1
        if emitted == next_late:
            late.append((emitted + 1 + int(rnd() * 4), events[pos]))
            next_late = emitted + 1 + int(rng.expovariate(LATE_SHARE))
        else:
            yield events[pos]
        while late and (late[0][0] <= emitted or (n is not None and emitted >= n)):
            yield late.pop(0)[1]
    for _, item in late:
        yield item


def stream(*, seed: int | None = None, rate: float = 20.0, start_ms: int = 0,
           concurrency: float = 40.0) -> Iterator[PlannedLine]:
    """An endless log: sessions arrive as a Poisson process, ~`rate` events per second.

    Timestamps start at `start_ms`; `concurrency` is the average number of sessions
    running at once, so a session lasts about `concurrency × size / rate` seconds.
    Sessions start from `start_ms` on, so the first minutes are quieter than the steady
    state: callers that want a steady log from the first line start reading later.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, not {rate}")
    rng = random.Random(seed)
    vocab = Vocabulary(rng, per_theme=64)

    def plans() -> Iterator[SessionPlan]:
        arrivals_per_ms = rate / EVENTS_PER_SESSION / 1000.0
        at = float(start_ms)
        while True:
            at += rng.expovariate(arrivals_per_ms)
            size = max(1, round(EVENTS_PER_SESSION * rng.lognormvariate(-0.32, 0.8)))
            duration = concurrency * size / rate * 1000.0 * rng.lognormvariate(0.0, 0.4)
            yield int(at), duration, size, rng.random() < 0.06

    return merge(rng, vocab, plans())
