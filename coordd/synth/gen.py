"""Realistic synthetic coordination logs, for benchmarks, tests and `coordd demo`.

Pure (no trio). `generate(n)` yields `n` raw events as the gateway writes them (one JSON
object per line with exactly `type`, `agentId`, `ts`, `data`), grouped into work sessions
whose lifecycles are planned by `coordd.synth.flows`. Sessions overlap in time (about three
at once), their events are merged in time order, and a few events are written a little
late, as in a real log with several writers. A few legacy shapes appear as in real logs:
ISO `timestamp` or `timestampMs` instead of `ts`, events without a work session
(continuation runner, Discord auto-routing, sends outside a task), explicit roles, session
types and categories.

`lines(n)` serialises them like `JSON.stringify` (compact, non-ASCII raw, lone surrogates
escaped) and, with `junk > 0`, replaces that fraction of lines with the damage real logs
show (`JUNK_KINDS`). `write_log(path, n)` writes a file; `python -m coordd.synth.gen N PATH`.

Everything is deterministic for a given seed and arguments; the default time span is fixed
(it starts 2026-01-01T00:00:00Z and grows with `n`, ~140 s per event as in the reference
logs), so no output depends on the wall clock unless `start_ms`/`end_ms` say so.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from coordd.core.jsvalues import loads, parse_js_date
from coordd.synth.engine import (
    CONCURRENCY,
    EVENTS_PER_SESSION,
    PlannedLine,
    SessionPlan,
    merge,
    render,
)
from coordd.synth.text import AGENTS, Vocabulary

__all__ = [
    "AGENTS",
    "DEFAULT_START_MS",
    "JUNK_KINDS",
    "MS_PER_EVENT",
    "PlannedLine",
    "generate",
    "lines",
    "main",
    "planned",
    "render",
    "write_log",
]

log = logging.getLogger(__name__)

DEFAULT_START_MS: Final = 1_767_225_600_000  # 2026-01-01T00:00:00Z
#: Default span per event: the reference logs cover ~117 h with 3,000 lines.
MS_PER_EVENT: Final = 140_000
#: Share of work sessions written by an older gateway that used ISO `timestamp`.
ISO_SESSIONS: Final = 0.06
#: Session sizes above this are snapped to a 10 % grid in large logs (see `_budgets`).
SNAP_FROM: Final = 40

JUNK_KINDS: Final = ("truncated", "non_finite", "bom", "blank", "crlf", "non_object",
                     "lone_surrogate", "bad_type", "data_not_object")
_JUNK_WEIGHTS: Final = (0.25, 0.10, 0.14, 0.12, 0.08, 0.10, 0.08, 0.09, 0.04)
_JUNK_CUM: Final = tuple(sum(_JUNK_WEIGHTS[: i + 1]) for i in range(len(_JUNK_WEIGHTS)))
_NON_OBJECTS: Final = (b"[1,2,3]", b'"just a string"', b"42", b"null", b"true")
_BAD_TYPES: Final = (b'{"type":"",', b'{"type":"   ",', b'{"type":17,', b'{"type":null,', b"{")
_TYPE_RE: Final = re.compile(rb'^\{"type":"[^"]*",')
_TS_RE: Final = re.compile(rb'"(?:ts|timestampMs)":\d+')


def _span(n: int, start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    if start_ms is None and end_ms is None:
        start_ms = DEFAULT_START_MS
    length = max(n, 1) * MS_PER_EVENT
    if start_ms is None:
        assert end_ms is not None
        start_ms = end_ms - length
    if end_ms is None:
        end_ms = start_ms + length
    if end_ms < start_ms:
        raise ValueError(f"end_ms ({end_ms}) is before start_ms ({start_ms})")
    return int(start_ms), int(end_ms)


def _snap(size: int) -> int:
    """Round a large session size to a 10 % grid, so that templates can be shared."""
    step = round(math.log(size / SNAP_FROM) / math.log(1.1))
    return max(SNAP_FROM, round(SNAP_FROM * 1.1**step))


def _budgets(rng: random.Random, n: int, count: int) -> list[int]:
    """`count` session sizes (each ≥ 1, long-tailed) that add up to exactly `n`.

    In large logs, sizes above `SNAP_FROM` are snapped to a grid and the small sessions
    absorb the difference.
    """
    raw = [rng.lognormvariate(0.0, 0.8) for _ in range(count)]
    scale = n / sum(raw)
    sizes = [max(1, int(r * scale)) for r in raw]
    if count >= 50:
        sizes = [size if size <= SNAP_FROM else _snap(size) for size in sizes]
    pool = [i for i, size in enumerate(sizes) if size < SNAP_FROM] or list(range(count))
    diff = n - sum(sizes)
    while diff > 0:
        sizes[pool[int(rng.random() * len(pool))]] += 1
        diff -= 1
    while diff < 0:
        if all(sizes[i] == 1 for i in pool):
            pool = list(range(count))  # the small sessions cannot shrink any further
        i = pool[int(rng.random() * len(pool))]
        if sizes[i] > 1:
            sizes[i] -= 1
            diff += 1
    return sizes


def planned(n: int, *, seed: int = 0, start_ms: int | None = None, end_ms: int | None = None,
            sessions: int | None = None, junk: float = 0.0) -> Iterator[PlannedLine]:
    """The `n` events of `generate` as `PlannedLine`s, in log order, not yet rendered.

    `coordd.cli.demo` uses this to write the same events with live timestamps.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    if not 0.0 <= junk <= 1.0:
        raise ValueError(f"junk must be a fraction in [0, 1], not {junk}")
    if n == 0:
        return
    start, end = _span(n, start_ms, end_ms)
    count = sessions if sessions is not None else max(1, round(n / EVENTS_PER_SESSION))
    if count < 1:
        raise ValueError(f"sessions must be >= 1, not {count}")
    count = min(count, n)
    rng = random.Random(seed)
    span = end - start
    plans: list[SessionPlan] = []
    for size in _budgets(rng, n, count):
        duration = min(span, CONCURRENCY * span * size / n * rng.lognormvariate(0.0, 0.4))
        plans.append((int(start + rng.random() * (span - duration)), duration, size,
                      rng.random() < ISO_SESSIONS))
    plans.sort(key=lambda p: p[0])
    vocab = Vocabulary(rng, per_theme=max(12, min(64, n // 40)))
    yield from merge(rng, vocab, plans, n, end)


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return loads(line)  # lone surrogate escapes, which orjson rejects


def generate(n: int, *, seed: int = 0, start_ms: int | None = None, end_ms: int | None = None,
             sessions: int | None = None, junk: float = 0.0) -> Iterator[dict[str, Any]]:
    """Yield `n` raw coordination events, timestamps within `[start_ms, end_ms]`.

    `sessions` is the number of work sessions (default ≈ n / 30). `junk` is accepted so
    that `generate`, `lines` and `write_log` take the same keywords; it does not change
    the events (junk exists only at the byte level, see `lines`). Deterministic for a
    given seed and arguments; the events are exactly those `lines` writes.
    """
    for item in planned(n, seed=seed, start_ms=start_ms, end_ms=end_ms, sessions=sessions,
                        junk=junk):
        yield _loads(render(item))


def _junk(rng: random.Random, line: bytes) -> bytes:
    """Damage one serialised line (with its newline) in one of the `JUNK_KINDS` ways."""
    pick = rng.random() * _JUNK_CUM[-1]
    kind = 0
    while _JUNK_CUM[kind] < pick:
        kind += 1
    name = JUNK_KINDS[kind]
    if name == "truncated":  # a partly written line: any proper prefix of an object
        return line[: rng.randrange(1, len(line) - 2)] + b"\n"
    if name == "non_finite":
        literal = rng.choice((b"NaN", b"Infinity", b"-Infinity"))
        text, hits = _TS_RE.subn(b'"ts":' + literal, line, count=1)
        return text if hits else b'{"type":"task.updated","agentId":"ruda","ts":NaN,"data":{}}\n'
    if name == "bom":
        return b"\xef\xbb\xbf" + line
    if name == "blank":
        return rng.choice((b"\n", b"   \n", b"\t\n", b"\r\n"))
    if name == "crlf":
        return line[:-1] + b"\r\n"
    if name == "non_object":
        return rng.choice(_NON_OBJECTS) + b"\n"
    if name == "lone_surrogate":  # an emoji cut in half by a UTF-16 slice
        sep = b"" if line.endswith(b"{}}\n") else b","
        return line[:-3] + sep + b'"note":"- \\ud83d"}}\n'
    if name == "bad_type":
        return _TYPE_RE.sub(rng.choice(_BAD_TYPES), line, count=1)
    cut = line.index(b',"data":{')  # data_not_object
    return line[:cut] + b',"data":"text"}\n'


def lines(n: int, **kw: Any) -> Iterator[bytes]:
    """The events of `generate(n, **kw)` as log lines (compact JSON, `\\n`-terminated).

    With `junk=f`, each line is replaced with probability `f` by a damaged line (see
    `JUNK_KINDS`); the other lines are byte-identical to those of a junk-free run.
    """
    junk = float(kw.get("junk", 0.0))
    jrng = random.Random(f"{kw.get('seed', 0)}/junk")
    for item in planned(n, **kw):
        line = render(item)
        if junk and jrng.random() < junk:
            line = _junk(jrng, line)
        yield line


def write_log(path: Path, n: int, **kw: Any) -> int:
    """Write `lines(n, **kw)` to `path` (replacing it); return the number of bytes written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    batch: list[bytes] = []
    with path.open("wb") as f:
        for line in lines(n, **kw):
            batch.append(line)
            if len(batch) == 4096:
                total += f.write(b"".join(batch))
                batch.clear()
        total += f.write(b"".join(batch))
    return total


def _time_arg(text: str) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    ms = parse_js_date(text, naive_is_utc=True)
    if ms is None:
        raise argparse.ArgumentTypeError(f"not epoch ms or ISO-8601: {text!r}")
    return int(ms)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m coordd.synth.gen N PATH [--seed S] [--junk F] [--sessions K] [--start T]
    [--end T]`."""
    parser = argparse.ArgumentParser(prog="python -m coordd.synth.gen",
                                     description="Write a realistic synthetic coordination log.")
    parser.add_argument("n", type=int, help="number of lines")
    parser.add_argument("path", type=Path, help="output file (replaced)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--junk", type=float, default=0.0, help="fraction of damaged lines")
    parser.add_argument("--sessions", type=int, default=None, help="work sessions (default n/30)")
    parser.add_argument("--start", type=_time_arg, default=None, help="epoch ms or ISO-8601")
    parser.add_argument("--end", type=_time_arg, default=None, help="epoch ms or ISO-8601")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    began = time.perf_counter()
    try:
        size = write_log(args.path, args.n, seed=args.seed, junk=args.junk,
                         sessions=args.sessions, start_ms=args.start, end_ms=args.end)
    except (ValueError, OSError) as exc:
        log.error("coordd.synth.gen: %s", exc)
        return 2
    took = time.perf_counter() - began
    log.info("wrote %d lines, %d bytes (%.0f bytes/line) to %s in %.2f s",
             args.n, size, size / max(args.n, 1), args.path, took)
    return 0


if __name__ == "__main__":
    sys.exit(main())
