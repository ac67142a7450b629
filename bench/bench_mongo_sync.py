"""Benchmark of the MongoDB sync worker's own overhead, with the in-memory sink.

1. End to end through batching: the pipeline's offers (chunks of `--chunk` events, as the
   ingest loop hands them on, never more than three chunks ahead of the worker), the
   worker's batches (200 events / 0.2 s, the defaults), a worker-thread hop per batch,
   the documents (old recipe + coordd's fields, work-session documents from the store)
   and `MemorySink` writes. Target: >= 50,000 events/s.

   When a sync worker runs, the pipeline prepares each new event's document while the
   event is still in the cache (`Event.source`, `mongo_schema.prepare_document`: all
   but the write-time fields, event hash included). That part of the worker's cost is
   paid in the pipeline, so it is measured too (enriching the same events with and
   without `prepare`) and added: the rate "with the pipeline side" is the one held
   against the target.
2. Catch-up from memory: the same events taken from the store after the worker fell
   behind, built from their stored JSON alone (parsed again, hashed from scratch).
3. The memory bound while the sink is down for a burst of `--burst` events (default
   100,000): the peak of buffered events (bounded by `buffer_events`, 10,000) and the RSS
   growth during the burst; then the sink comes back and the time to catch up, with a
   check that every event is in the sink exactly once.

The events are generated and enriched, and the store filled, before anything is timed.
Wall-clock times on a shared machine; each figure is the best of `--repeat` runs. As
`bench_enrich.py` does, the orjson parse rate of the raw log lines is printed as a
yardstick of the machine's speed (the architecture notes measured ~590,000 lines/s on
our reference machines).

Run from the repository root:

    python bench/bench_mongo_sync.py                        # 100,000 events, ~1-2 minutes
    python bench/bench_mongo_sync.py --events 20000 --burst 20000 --repeat 1   # quicker
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import trio
import trio.lowlevel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordd.core.enrich import Enricher
from coordd.core.event import Event
from coordd.core.sessions import UNFILTERED
from coordd.core.store import Store
from coordd.mongo.memsink import MemorySink
from coordd.mongo.schema import prepare_document
from coordd.mongo.sessiondocs import session_documents
from coordd.mongo.sink import WriteResult
from coordd.mongo.sync import SyncSettings, SyncSource, SyncWorker
from coordd.plugins import keywords
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS
from coordd.synth.gen import generate, lines

PAGE = os.sysconf("SC_PAGE_SIZE")
REFERENCE_PARSE_RATE = 100_000 / 0.17  # architecture.md, "Performance facts"


def parse_rate(n: int = 20_000, repeat: int = 5) -> float:
    """orjson lines/s on raw generated log lines: the machine's speed right now."""
    raw = [line for line in lines(n, seed=2) if b"\\ud" not in line]
    best = min(_timed(lambda: [orjson.loads(x) for x in raw]) for _ in range(repeat))
    return len(raw) / best


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class CountingSink(MemorySink):
    """`MemorySink` that keeps only each event's hash and seq: holding 100,000 documents
    (millions of small objects) would make the benchmark measure the garbage collector
    walking them rather than the worker. Same protocol, same "already there" semantics."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}

    def write_events(self, docs: Any) -> WriteResult:
        with self._lock:
            self._enter("write_events")
            seen = self.seen
            before = len(seen)
            for doc in docs:
                seen.setdefault(doc["eventHash"], doc["seq"])
            inserted = len(seen) - before
            return WriteResult(inserted, len(docs) - inserted)


def make_enricher() -> Enricher:
    """The pipeline's enricher when a sync worker runs (it prepares `Event.source`)."""
    host = PluginHost(load_entry_points=False, extra=[("keywords", keywords)], budget=1e9)
    host.start()
    return Enricher(host, host.vocabulary(), lambda: DEFAULT_MAIN_AGENTS,
                    prepare=prepare_document)


def source_cost(n: int = 20_000, repeat: int = 5) -> float:
    """Seconds per event the pipeline spends on `Event.source` (enriching with the sync
    worker's `prepare` less without, the same values, best of `repeat` each)."""
    enricher = make_enricher()
    values = [orjson.loads(x) for x in lines(n, seed=3)]

    def run(with_source: bool) -> float:
        # Each event dropped at once: the pipeline hands on a few hundred at a time.
        enrich = enricher.enrich_event
        t = time.perf_counter()
        for v in values:
            enrich(v, with_source=with_source)
        return time.perf_counter() - t

    with_src = min(run(True) for _ in range(repeat))
    without = min(run(False) for _ in range(repeat))
    return max(0.0, with_src - without) / n


def build_events(n: int) -> tuple[list[Event], list[Any]]:
    """The events, and the `Event.source` of each: what the pipeline leaves on an event
    for the worker when a sync worker runs (dropped once the event is written)."""
    enricher = make_enricher()
    events: list[Event] = []
    sources: list[Any] = []
    for raw in generate(n, seed=1):
        ev = enricher.enrich_event(raw, len(events) + 1, with_source=True)
        if ev is not None and ev.source is not None:
            events.append(ev)
            sources.append(ev.source)
    return events, sources


def build_store(events: Sequence[Event]) -> Store:
    """A store holding exactly these events, as the pipeline would have filled it."""
    store = Store(max_events=len(events), epoch="BENCH")
    for i in range(0, len(events), 1000):
        store.extend(events[i:i + 1000])
    return store


