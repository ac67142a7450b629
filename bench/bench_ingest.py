"""In-process benchmark of the ingest path: cold-start history build and live appends.

    python bench/bench_ingest.py [--history 100000] [--live 20000] [--batch 100]

1. Cold start, as the pipeline does it: every history line parsed and enriched into an
   `Event` (`Pipeline._build`), then numbered and stored in one `Store.extend`. Each
   stage's wall time is printed (the daemon's cold-start target is ≤ 1.25 s end to end,
   spawn to first answer, of which this is the largest part).
2. Live appends: with the store full of history (capacity `--history`, so every live
   batch also evicts as many old events), `--live` events of another generated log
   arrive in batches of `--batch` (100 ≈ 20,000 events/s written every 5 ms, as
   `bench_ws.py` does) and go through build, numbering, `Store.extend` and the hub's
   per-batch message building (`Batch.of`). Reported: CPU µs per event for each stage
   and the events/s one core sustains (target: ≥ 20,000 appended events/s while serving,
   so the pipeline must leave most of the core to the web server and the hub).

Times are CPU seconds of this process (`time.process_time`), on a shared machine: compare
medians across runs on one machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordd.core.enrich import Enricher
from coordd.core.event import Event
from coordd.core.store import Store
from coordd.live.messages import Batch
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS
from coordd.synth.gen import lines
from coordd.synth.text import MAIN_AGENTS
from coordd.tail.pipeline import Pipeline


class _Builder:
    """`Pipeline._build` without a tailer: the same code path, bound to an enricher."""

    def __init__(self, enricher: Enricher) -> None:
        self.enricher = enricher
        self._rejected: Counter[str] = Counter()
        self._repaired = 0
        self._ratelog = _Quiet()

    def build(self, raw: list[bytes]) -> list[Event]:
        return Pipeline._build(self, raw)  # type: ignore[arg-type]

    _skipped = Pipeline._skipped
    _not_an_event = Pipeline._not_an_event


class _Quiet:
    def warning(self, *args: Any) -> None:
        pass

    def admit(self, key: str) -> None:
        return None


def make_enricher() -> Enricher:
    host = PluginHost(allow=["keywords"])
    host.start()
    mains = frozenset(DEFAULT_MAIN_AGENTS | {a.lower() for a in MAIN_AGENTS})
    return Enricher(host, host.vocabulary(), lambda: mains)


def cold(history: list[bytes], builder: _Builder, capacity: int) -> Store:
    t0 = time.perf_counter()
    events = builder.build(history)
    t1 = time.perf_counter()
    for i, ev in enumerate(events, 1):
        ev.seq = i
    store = Store(max_events=capacity)
    store.extend(events)
    t2 = time.perf_counter()
    print(f"1. cold start, {len(history)} lines: build {t1 - t0:.2f} s "
          f"({(t1 - t0) / len(history) * 1e6:.1f} µs/line), store {t2 - t1:.2f} s, "
          f"total {t2 - t0:.2f} s")
    return store


def live(store: Store, payload: list[bytes], builder: _Builder, batch: int) -> None:
    cpu = time.process_time
    t_build = t_store = t_hub = 0.0
    n = 0
    for start in range(0, len(payload), batch):
        part = payload[start:start + batch]
        a = cpu()
        events = builder.build(part)
        b = cpu()
        seq = store.last_seq
        for ev in events:
            seq += 1
            ev.seq = seq
        store.extend(events)
        c = cpu()
        if events:
            Batch.of(events, store.epoch, time.time() * 1000.0)
        d = cpu()
        t_build += b - a
        t_store += c - b
        t_hub += d - c
        n += len(events)
    total = t_build + t_store + t_hub
    print(f"2. live, {n} events in batches of {batch} (store full, evicting): "
          f"build {t_build / n * 1e6:.1f} µs/event, store {t_store / n * 1e6:.1f}, "
          f"hub messages {t_hub / n * 1e6:.1f}; total {total / n * 1e6:.1f} µs/event "
          f"= {n / total:,.0f} events/s on one core")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--history", type=int, default=100_000)
    p.add_argument("--live", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--profile", choices=["cold", "live"], help="cProfile one phase")
    args = p.parse_args(argv)
    print(f"bench_ingest: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("command: python bench/bench_ingest.py " + " ".join(argv or sys.argv[1:]))
    history = list(lines(args.history, seed=3))
    payload = list(lines(args.live, seed=7))
    builder = _Builder(make_enricher())
    gc.collect()
    if args.profile == "cold":
        import cProfile
        import pstats
        with cProfile.Profile() as prof:
            store = cold(history, builder, args.history)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    else:
        store = cold(history, builder, args.history)
    # As in the daemon after ready (coordd.service.gcpolicy): the history is frozen out of the
    # collector's sight.
    gc.collect(1)
    gc.freeze()
    if args.profile == "live":
        import cProfile
        import pstats
        with cProfile.Profile() as prof:
            live(store, payload, builder, args.batch)
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
    else:
        live(store, payload, builder, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
