"""Attention at 100,000 events, against the real daemon (issue 12).

    python bench/bench_attention.py [--events 100000] [--requests 500] [--pushes 200]

Generates the log of `bench/bench_daemon.py` (`coordd.synth.gen`, seed 7, a week ending now),
starts the real daemon on it with `[attention] reply_timeout = 1` (temporary HOME,
127.0.0.1, port 0) and measures:
- p50/p99 of `GET /api/attention` (open items, default limit), `?state=closed` and
  `?kind=failed` (target: p99 ≤ 5 ms), with bench_daemon's keep-alive client;
- event-driven push latency: a failing `a2a.response` is appended to the log (one write,
  flushed) and the `attention` open message it causes is awaited on `/ws`; latency =
  received − written (target: p99 ≤ 50 ms);
- clock-driven push latency: an `a2a.send` is appended and its `awaiting_reply` item opens
  when `reply_timeout` has passed; latency = received − (the send's ts + 1 s): how late
  the timer pushes after the boundary (target: p99 ≤ 50 ms);
- the time the daemon took to build the attention state from the history at start (its
  log line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_daemon import RawClient, percentile, start  # noqa: E402

from coordd.synth.gen import AGENTS, write_log  # noqa: E402

ROUTES = ("/api/attention", "/api/attention?state=closed", "/api/attention?kind=failed")


def now_ms() -> float:
    return time.time() * 1000


def line(kind: str, ws: str, ts: float, **data: object) -> bytes:
    doc = {"type": kind, "agentId": "ruda", "ts": int(ts), "data": {
        "workSessionId": ws, "fromAgent": "ruda", "toAgent": "grim",
        "conversationId": f"bench-{ws}", "message": f"bench {kind}", **data}}
    return json.dumps(doc).encode() + b"\n"


async def pushes(port: int, log: Path, n: int) -> tuple[list[float], list[float]]:
    """(event-driven latencies, clock-driven latencies) in ms."""
    event_lat: list[float] = []
    clock_lat: list[float] = []
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws?notices=1") as ws:
        await ws.get_message()

        async def opened(item_kind: str, ws_id: str) -> float:
            while True:
                msg = json.loads(await ws.get_message())
                if msg["type"] != "attention" or msg["data"]["op"] != "open":
                    continue
                item = msg["data"]["item"]
                if item["kind"] == item_kind and item["workSessionId"] == ws_id:
                    return now_ms()

        with log.open("ab", buffering=0) as f:
            for i in range(n):
                ws_id = f"bench_fail_{i}"
                written = now_ms()
                f.write(line("a2a.response", ws_id, written, outcome="failed"))
                with trio.fail_after(10):
                    event_lat.append(await opened("failed", ws_id) - written)
                await trio.sleep(0.01)
            for i in range(n):
                ws_id = f"bench_wait_{i}"
                ts = now_ms()
                f.write(line("a2a.send", ws_id, ts))
                with trio.fail_after(10):
                    clock_lat.append(await opened("awaiting_reply", ws_id) - (ts + 1000))
    return event_lat, clock_lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--pushes", type=int, default=200)
    a = ap.parse_args()
    print(f"command: python bench/bench_attention.py --events {a.events} "
          f"--requests {a.requests} --pushes {a.pushes}")
    home = Path(tempfile.mkdtemp(prefix="coordd-bench-attention-"))
    logs = home / ".openclaw" / "logs"
    logs.mkdir(parents=True)
    (home / ".openclaw" / "openclaw.json").write_text(
        json.dumps({"agents": {"list": [{"id": x} for x in AGENTS]}}))
    now = int(now_ms())
    log = logs / "coordination-events.ndjson"
    size = write_log(log, a.events, seed=7, start_ms=now - 7 * 86_400_000, end_ms=now)
    config = home / "coordd.toml"
    config.write_text("[attention]\nreply_timeout = 1.0\n[logging]\nlevel = \"INFO\"\n")
    print(f"log: {a.events} events, {size / 1e6:.1f} MB; machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    proc, port, cold = start(home, "--config", str(config), "--log-level", "INFO")
    failed = False
    try:
        conn = RawClient(port)
        first = json.loads(bytes(conn.get("/api/attention")[1]))
        print(f"daemon: ready in {cold:.2f} s; open items {first['open']}")
        built = re.search(r"attention: (\d+) events read.* in ([0-9.]+) s",
                          (home / "daemon.log").read_text())
        if built:
            print(f"attention state built from {built[1]} events in {built[2]} s at start")
        print("\n/api/attention (ms):")
        for path in ROUTES:
            times: list[float] = []
            for _ in range(a.requests):
                t0 = time.perf_counter()
                try:
                    status, _body = conn.get(path)
                except ConnectionError:
                    # hypercorn ends a keep-alive connection after 1,000 requests
                    conn.close()
                    conn = RawClient(port)
                    continue
                times.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    raise SystemExit(f"{path}: {status}")
            p99 = percentile(times, 99)
            failed |= p99 > 5
            print(f"  {path:32} p50 {percentile(times, 50):6.2f}  p99 {p99:6.2f}"
                  f"  {'ok' if p99 <= 5 else 'OVER 5 ms'}")
        conn.close()
        event_lat, clock_lat = trio.run(pushes, port, log, a.pushes)
        print("\npush latency to a /ws client (ms):")
        for name, lat in (("event-driven (failed outcome)", event_lat),
                          ("clock-driven (reply_timeout boundary)", clock_lat)):
            p99 = percentile(lat, 99)
            failed |= p99 > 50
            print(f"  {name:38} n={len(lat)} p50 {percentile(lat, 50):6.2f}  p99 {p99:6.2f}"
                  f"  max {max(lat):6.2f}  {'ok' if p99 <= 50 else 'OVER 50 ms'}")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
