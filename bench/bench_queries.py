"""Benchmark of the store and the REST query layer at 100,000 events (issue 4's numbers).

1. Builds `--events` enriched events (default 100,000) from `coordd.synth.gen` — work sessions,
   every event type, Korean and English text — enriched by the real `Enricher` with the
   built-in classifier, plus `--live` more events that arrive later.
2. Ingest: `Store.extend` in batches of `--batch` (default 100) into an empty store, events
   per second (the `Event` records are built beforehand: that cost is the pipeline's and
   is printed separately); then the steady state, where every append also evicts.
3. Queries, in-process (no HTTP), `--calls` calls per shape, p50/p99/max in ms:
   * "quiet": the log does not change between calls (caches warm);
   * "live": before each call `--live-batch` new events are appended (evicting as many),
     so every view catches up and the touched sessions are re-serialised — the daemon's
     real situation while agents work.
   The targets (p99): /api/work-sessions and Task-Hub's default view <= 10 ms; status- or
   category-filtered pages of 20 and /api/events <= 5 ms; the detail route <= 3 ms.
4. Memory: resident set size of this process holding the 100k-event store (measured before
   the live events are built); the daemon's target is 200 MiB for everything.

Garbage collection: a full pass of Python's cyclic collector over a 100k-event store walks
~170k objects and takes hundreds of milliseconds, which would dominate every p99 here. The
figures are taken the way the daemon should run: `gc.freeze()` after the history is loaded
and again after every appended batch (`--freeze-every N`: every N events instead); it is
O(1), and the store holds no reference cycles, so frozen events are still freed by
reference counting when evicted. (Cyclic garbage that is alive at a freeze is only
reclaimed by an occasional `gc.unfreeze(); gc.collect(); gc.freeze()`, e.g. hourly.)
`--no-freeze` shows the difference; the cost of one unfrozen full pass is printed.

Every answer is checked for the right status; the figures are wall-clock times of one
process on a shared machine, so compare medians across runs, not single outliers.

Run from the repository root:

    python bench/bench_queries.py                      # 100,000 events, ~1-2 minutes
    python bench/bench_queries.py --events 20000 --calls 200   # quicker
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordd.core import queries
from coordd.core.enrich import Enricher
from coordd.core.event import Event
from coordd.core.jsvalues import loads
from coordd.core.overrides import Overrides
from coordd.core.sessions import UNFILTERED
from coordd.core.store import Store
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS
from coordd.synth.gen import generate
from coordd.synth.text import MAIN_AGENTS

P = list[tuple[str, str]]
TARGETS = {"work-sessions": 10.0, "task-hub": 10.0, "status page": 5.0,
           "category page": 5.0, "events": 5.0, "detail": 3.0}


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build_events(n: int, seed: int) -> Iterator[Event]:
    """The events of `coordd.synth.gen`, enriched as the daemon does, numbered from 1."""
    host = PluginHost(allow=["keywords"])
    host.start()
    mains = frozenset(DEFAULT_MAIN_AGENTS | {a.lower() for a in MAIN_AGENTS})
    enricher = Enricher(host, host.vocabulary(), lambda: mains)
    seq = 0
    for raw in generate(n, seed=seed):
        value = enricher.enrich(raw)
        if value is not None:
            seq += 1
            yield Event(seq, value)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    return (statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))], s[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--live", type=int, default=0,
                        help="live events to generate (default: as many as the run appends)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--live-batch", type=int, default=10)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--freeze-every", type=int, default=0,
                        help="gc.freeze() every N appended events (0: after every batch)")
    parser.add_argument("--no-freeze", action="store_true")
    args = parser.parse_args(argv)
    cmd = "python bench/bench_queries.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "no_freeze")
    cmd += " --no-freeze" if args.no_freeze else ""
    print(f"command: {cmd}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    gc.collect()
    base_rss = rss_mib()

    search_calls = max(5, args.calls // 50)
    if not args.live:  # enough for the steady-state ingest and every live call
        args.live = 10_000 + (12 * args.calls + 4 * search_calls) * args.live_batch
    source = build_events(args.events + args.live, args.seed)
    t0 = time.perf_counter()
    initial = list(islice(source, args.events))
    t_build = time.perf_counter() - t0
    print(f"log: {len(initial):,} events from coordd.synth.gen (seed {args.seed}), "
          f"{sum(len(e.json) for e in initial) / len(initial):.0f} bytes of JSON each; "
          f"generate+enrich+Event: {len(initial) / t_build:,.0f} events/s")

    # ---------------------------------------------------------------- ingest
    store = Store(max_events=args.events, overrides=Overrides(None))
    t0 = time.perf_counter()
    for i in range(0, len(initial), args.batch):
        store.extend(initial[i:i + args.batch])
    t_ingest = time.perf_counter() - t0
    del initial
    gc.collect()
    stats = store.statistics()
    print(f"\ningest (Store.extend, batches of {args.batch}):")
    print(f"  into an empty store:        {stats.events / t_ingest:>10,.0f} events/s "
          f"({t_ingest:.2f} s for {stats.events:,})")
    print(f"  store: {stats.events:,} events, {stats.sessions:,} work sessions, "
          f"{len(stats.by_type)} event types")
    print(f"  memory: RSS {rss_mib():.0f} MiB with the store alone (interpreter, plugins and "
          f"generator: {base_rss:.0f} MiB before loading)")
    t0 = time.process_time()
    gc.collect()
    print(f"  one full GC pass over it:   {(time.process_time() - t0) * 1000:>10.0f} ms CPU "
          f"(unfrozen)")
    if not args.no_freeze:
        gc.freeze()
    t0 = time.perf_counter()
    held = list(store.iter_events())
    one = Store(max_events=args.events)
    one.extend(held)
    t_one = time.perf_counter() - t0
    del one, held
    print(f"  one batch of {stats.events:,} (start-up): {t_one:.2f} s")
    t0 = time.perf_counter()
    later = list(islice(source, args.live))
    print(f"  {len(later):,} more events built for the live phases "
          f"({time.perf_counter() - t0:.0f} s)")
    steady = later[: min(len(later), 10_000)]
    t0 = time.perf_counter()
    for i in range(0, len(steady), args.batch):
        store.extend(steady[i:i + args.batch])
        if not args.no_freeze:
            gc.freeze()
    t_steady = time.perf_counter() - t0
    later = later[len(steady):]
    print(f"  full store (each evicts):   {len(steady) / t_steady:>10,.0f} events/s")

    # ---------------------------------------------------------------- queries
    clock = {"now": max(e.ts for e in store.iter_events()) + 60_000}
    target: dict[str, str] = {}
    sizes: dict[str, int] = {}

    def pick_targets() -> None:
        # Detail targets among the most recent third of the sessions, so that they are
        # still held while the live appends evict the oldest events.
        order = list(store.view(UNFILTERED).order)
        recent = sorted(order[: max(1, len(order) // 3)], key=lambda a: a.count)
        for key, agg in (("median", recent[len(recent) // 2]), ("biggest", recent[-1])):
            target[key] = agg.ws_id
            sizes[key] = agg.count

    pick_targets()
    shapes: list[tuple[str, Callable[[float], tuple[int, bytes]]]] = [
        ("work-sessions", lambda t: queries.get_work_sessions(store, [], t)),
        ("task-hub", lambda t: queries.get_work_sessions(
            store, [("role", "conversation.main"), ("type", "a2a.response")], t)),
        ("status page", lambda t: queries.get_work_sessions(
            store, [("status", "ACTIVE"), ("limit", "20")], t)),
        ("archived page", lambda t: queries.get_work_sessions(
            store, [("status", "ARCHIVED"), ("limit", "20")], t)),
        ("category page", lambda t: queries.get_work_sessions(
            store, [("viewCategory", "qa_validation"), ("limit", "20")], t)),
        ("subTag page", lambda t: queries.get_work_sessions(
            store, [("subTag", "deploy"), ("limit", "20")], t)),
        ("events", lambda t: queries.get_events(store, [], t)),
        ("events role", lambda t: queries.get_events(
            store, [("role", "conversation.main"), ("type", "a2a.response")], t)),
        ("events since", lambda t: queries.get_events(
            store, [("since", str(int(t - 3_600_000)))], t)),
        ("detail", lambda t: queries.get_work_session(store, target["median"], [], t)),
        ("detail biggest", lambda t: queries.get_work_session(
            store, target["biggest"], [], t)),
        ("detail role", lambda t: queries.get_work_session(
            store, target["median"], [("role", "delegation.subagent")], t)),
        ("stats", lambda t: queries.get_stats(store, [], t)),
        ("search events", lambda t: queries.search_events(store, [("q", "deploy")], t)),
    ]
    print(f"\nqueries ({args.calls} calls each, in-process; detail = a recent session of "
          f"{sizes['median']} events, biggest = {sizes['biggest']}); ms of wall time, and of "
          f"this thread's CPU time (cpu: excludes preemption by other processes):")
    print(f"  {'shape':<15} {'first':>6} {'quiet p50':>9} {'p99':>6} {'live p50':>9} "
          f"{'p99':>6} {'max':>6} {'cpu p99':>7} {'bytes':>10}  target p99 (live)")
    live_iter = iter(range(0, len(later), args.live_batch))
    appended = [0]

    def append_some() -> float:
        i = next(live_iter, None)
        if i is None:
            raise SystemExit("ran out of live events: pass a larger --live")
        batch = later[i:i + args.live_batch]
        store.extend(batch)
        appended[0] += len(batch)
        if not args.no_freeze and appended[0] >= args.freeze_every:
            appended[0] = 0
            gc.freeze()
        clock["now"] = max(clock["now"], max(e.ts for e in batch) + 60_000)
        return clock["now"]

    wall, cpu = time.perf_counter, time.thread_time
    for name, fn in shapes:
        calls = args.calls if not name.startswith(("search", "stats")) else search_calls
        pick_targets()
        now = clock["now"]
        t0 = wall()
        code, body = fn(now)  # builds the view / fills the caches
        first = (wall() - t0) * 1000
        assert code == 200, (name, body[:200])
        size = len(body)
        quiet: list[float] = []
        for _ in range(calls):
            t0 = wall()
            code, body = fn(now)
            quiet.append((wall() - t0) * 1000)
        live: list[float] = []
        live_cpu: list[float] = []
        for _ in range(calls):
            t = append_some()
            t0, c0 = wall(), cpu()
            code, body = fn(t)
            live.append((wall() - t0) * 1000)
            live_cpu.append((cpu() - c0) * 1000)
            assert code in (200, 404), (name, body[:200])
        q50, q99, _ = percentiles(quiet)
        l50, l99, lmax = percentiles(live)
        _, c99, _ = percentiles(live_cpu)
        goal = TARGETS.get(name)
        verdict = "" if goal is None else (
            f"<= {goal:g} ms: {'ok' if l99 <= goal else 'MISSED'}"
            + ("" if l99 <= goal else f" (cpu {'ok' if c99 <= goal else 'MISSED'})"))
        print(f"  {name:<15} {first:>6.1f} {q50:>9.2f} {q99:>6.2f} {l50:>9.2f} {l99:>6.2f} "
              f"{lmax:>6.2f} {c99:>7.2f} {size:>10,}  {verdict}")
    body = loads(queries.get_work_sessions(store, [], clock["now"])[1])
    assert body["totalSessions"] == len(store.view(UNFILTERED))
    st = store.statistics()
    print(f"\nafter the queries: blob cache {st.blob_cache_bytes / 2**20:.1f} MiB, "
          f"{st.views_cached} filtered views cached, {st.rebuilds} view rebuilds "
          f"(RSS now includes the {len(later):,} unused live events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
