"""Benchmark of the MongoDB tier against a real server over a real connection.

Without `--uri` it builds FerretDB once (`scripts/ferretdb.sh`, needs Go) and starts it on a
free loopback port with a temporary SQLite directory; with `--uri` it uses that server (a
MongoDB replica set, say). Figures:

1. Sync throughput: `--events` generated, enriched events (100,000 by default) offered to the
   sync worker as the pipeline hands them on, until all are in the server, against the same run
   into the in-memory sink (the ratio is the cost of the server and the connection).
2. p99 from the server, with a daemon whose memory holds only the newest `--window` events
   (so the answers come from MongoDB): search (`q=` an agent name; on FerretDB the regex
   prefilter), a deep page (`/api/events` with a cursor far behind memory) and `/api/stats`
   over the whole range (memo off).
3. The capabilities the server reported, so the figures say which fallbacks ran.
4. Where each route's time goes: pymongo's command monitoring sums the round trips of each
   call (the server's work plus the wire: `find`, `getMore`, `aggregate`, `count`), the rest
   of the route's time is coordd's (building the query, decoding, rendering); the number of
   round trips per call, and the answer's `"fallbacks"`.

Run from the repository root:

    python bench/bench_mongo_real.py                     # FerretDB, 100,000 events
    python bench/bench_mongo_real.py --events 20000      # quicker
    python bench/bench_mongo_real.py --uri mongodb://127.0.0.1:27017/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel
from pymongo import monitoring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_mongo_sync as bms  # noqa: E402  (the event and store builders)

from coordd.core.event import Event  # noqa: E402
from coordd.core.params import encode_cursor  # noqa: E402
from coordd.core.store import Store  # noqa: E402
from coordd.mongo.queries import MongoQueries  # noqa: E402
from coordd.mongo.sink import PymongoSink  # noqa: E402
from coordd.mongo.sync import SyncSettings, SyncWorker  # noqa: E402


@contextlib.contextmanager
def ferretdb() -> Iterator[str]:
    """A FerretDB on a free loopback port for the duration; its URI."""
    binary = subprocess.run([str(ROOT / "scripts" / "ferretdb.sh")], check=True,
                            capture_output=True, text=True).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "data").mkdir()
        (Path(work) / "state").mkdir()
        proc = subprocess.Popen(
            [binary, "--handler=sqlite", f"--sqlite-url=file:{work}/data/",
             f"--listen-addr=127.0.0.1:{port}", "--telemetry=disable", "--debug-addr=-",
             f"--state-dir={work}/state", "--log-level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield f"mongodb://127.0.0.1:{port}/"
        finally:
            proc.terminate()
            proc.wait(10)


async def sync_seconds(sink: Any, store: Store, events: Sequence[Event],
                       sources: Sequence[Any], chunk: int = 500,
                       batch_size: int = 200) -> float:
    """Seconds from the first offer until every event is in `sink` (offers stay at most
    three chunks ahead of the worker, as the pipeline's do)."""
    for ev, src in zip(events, sources, strict=True):
        ev.source = src
    worker = SyncWorker(sink, bms.source(store), SyncSettings(batch_size=batch_size))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await trio.sleep(0.05)
        t0 = time.perf_counter()
        await bms.offer_all(worker, events, chunk)
        await worker.wait_synced(events[-1].seq)
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return elapsed


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RoundTrips(monitoring.CommandListener):
    """A pymongo `CommandListener`: the round trips (and their time) since `reset`."""

    def __init__(self) -> None:
        self.n = 0
        self.ms = 0.0
        self.names: dict[str, int] = {}
        self.ms_by_name: dict[str, float] = {}

    def reset(self) -> None:
        self.n, self.ms, self.names, self.ms_by_name = 0, 0.0, {}, {}

    def started(self, event: Any) -> None:
        pass

    def succeeded(self, event: Any) -> None:
        self.n += 1
        self.ms += event.duration_micros / 1000
        self.names[event.command_name] = self.names.get(event.command_name, 0) + 1
        self.ms_by_name[event.command_name] = (self.ms_by_name.get(event.command_name, 0.0)
                                               + event.duration_micros / 1000)

    failed = succeeded


class Timing:
    """Per call of one route: its time, the time of its round trips, how many."""

    def __init__(self) -> None:
        self.total: list[float] = []
        self.server: list[float] = []
        self.trips: list[int] = []
        self.names: dict[str, int] = {}
        self.fallbacks: set[str] = set()


async def latencies(mq: MongoQueries, route: str, params_of: Any, calls: int,
                    trips: RoundTrips) -> Timing:
    out = Timing()
    fn = getattr(mq, route)
    for i in range(calls):
        trips.reset()
        t = time.perf_counter()
        status, body = await fn(params_of(i), time.time() * 1000)
        out.total.append((time.perf_counter() - t) * 1000)
        out.server.append(trips.ms)
        out.trips.append(trips.n)
        for k, v in trips.names.items():
            out.names[k] = out.names.get(k, 0) + v
        assert status == 200, body[:200]
        assert b'"tier":"mongo"' in body, body[-200:]
        out.fallbacks.update(json.loads(body).get("fallbacks", ()))
    return out


async def main(args: argparse.Namespace, uri: str) -> None:
    uri_arg = f" --uri {args.uri}" if args.uri else ""
    print(f"command: python bench/bench_mongo_real.py --events {args.events} "
          f"--window {args.window} --calls {args.calls} --batch-size {args.batch_size}"
          + uri_arg)
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    events, sources = bms.build_events(args.events)
    store = bms.build_store(events)
    memory, _ = await bms.throughput(store, events, sources, 500, via_offer=True)
    import pymongo

    name = f"coordd_bench_{secrets.token_hex(3)}"
    trips = RoundTrips()
    client = pymongo.MongoClient(uri, appname="coordd-bench", timeoutMS=120_000,
                                 event_listeners=[trips])
    sink = PymongoSink(client, name)
    try:
        await trio.to_thread.run_sync(sink.ensure_schema)
        caps = sink.capabilities
        assert caps is not None
        print(f"server: {caps.describe()}")
        trips.reset()
        real = await sync_seconds(sink, store, events, sources, batch_size=args.batch_size)
        n = len(events)
        print(f"sync {n:,} events: in-memory sink {n / memory:,.0f} events/s; "
              f"server {n / real:,.0f} events/s (the server's rate is {memory / real:.5f} of the "
              "in-memory sink's)")
        print("  the sync's round trips: " + ", ".join(
            f"{name} {trips.names[name]}× {ms / 1000:.1f} s"
            for name, ms in sorted(trips.ms_by_name.items(), key=lambda kv: -kv[1])))
        window = Store(max_events=args.window, epoch=store.epoch)
        for i in range(0, n, 1000):
            window.extend(events[i:i + 1000])
        mq = MongoQueries(sink.db, lambda: window, stats_max_age=0.0, timeout=120.0,
                          capabilities=lambda: sink.capabilities)
        deep = [max(2, window.first_seq - 1 - 97 * i % (window.first_seq - 2))
                for i in range(args.calls)]
        agents = ["ruda", "main", "eden", "ops", "qa"]
        rows = [
            ("search events", "search_events", lambda i: [("q", agents[i % len(agents)])],
             50.0),
            ("deep page", "get_events",
             lambda i: [("cursor", encode_cursor(["e", store.epoch, deep[i]])),
                        ("limit", "100")], 20.0),
            ("stats", "get_stats", lambda i: [("since", str(i))], 100.0),
        ]
        print(f"queries ({args.calls} calls each, memory holds the newest {args.window:,}; "
              "server = the calls' round trips, coordd = the rest):")
        print(f"  {'route':<14}{'p50 ms':>9}{'p99 ms':>9}{'target':>8}      "
              f"{'server p50':>10}{'coordd p50':>11}  round trips per call")
        for label, route, params_of, target in rows:
            t = await latencies(mq, route, params_of, args.calls, trips)
            ok = "ok" if p(t.total, 0.99) <= target else "over"
            coordd = [a - b for a, b in zip(t.total, t.server, strict=True)]
            per = ", ".join(f"{k} {v / args.calls:g}" for k, v in sorted(t.names.items()))
            print(f"  {label:<14}{p(t.total, 0.5):>9.1f}{p(t.total, 0.99):>9.1f}{target:>8.0f}"
                  f"  {ok:<4}{p(t.server, 0.5):>10.1f}{p(coordd, 0.5):>11.1f}  {per}"
                  + (f"; fallbacks {sorted(t.fallbacks)}" if t.fallbacks else ""))
    finally:
        await trio.to_thread.run_sync(lambda: client.drop_database(name))
        client.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=1_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--uri", default="")
    ap.add_argument("--batch-size", type=int, default=200,
                    help="the sync worker's [mongo] batch_size (default 200)")
    a = ap.parse_args()
    if a.uri:
        trio.run(main, a, a.uri)
    else:
        with ferretdb() as u:
            trio.run(main, a, u)