def source(store: Store) -> SyncSource:
    def session_docs(ws_ids: Any) -> list[dict[str, Any]]:
        return session_documents(store.view(UNFILTERED).sessions, ws_ids,
                                 override=store.overrides.get, epoch=store.epoch,
                                 now_ms=time.time() * 1000)

    return SyncSource(epoch=lambda: store.epoch, last_seq=lambda: store.last_seq,
                      first_seq=lambda: store.first_seq, events_since=store.events_since,
                      session_docs=session_docs)


async def offer_all(worker: SyncWorker, events: Sequence[Event], chunk: int) -> None:
    """Offer `events` in chunks as fast as the worker takes them, never more than three
    chunks ahead: the sustained rate (a burst beyond the buffer is caught up from memory,
    measured apart)."""
    for i in range(0, len(events), chunk):
        if i >= 3 * chunk:
            await worker.wait_synced(events[i - 3 * chunk].seq)
        worker.offer(events[i:i + chunk])
        await trio.lowlevel.checkpoint()


async def throughput(store: Store, events: Sequence[Event], sources: Sequence[Any],
                     chunk: int, via_offer: bool) -> tuple[float, int]:
    """Seconds from the first offer (or the start) until everything is in the sink.

    Offered events carry their `Event.source`, as the pipeline hands them on when a sync
    worker runs (the worker keeps it for the first 2,000 buffered events and builds the
    document from it); events caught up from memory have only their stored JSON."""
    for ev, src in zip(events, sources, strict=True):
        ev.source = src if via_offer else None
    sink = CountingSink()
    worker = SyncWorker(sink, source(store), SyncSettings())
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(0.05)  # connected
        t0 = time.perf_counter()
        if via_offer:
            await offer_all(worker, events, chunk)
        await worker.wait_synced(events[-1].seq)
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    assert sorted(sink.seen.values()) == [ev.seq for ev in events], "not exactly once"
    return elapsed, worker.statistics().batches


async def outage(store: Store, events: Sequence[Event], chunk: int) -> dict[str, Any]:
    sink = CountingSink()
    sink.down = "benchmark: MongoDB is down"
    settings = SyncSettings(backoff_max=0.5)
    worker = SyncWorker(sink, source(store), settings)
    peak = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(0.1)
        rss0 = rss_bytes()
        rss_peak = rss0
        t_offer = 0.0
        for i in range(0, len(events), chunk):
            t = time.perf_counter()
            worker.offer(events[i:i + chunk])
            t_offer += time.perf_counter() - t
            peak = max(peak, worker.statistics().pending)
            rss_peak = max(rss_peak, rss_bytes())
            await trio.lowlevel.checkpoint()
        down = worker.statistics()
        t0 = time.perf_counter()
        sink.down = None
        await worker.wait_synced(events[-1].seq)
        catch_up = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    assert sorted(sink.seen.values()) == [ev.seq for ev in events], "not exactly once"
    return {"peak": peak, "rss_delta": rss_peak - rss0, "state": down.state,
            "lag": down.lag, "dropped": down.dropped, "catch_up": catch_up,
            "offer_us": t_offer / max(1, len(events) // chunk) * 1e6,
            "from_memory": worker.statistics().from_memory}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--burst", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=500, help="events per offer")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"# {platform.python_implementation()} {platform.python_version()} on "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    print(f"# python bench/bench_mongo_sync.py --events {args.events} --burst {args.burst} "
          f"--chunk {args.chunk} --repeat {args.repeat}")
    events, sources = build_events(max(args.events, args.burst))
    sample = events[:args.events]
    store = build_store(sample)
    gc.freeze()  # what was built before timing is the daemon's steady state, not the worker's
    speed = parse_rate() / REFERENCE_PARSE_RATE
    print(f"machine speed: orjson parses {speed * REFERENCE_PARSE_RATE:,.0f} log lines/s = "
          f"{speed:.2f} x the reference machine's {REFERENCE_PARSE_RATE:,.0f}")
    extra = source_cost()
    print(f"pipeline side: preparing Event.source (the document, event hash included) costs "
          f"{extra * 1e6:.2f} us/event")
    for label, via_offer in (("offer -> batches -> sink", True),
                             ("catch-up from memory", False)):
        best = min(trio.run(throughput, store, sample, sources[:args.events], args.chunk,
                            via_offer)
                   for _ in range(args.repeat))
        rate = len(sample) / best[0]
        line = (f"{label:<26} {len(sample):>7} events in {best[0]:6.2f} s = {rate:>8,.0f} "
                f"events/s ({best[1]} batches)")
        if via_offer:
            rate = 1 / (best[0] / len(sample) + extra)
            line += f"; with the pipeline side {rate:,.0f} events/s"
            line += f"; target >= 50,000: {'OK' if rate >= 50_000 else 'BELOW TARGET'}"
        print(f"{line}; scaled to the reference machine {rate / speed:,.0f} events/s")
    burst = events[:args.burst]
    o = trio.run(outage, build_store(burst), burst, args.chunk)
    print(f"sink down for a {len(burst):,}-event burst: state {o['state']}, lag {o['lag']:,}, "
          f"peak buffered {o['peak']:,} events (bound 10,000), not buffered {o['dropped']:,}, "
          f"RSS +{o['rss_delta'] / 2**20:.1f} MiB, offer {o['offer_us']:.0f} us per "
          f"{args.chunk}-event batch")
    print(f"sink back: caught up {len(burst):,} events in {o['catch_up']:.2f} s "
          f"({o['from_memory']:,} from memory), every event exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
