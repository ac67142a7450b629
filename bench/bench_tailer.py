"""Benchmark of the tailer: cold-read throughput and append-to-handoff latency.

1. Cold read of a realistic log (default 1,000,000 lines of ~480 bytes), every line handed
   on through a memory channel (nothing parsed), against a plain
   `for line in open(path, "rb")` loop over the same file, in the same run, page cache warm,
   interleaved, best of --repeat. Target: the tailer at >= 50 % of the plain loop's speed.
   The tailer runs twice: with `history_limit` above the byte size (no bound can bind, so it
   just reads), and with `history_limit` = the line count (the bound must be proved by
   counting the newlines backwards first: a second pass over the bytes). A third figure is
   the cold start as configured by default: the newest 100,000 lines of the same log.
2. Append-to-handoff latency with inotify: a separate writer process appends one line at a
   time with small gaps; each line carries the writer's CLOCK_MONOTONIC time taken just
   before its write(), and the time it comes out of the tailer's channel is compared with
   it. Target: p50 ≤ 2 ms, p99 ≤ 10 ms.

Run from the repository root:

    python bench/bench_tailer.py                 # full run, under a minute
    python bench/bench_tailer.py --lines 100000 --samples 500   # quicker

Figures depend on the machine and its load: compare runs on one machine only.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from coordd.tail.tailer import LineBatch, Tailer

NAME = "coordination-events.ndjson"


# ---------------------------------------------------------------------------- the log


def _fallback_log(path: Path, n: int, seed: int) -> int:
    """~480-byte lines shaped like real coordination events (when coordd.synth.gen is absent)."""
    rng = random.Random(seed)
    agents = ["ruda", "eden", "seum", "dajim", "yunseul", "miri", "onsae", "ieum", "nuri"]
    words = ["배포", "검토", "테스트", "review", "deploy", "the", "metrics", "확인", "fix", "✅",
             "pipeline", "요청", "please", "check", "결과", "report"]
    total = 0
    with path.open("wb") as f:
        chunk: list[bytes] = []
        for i in range(n):
            a, b = rng.sample(agents, 2)
            msg = " ".join(rng.choice(words) for _ in range(rng.randint(20, 45)))
            line = (
                f'{{"type":"a2a.send","agentId":"{a}","ts":{1767240000000 + i * 997},'
                f'"data":{{"fromAgent":"{a}","toAgent":"{b}","message":"{msg}",'
                f'"conversationId":"{rng.getrandbits(128):032x}","eventRole":"conversation.main",'
                f'"workSessionId":"ws_{rng.getrandbits(96):024x}"}}}}\n'
            ).encode()
            chunk.append(line)
            if len(chunk) == 4096:
                total += f.write(b"".join(chunk))
                chunk.clear()
        total += f.write(b"".join(chunk))
    return total


def make_log(path: Path, n: int, seed: int) -> tuple[int, str]:
    try:
        from coordd.synth.gen import write_log
    except ImportError:
        return _fallback_log(path, n, seed), "built-in fallback generator"
    return write_log(path, n, seed=seed), "coordd.synth.gen.write_log"


# ---------------------------------------------------------------------------- 1. cold read


def plain_loop(path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    count = 0
    with open(path, "rb") as f:
        for _line in f:
            count += 1
    return count, time.perf_counter() - t0


def tailer_cold(path: Path, history_limit: int) -> tuple[int, float]:
    """Lines handed on up to caught_up, and the seconds from start to caught_up."""
    result: list[float | int] = []

    async def main() -> None:
        t0 = time.perf_counter()
        tailer = Tailer(path, watch="poll", history_limit=history_limit, read_rotated=False)
        send, recv = trio.open_memory_channel[LineBatch](4)  # as the pipeline wires it
        count = 0
        async with trio.open_nursery() as nursery:
            await nursery.start(tailer.run, send)
            async for batch in recv:
                count += len(batch.lines)
                if batch.caught_up:
                    break
            nursery.cancel_scope.cancel()
        result.extend([count, time.perf_counter() - t0])

    trio.run(main)
    return int(result[0]), float(result[1])


# ---------------------------------------------------------------------------- 2. latency

_WRITER = r"""
import os, sys, time, random
path, samples, gap_ms = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pad = "x" * 380
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
sys.stdin.readline()  # go
rng = random.Random(1)
for i in range(samples):
    t0 = time.monotonic_ns()
    os.write(fd, ('{"type":"a2a.send","agentId":"ruda","ts":%d,"data":{"i":%d,"t0":%d,'
                  '"message":"%s"}}\n' % (time.time_ns() // 1000000, i, t0, pad)).encode())
    time.sleep(gap_ms / 1000 * rng.uniform(0.5, 1.5))
os.close(fd)
"""


def latency(directory: Path, samples: int, gap_ms: float) -> list[float]:
    path = directory / NAME
    path.write_bytes(b"")
    lat: list[float] = []

    async def main() -> None:
        tailer = Tailer(path, watch="inotify")
        send, recv = trio.open_memory_channel[LineBatch](4)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-c", _WRITER, str(path), str(samples), str(gap_ms)],
            stdin=subprocess.PIPE)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(tailer.run, send)
                async for batch in recv:
                    if batch.caught_up:
                        break
                assert proc.stdin is not None
                await proc.stdin.send_all(b"go\n")
                got = 0
                with trio.fail_after(120):
                    async for batch in recv:
                        now = time.monotonic_ns()
                        for line in batch.lines:
                            t0 = int(line.split(b'"t0":', 1)[1].split(b",", 1)[0])
                            lat.append((now - t0) / 1e6)
                        got += len(batch.lines)
                        if got >= samples:
                            break
                assert tailer.statistics().mode == "inotify"
                nursery.cancel_scope.cancel()
        finally:
            with trio.fail_after(30):
                await proc.wait()

    trio.run(main)
    return lat


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines in the cold-read log")
    ap.add_argument("--samples", type=int, default=2000, help="latency samples")
    ap.add_argument("--gap-ms", type=float, default=2.0, help="mean gap between appends")
    ap.add_argument("--repeat", type=int, default=5, help="cold-read repetitions (best kept)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    cmd = "python bench/bench_tailer.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    print(f"command: {cmd}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, trio {trio.__version__}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine)")

    with tempfile.TemporaryDirectory(prefix="bench_tailer_") as tmp:
        log = Path(tmp) / NAME
        t0 = time.perf_counter()
        size, source = make_log(log, args.lines, args.seed)
        print(f"\nlog: {args.lines:,} lines, {size / 1e6:.1f} MB "
              f"({size / max(1, args.lines):.0f} B/line) from {source} "
              f"in {time.perf_counter() - t0:.1f} s")
        plain_loop(log)  # warm the page cache for both contenders

        # Three ways to read it all: the plain loop; the tailer with history_limit = the
        # number of lines (it must count lines backwards to prove they all fit, then reads
        # forward); the tailer with a limit above the byte size (no counting needed).
        runs: dict[str, list[float]] = {"plain": [], "counted": [], "uncounted": []}
        limits = {"counted": args.lines, "uncounted": 1 << 62}
        for _ in range(args.repeat):  # interleaved, so load changes hit all alike
            count, secs = plain_loop(log)
            assert count == args.lines, count
            runs["plain"].append(secs)
            for key, limit in limits.items():
                count, secs = tailer_cold(log, limit)
                assert count == args.lines, (key, count)
                runs[key].append(secs)
        rate = {k: args.lines / min(v) for k, v in runs.items()}
        print(f"\n1. cold read of all {args.lines:,} lines, best of {args.repeat} "
              "(every run, s: " + "; ".join(
                  f"{k} {' '.join(f'{x:.3f}' for x in v)}" for k, v in runs.items()) + ")")
        print(f"   plain `for line in open(path, 'rb')`:          {rate['plain']:>11,.0f} lines/s")
        for key, label in (("uncounted", "tailer, history_limit above the byte size"),
                           ("counted", "tailer, history_limit = line count")):
            ratio = rate[key] / rate["plain"]
            verdict = "meets" if ratio >= 0.5 else "MISSES"
            print(f"   {label + ':':<46} {rate[key]:>11,.0f} lines/s  ratio {ratio:.2f} "
                  f"({verdict} >= 0.50)")
        default = 100_000
        if args.lines > default:
            count, secs = tailer_cold(log, default)
            print(f"   default history_limit {default:,}: the newest {count:,} lines handed on "
                  f"in {secs:.3f} s (older lines skipped unread)")
        log.unlink()

        lat = latency(Path(tmp), args.samples + 50, args.gap_ms)[50:]  # 50 warm-up samples
        p50, p99 = pct(lat, 50), pct(lat, 99)
        ok = "meets" if p50 <= 2 and p99 <= 10 else "MISSES"
        print(f"\n2. append-to-handoff latency, inotify, {len(lat):,} samples "
              f"(writer process, ~{args.gap_ms:g} ms gaps, 50 warm-up samples dropped)")
        print(f"   p50 {p50:.3f} ms   p90 {pct(lat, 90):.3f} ms   p99 {p99:.3f} ms   "
              f"max {max(lat):.3f} ms   mean {statistics.fmean(lat):.3f} ms")
        print(f"   ({ok} the p50 <= 2 ms, p99 <= 10 ms target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
