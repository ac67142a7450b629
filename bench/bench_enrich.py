"""Benchmark of the enrichment stage (spec §3) on a realistic generated log.

1. Throughput of `Enricher.enrich` with only the built-in keyword classifier (loaded
   through its entry point, as in production), on the events of `coordd.gen` (default
   100,000), parsed in batches the way the pipeline does it: each batch is parsed with
   orjson first (so the dicts are as warm in the CPU caches as in the daemon), then
   enriched; only the enrichment is timed. Target: >= 100,000 events/s on one core.
2. The same with one no-op third-party classifier installed in front of the built-in
   (it declines every event): its cost per event is the difference.

Times are CPU seconds of this process (`time.process_time`: one core), best of
`--repeat` runs, keyword caches emptied before each run; the two configurations are
interleaved so that a change in machine load hits both. The orjson parse rate of the
same lines is printed as a yardstick of the machine's speed: the architecture notes
measured 100k lines in 0.17 s (~590,000 lines/s) on our reference machines, so a much
lower figure here means a slower or busier machine, and the enrichment figure scales
with it.

Run from the repository root:

    python bench/bench_enrich.py                 # 100,000 events, 5 runs, ~1 minute
    python bench/bench_enrich.py --events 20000 --repeat 3   # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordd import hookimpl
from coordd.default_plugins import keywords
from coordd.enrich import Enricher
from coordd.gen import lines
from coordd.gen_text import MAIN_AGENTS
from coordd.mainagents import DEFAULT_MAIN_AGENTS
from coordd.plugins import PluginHost

REFERENCE_PARSE_RATE = 100_000 / 0.17  # architecture.md, "Performance facts"


class NoOpClassifier:
    """A third-party classifier that looks at nothing and declines every event."""

    @hookimpl
    def coordd_classify_event(self, event: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        return None


def make_enricher(extra: list[Any]) -> Enricher:
    host = PluginHost(allow=["keywords"], extra=extra)
    host.start()
    mains = frozenset(DEFAULT_MAIN_AGENTS | {a.lower() for a in MAIN_AGENTS})
    return Enricher(host, lambda: mains)


def run(raw: list[bytes], batch: int, enrich: Callable[[Any], Any]) -> tuple[float, float]:
    """`(parse CPU seconds, enrich CPU seconds)` over all lines, batch by batch."""
    keywords.clear_caches()
    clock = time.process_time
    parse_s = enrich_s = 0.0
    for start in range(0, len(raw), batch):
        t0 = clock()
        values = [orjson.loads(line) for line in raw[start:start + batch]]
        t1 = clock()
        for value in values:
            enrich(value)
        t2 = clock()
        parse_s += t1 - t0
        enrich_s += t2 - t1
    return parse_s, enrich_s


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    cmd = "python bench/bench_enrich.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items())
    print(f"command: {cmd}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    raw = list(lines(args.events, seed=args.seed))
    print(f"log: {len(raw):,} events from coordd.gen (seed {args.seed}), "
          f"{sum(map(len, raw)) / len(raw):.0f} bytes per line on average")

    builtin = make_enricher([])
    noop = make_enricher([("noop", NoOpClassifier())])
    parse_runs, builtin_runs, noop_runs = [], [], []
    for _ in range(args.repeat):
        p, e = run(raw, args.batch, builtin.enrich)
        parse_runs.append(p)
        builtin_runs.append(e)
        _, e = run(raw, args.batch, noop.enrich)
        noop_runs.append(e)
    assert sum(builtin.rejected.values()) == sum(noop.rejected.values()) == 0

    n = len(raw)
    parse_rate = n / min(parse_runs)
    builtin_rate = n / min(builtin_runs)
    noop_rate = n / min(noop_runs)
    per_event_us = (min(noop_runs) - min(builtin_runs)) / n * 1e6
    print(f"\nbest of {args.repeat} runs, CPU time of one process (median in brackets):")
    print(f"  orjson parse (yardstick):         {parse_rate:>10,.0f} lines/s   "
          f"[{n / statistics.median(parse_runs):,.0f}]  "
          f"= {parse_rate / REFERENCE_PARSE_RATE:.2f} x the reference machine")
    print(f"  enrich, built-in classifier only: {builtin_rate:>10,.0f} events/s  "
          f"[{n / statistics.median(builtin_runs):,.0f}]  "
          f"{1e6 / builtin_rate:.2f} us/event")
    print(f"  enrich + one no-op plugin:        {noop_rate:>10,.0f} events/s  "
          f"[{n / statistics.median(noop_runs):,.0f}]  "
          f"{1e6 / noop_rate:.2f} us/event")
    print(f"  cost of the no-op plugin:         {per_event_us:>10.2f} us/event")
    scaled = builtin_rate / (parse_rate / REFERENCE_PARSE_RATE)
    verdict = "meets" if builtin_rate >= 100_000 else "misses"
    print(f"\nbuilt-in throughput {verdict} the 100,000 events/s target on this machine; "
          f"scaled to the reference machine's parse speed: ~{scaled:,.0f} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
