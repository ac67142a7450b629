"""The daemon end to end at 100,000 events: cold start, REST latency per route, RSS.

    python bench/bench_daemon.py [--events 100000] [--requests 500]

Generates a realistic log with `coordd.synth.gen`, starts the real daemon as a subprocess on it
(temporary HOME, 127.0.0.1, port 0), and measures
- cold start: spawn until the first `/api/work-sessions` answers (target ≤ 1.25 s);
- p50/p99 of each route over sequential keep-alive requests (targets: ≤ 10 ms for
  `/api/work-sessions` and Task-Hub's default view, ≤ 5 ms for status/category pages of 20
  and `/api/events`, ≤ 3 ms for the detail route), checking every answer's status and shape;
  from request sent to last byte received, with a minimal HTTP/1.1 client on a plain socket
  that reads into one reused buffer (`--client http.client` for the standard library's,
  whose header parsing and per-response allocations — 2.8 MB pages for `/api/work-sessions`
  — add a few milliseconds of the client's own to every figure on a small machine);
- RSS of the daemon after the requests (target ≤ 200 MiB);
- a restart: SIGTERM (the daemon writes its snapshot), then spawn until the first
  `/api/work-sessions` answers again, with every session compared to before.
The old monitor on the same machine and log size: cold start 3.7 s; p99 41 ms for
/api/work-sessions, 338 ms for the default view, 15 ms for status=ACTIVE&limit=20, 22 ms for
/api/events, 2 ms for a detail; 322–450 MiB RSS.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coordd.synth.gen import AGENTS, write_log  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start(home: Path, *args: str) -> tuple[subprocess.Popen[str], int, float]:
    """The daemon on `home`'s log (more command-line `args`, e.g. `--config FILE`): the
    process, its port and the seconds until it answered."""
    env = {**os.environ, "HOME": str(home), "TZ": "UTC", "COORDD_PLUGINS": "keywords"}
    t0 = time.perf_counter()
    daemon_log = open(home / "daemon.log", "w")  # lives as long as the daemon
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordd", "--port", "0", "--state-dir", str(home / "state"),
         "--log-level", "WARNING", *args],
        env=env, stdout=daemon_log, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    # Ready is logged at INFO; with WARNING we find the port from /proc instead.
    port = 0
    while port == 0:
        if proc.poll() is not None:
            raise SystemExit("daemon exited:\n" + (home / "daemon.log").read_text())
        port = listening_port(proc.pid)
        if port == 0:
            time.sleep(0.005)
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/work-sessions")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return proc, port, time.perf_counter() - t0
        except OSError:
            time.sleep(0.005)


class RawClient:
    """HTTP/1.1 GETs on one keep-alive connection: the request in one `sendall`, the answer
    read with `recv_into` into a buffer kept across requests (the server always sends a
    Content-Length)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(4 << 20)
        self.view = memoryview(self.buf)

    def get(self, path: str) -> tuple[int, memoryview]:
        self.sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
        n = 0
        while (end := self.buf.find(b"\r\n\r\n", 0, n)) < 0:
            n += self._recv(n)
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        length = next(int(h.split(":", 1)[1]) for h in head[1:]
                      if h.lower().startswith("content-length:"))
        total = end + 4 + length
        if total > len(self.buf):  # a new buffer: views of the old one stay valid
            bigger = bytearray(2 * total)
            bigger[:n] = self.buf[:n]
            self.buf, self.view = bigger, memoryview(bigger)
        while n < total:
            n += self._recv(n)
        return status, self.view[end + 4:total]

    def _recv(self, n: int) -> int:
        got = self.sock.recv_into(self.view[n:])
        if not got:
            raise ConnectionError("the server closed the connection")
        return got

    def close(self) -> None:
        self.sock.close()


