"""Lean answers and the export at 100,000 events, against the real daemon (issue 12).

    python bench/bench_lean.py [--events 100000] [--requests 500]

Generates the log of `bench/bench_daemon.py` (`coordd.synth.gen`, seed 7, a week ending now),
starts the real daemon as a subprocess on it (temporary HOME, 127.0.0.1, port 0) and
measures, with bench_daemon's keep-alive client (request sent to last byte received):
- the size of a default page of `/api/work-sessions` (100 sessions) and of Task-Hub's
  status page, full and `view=summary`, and their ratio (target: summary ≥ 10× smaller);
- p50/p99 of those pages and of `/api/work-sessions/search?view=summary` (target: the
  summary page's p99 ≤ 5 ms);
- the export of every event, NDJSON then CSV, read as fast as the client can: events per
  second, and the daemon's RSS before, at its highest while exporting (sampled every
  20 ms) and after (the target: RSS does not grow with the export's size);
- every answer's status and shape is checked (the summary page has the full page's
  sessions; the export has every event).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_daemon import RawClient, percentile, rss_mib, start  # noqa: E402

from coordd.synth.gen import AGENTS, write_log  # noqa: E402

PAGES = {"default page": "/api/work-sessions",
         "status page": "/api/work-sessions?status=ACTIVE,QUIET&limit=20"}


def lean(path: str) -> str:
    return path + ("&" if "?" in path else "?") + "view=summary"


def export(port: int, pid: int, fmt: str) -> tuple[int, int, float, float, float, float]:
    """(events, bytes, seconds, RSS before, peak RSS during, RSS after) of one export."""
    before = rss_mib(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, rss_mib(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("GET", f"/api/export?format={fmt}")
    resp = conn.getresponse()
    if resp.status != 200 or resp.getheader("content-length") is not None:
        raise SystemExit(f"export {fmt}: {resp.status} {resp.getheaders()}")
    size = lines = 0
    last = b""
    while chunk := resp.read(1 << 16):
        size += len(chunk)
        lines += chunk.count(b"\n")
        last = chunk
    elapsed = time.perf_counter() - t0
    conn.close()
    done.set()
    sampler.join()
    if not last.endswith(b"\n"):
        raise SystemExit(f"export {fmt}: the body does not end a line")
    # CSV: a header row (and a message with line breaks spans lines: count rows by seq).
    return lines, size, elapsed, before, peak, rss_mib(pid)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary HOME")
    a = ap.parse_args()
    print(f"command: python bench/bench_lean.py --events {a.events} --requests {a.requests}")
    home = Path(tempfile.mkdtemp(prefix="coordd-bench-lean-"))
    logs = home / ".openclaw" / "logs"
    logs.mkdir(parents=True)
    (home / ".openclaw" / "openclaw.json").write_text(
        json.dumps({"agents": {"list": [{"id": x} for x in AGENTS]}}))
    now = int(time.time() * 1000)
    size = write_log(logs / "coordination-events.ndjson", a.events, seed=7,
                     start_ms=now - 7 * 86_400_000, end_ms=now)
    print(f"log: {a.events} events, {size / 1e6:.1f} MB; machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    proc, port, cold = start(home)
    failed = False
    try:
        time.sleep(a.settle)
        conn = RawClient(port)

        def fetch(path: str) -> bytes:
            nonlocal conn
            try:
                status, body = conn.get(path)
            except ConnectionError:  # the server ends a keep-alive connection now and then
                conn.close()
                conn = RawClient(port)
                status, body = conn.get(path)
            if status != 200:
                raise SystemExit(f"{path}: {status} {bytes(body[:200])!r}")
            return bytes(body)

        held = json.loads(fetch("/api/events?limit=1"))["total"]
        print(f"daemon: cold start {cold:.2f} s, {held} events held")
        print("\nsizes (bytes):")
        for name, path in PAGES.items():
            full, summary = json.loads(fetch(path)), json.loads(fetch(lean(path)))
            nfull, nlean = len(fetch(path)), len(fetch(lean(path)))
            if [s["id"] for s in full["sessions"]] != [s["id"] for s in summary["sessions"]]:
                raise SystemExit(f"{name}: the summary has other sessions")
            ratio = nfull / max(1, nlean)
            ok = ratio >= 10
            failed |= not ok
            print(f"  {name:13} {len(full['sessions']):3} sessions: full {nfull:>9,}  "
                  f"summary {nlean:>7,}  ratio {ratio:5.1f}x  (target >= 10x) "
                  f"{'ok' if ok else 'MISSED'}")
        agent = json.loads(fetch("/api/work-sessions?limit=1"))["sessions"][0]["threads"][0][
            "fromAgent"]
        print(f"\nlatency over {a.requests} sequential requests (ms):")
        shapes = {f"{name} full": path for name, path in PAGES.items()}
        shapes.update({f"{name} summary": lean(path) for name, path in PAGES.items()})
        shapes["search summary"] = f"/api/work-sessions/search?q={agent}&view=summary"
        for name, path in shapes.items():
            conn.close()
            conn = RawClient(port)
            fetch(path)
            samples = []
            for _ in range(a.requests):
                t0 = time.perf_counter()
                fetch(path)
                samples.append((time.perf_counter() - t0) * 1000)
            p99 = percentile(samples, 99)
            target = " (target <= 5 ms)" if name == "default page summary" else ""
            if target:
                failed |= p99 > 5
            print(f"  {name:22} p50 {percentile(samples, 50):6.2f}  p99 {p99:6.2f}{target}")
        conn.close()
        print(f"\nexport of {held} events (sequential, one client):")
        for fmt in ("ndjson", "csv", "ndjson"):
            lines, nbytes, secs, before, peak, after = export(port, proc.pid, fmt)
            rows = lines - (fmt == "csv")
            if fmt == "ndjson" and rows != held:
                raise SystemExit(f"export ndjson: {rows} lines for {held} events")
            print(f"  {fmt:6} {nbytes / 1e6:7.1f} MB in {secs:5.2f} s: "
                  f"{held / secs:9,.0f} events/s, {nbytes / 1e6 / secs:6.1f} MB/s; "
                  f"RSS {before:.0f} -> peak {peak:.0f} -> {after:.0f} MiB")
    finally:
        proc.terminate()
        proc.wait(30)
        if a.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
