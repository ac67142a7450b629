"""Benchmark of the synthetic log generator (`coordd.synth.gen`).

1. `generate(n)` (events as dicts) and `lines(n)` (serialised lines), default 100,000
   events. Target: well under 2 s each.
2. `write_log(path, N)` for a large log, default 1,000,000 lines, to a temporary file.
   Target: a few seconds.

Times are CPU seconds of this process (`time.process_time`: one core; the wall time is
printed too), best of `--repeat` runs. The orjson parse rate of the same lines is printed
as a yardstick of the machine's speed: the architecture notes measured 100k lines in
0.17 s on our reference machines, so a slower figure here means a slower or busier
machine, and the generator's figures scale with it.

Run from the repository root:

    python bench/bench_gen.py                        # 100k events, 1M-line file, ~1 minute
    python bench/bench_gen.py --big 0 --repeat 1     # quicker: skip the 1M-line file
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordd.synth.gen import generate, lines, write_log


def _best(repeat: int, work: Callable[[], object]) -> tuple[float, float]:
    cpu_best = wall_best = float("inf")
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        work()
        cpu_best = min(cpu_best, time.process_time() - cpu)
        wall_best = min(wall_best, time.perf_counter() - wall)
    return cpu_best, wall_best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="events for 1 (default 100k)")
    parser.add_argument("--big", type=int, default=1_000_000,
                        help="lines for write_log (default 1M; 0 skips)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"command: python bench/bench_gen.py --n {args.n} --big {args.big} "
          f"--repeat {args.repeat} --seed {args.seed}")

    sample = list(lines(args.n, seed=args.seed))
    size = sum(map(len, sample))
    cpu, _ = _best(args.repeat, lambda: [orjson.loads(line) for line in sample
                                         if b"\\ud" not in line])
    print(f"yardstick: orjson.loads of {args.n:,} lines in {cpu:.3f} s CPU "
          f"(reference machine: {0.17 * args.n / 100_000:.3f} s)")
    print(f"log shape: {size / args.n:.0f} bytes per line on average")

    cpu, wall = _best(args.repeat, lambda: sum(1 for _ in generate(args.n, seed=args.seed)))
    print(f"generate({args.n:,}): {cpu:.3f} s CPU, {wall:.3f} s wall, "
          f"{args.n / cpu:,.0f} events/s")
    cpu, wall = _best(args.repeat, lambda: sum(1 for _ in lines(args.n, seed=args.seed)))
    print(f"lines({args.n:,}):    {cpu:.3f} s CPU, {wall:.3f} s wall, "
          f"{args.n / cpu:,.0f} lines/s")

    if args.big:
        with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
            path = Path(tmp) / "coordination-events.ndjson"
            written = [0]

            def big() -> None:
                written[0] = write_log(path, args.big, seed=args.seed)

            cpu, wall = _best(1, big)
        print(f"write_log({args.big:,}): {cpu:.2f} s CPU, {wall:.2f} s wall, "
              f"{written[0] / 1e6:.0f} MB, {args.big / cpu:,.0f} lines/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