class StdClient:
    """The same over `http.client` (for comparison)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()


def listening_port(pid: int) -> int:
    """The TCP port the process listens on (from /proc/net/tcp and its fds)."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", target)
            if m:
                inodes.add(m.group(1))
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                    return int(parts[1].split(":")[1], 16)
    except OSError:
        pass
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--keep", action="store_true", help="keep the temporary HOME")
    ap.add_argument("--client", choices=["raw", "http.client"], default="raw")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds between the cold start and the latency runs (the daemon's "
                         "first garbage-collector freeze and checkpoint happen in them)")
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="coordd-bench-"))
    logs = home / ".openclaw" / "logs"
    logs.mkdir(parents=True)
    (home / ".openclaw" / "openclaw.json").write_text(
        json.dumps({"agents": {"list": [{"id": x} for x in AGENTS]}}))
    now = int(time.time() * 1000)
    # A week of history ending now: a realistic mix of ACTIVE, QUIET and ARCHIVED sessions.
    size = write_log(logs / "coordination-events.ndjson", a.events, seed=7,
                     start_ms=now - 7 * 86_400_000, end_ms=now)
    print(f"log: {a.events} events, {size / 1e6:.1f} MB; machine: {os.cpu_count()} cores")
    proc, port, cold = start(home)
    try:
        client_type = RawClient if a.client == "raw" else StdClient
        conn: RawClient | StdClient | None = None

        def fetch(path: str) -> bytes | memoryview:
            nonlocal conn
            if conn is None:
                conn = client_type(port)
            status, body = conn.get(path)
            if status != 200:
                raise SystemExit(f"{path}: {status} {bytes(body[:200])!r}")
            return body

        def get(path: str) -> dict:
            return json.loads(bytes(fetch(path)))

        sessions = get("/api/work-sessions?limit=100")["sessions"]
        busiest = max(sessions, key=lambda s: s["eventCount"])["workSessionId"]
        routes = {
            "/api/work-sessions": ("/api/work-sessions", 10.0, "sessions"),
            "Task-Hub default view": (
                "/api/work-sessions?role=conversation.main&type=a2a.response", 10.0, "sessions"),
            "status=ACTIVE&limit=20": ("/api/work-sessions?status=ACTIVE&limit=20", 5.0,
                                       "sessions"),
            "status=ARCHIVED&limit=20": ("/api/work-sessions?status=ARCHIVED&limit=20", 5.0,
                                         "sessions"),
            "viewCategory=infra_ops&limit=20": (
                "/api/work-sessions?viewCategory=infra_ops&limit=20", 5.0, "sessions"),
            "/api/events": ("/api/events", 5.0, "events"),
            "/api/events?role=conversation.main&type=a2a.response": (
                "/api/events?role=conversation.main&type=a2a.response", 5.0, "events"),
            "detail (busiest session)": (f"/api/work-sessions/{busiest}", 3.0, "session"),
        }
        print(f"cold start (spawn → first /api/work-sessions): {cold:.2f} s  (target ≤ 1.25 s)")
        time.sleep(a.settle)
        print(f"{'route':56} {'p50 ms':>8} {'p99 ms':>8} {'target':>8}  ok {'bytes':>10}")
        failed = False
        for label, (path, target, key) in routes.items():
            first_body = bytes(fetch(path))  # warms the per-filter view once, as a
            first = json.loads(first_body)   # long-running daemon would have it
            assert key in first
            times = []
            differing = []
            for _ in range(a.requests):
                t = time.perf_counter()
                body = fetch(path)
                times.append((time.perf_counter() - t) * 1000)
                # Every answer checked, outside the timing: byte for byte the first one
                # (a copy and a memcmp, ~0.5 ms for 2.8 MB; comparing the memoryview itself
                # goes element by element, ~10 ms), or (kept, parsed below) the same in
                # substance.
                got = bytes(body)
                if got != first_body:
                    differing.append(got)
            # The checks below can leave the connection idle beyond the server's keep-alive
            # timeout: the next route starts on a fresh one.
            assert conn is not None
            conn.close()
            conn = None
            for body in differing:  # parsing 3 MB costs the client ~50 ms
                assert json.loads(body)[key] == first[key]
            if differing:
                print(f"  ({len(differing)} of the answers differed from the first in bytes; "
                      "each was checked in substance)")
            p50, p99 = statistics.median(times), percentile(times, 99)
            ok = p99 <= target
            failed |= not ok
            print(f"{label:56} {p50:8.2f} {p99:8.2f} {target:8.1f}  {'yes' if ok else 'NO ':3} "
                  f"{len(first_body):>10,}")
        rss = rss_mib(proc.pid)
        print(f"RSS after the requests: {rss:.0f} MiB  (target ≤ 200 MiB)")
        # Restart: a clean stop writes the snapshot, the next start loads it.
        every = "/api/work-sessions?limit=100000"
        before = json.loads(bytes(client_type(port).get(every)[1]))["sessions"]
        t = time.perf_counter()
        proc.terminate()
        proc.wait(60)
        stop = time.perf_counter() - t
        proc, port, warm = start(home)
        same = json.loads(bytes(client_type(port).get(every)[1]))["sessions"] == before
        print(f"restart: stop (snapshot written) {stop:.2f} s, spawn → first "
              f"/api/work-sessions {warm:.2f} s; every session the same: {same}")
        print(f"reproduce: python bench/bench_daemon.py --events {a.events} "
              f"--requests {a.requests} --client {a.client} --settle {a.settle}")
        return 1 if failed or rss > 200 or cold > 1.25 else 0
    finally:
        proc.terminate()
        proc.wait(30)
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
