"""Benchmark of live push: log append → WebSocket frame, through the real daemon.

The daemon runs as a subprocess (`python -m coordd run`) on a temporary log pre-filled with
`--history` realistic events from `coordd.synth.gen` (default 100,000). WebSocket clients run in
`--procs` separate worker processes, so that the clients' own parsing does not share a
process with the writer. `--client trio-websocket` (the default) is the client `coordd
watch` uses; `--client raw` is a minimal RFC 6455 client on plain sockets that costs a
tenth of the CPU per frame: on a small machine, 100 trio-websocket clients mostly measure
their own parsing backlog.

1. Latency, for each client count in `--clients` (default 1 and 100): the writer appends
   `--samples` events one at a time, `--gap` ms apart with one client and `--gap-many` ms
   with more (default 10 and 50 ms: each event is two frames per client, and at 100
   clients a shorter gap measures the clients' own parsing backlog, not the push; phase 2
   is the throughput test); each line carries CLOCK_MONOTONIC
   taken just before its write(), and each client compares it with the time its frame
   arrived. p50/p99/max over every (event, client) pair. Targets: p50 ≤ 5 ms and
   p99 ≤ 20 ms with one client; p99 ≤ 50 ms with 100 clients.
2. Sustained ingest: with `--ingest-clients` clients connected, the writer appends
   `--ingest` realistic events at `--rate` per second (default 20,000/s, in a write every
   5 ms), then an end marker. Reported: the rate actually written, the rate at which every
   client received them (first write → marker received), the lag of the marker, and per
   client whether it received exactly every seq from its `connected` seq to the marker
   (nothing lost, nothing twice, no 1013). Target: ≥ 20,000 events/s with nothing lost.

Run from the repository root:

    python bench/bench_ws.py                         # full run, a few minutes
    python bench/bench_ws.py --client raw            # the same with the light client
    python bench/bench_ws.py --history 10000 --samples 200 --ingest 20000   # quicker

The figures are wall-clock times on a shared machine: compare medians across runs on one
machine. The daemon's CPU time and resident memory are printed for context.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
READY_RE = re.compile(r"coordd ready on (http://[^\s,]+)")
MAX_MESSAGE = 64 << 20


# ---------------------------------------------------------------------------- worker side


class Tracker:
    """One logical client's view of the stream, across reconnects: every seq must come
    exactly once, in order, from its first `connected` seq to the end marker."""

    def __init__(self, end_id: str, lat_ns: list[int]) -> None:
        from coordd.core.jsvalues import loads

        self.loads = loads
        self.end_id = end_id
        self.lat_ns = lat_ns
        self.last: int | None = None
        self.epoch: str | None = None
        self.rec: dict[str, Any] = {"connected_seq": None, "first": None, "last": None,
                                    "count": 0, "gaps": 0, "dups": 0, "closed": None,
                                    "drops": 0, "resyncs": 0, "end_ns": None}

    def url(self, base: str) -> str:
        if self.last is None or self.epoch is None:
            return base
        return f"{base}?since={self.last}&epoch={self.epoch}"

    def feed(self, text: str | bytes, now: int) -> bool:
        """Apply one message; False once the end marker arrived."""
        marker = '"coordination_event_new"'
        head = text[:40]
        is_events = (marker.encode() in head) if isinstance(head, bytes) else (marker in head)
        if not is_events:
            msg = self.loads(text)
            if msg.get("type") == "connected" and self.last is None:
                self.last = self.rec["connected_seq"] = msg["data"]["seq"]
                self.epoch = msg["epoch"]
            elif msg.get("type") == "resync_required":
                self.rec["resyncs"] += 1
                self.last, self.epoch = msg["data"]["seq"], msg["data"]["epoch"]
            return True
        rec = self.rec
        for ev in self.loads(text)["data"]["events"]:
            seq = ev["seq"]
            assert self.last is not None
            if seq <= self.last:
                rec["dups"] += 1
                continue
            if seq != self.last + 1:
                rec["gaps"] += 1
            self.last = seq
            rec["count"] += 1
            rec["first"] = rec["first"] or seq
            rec["last"] = seq
            data = ev.get("data") or {}
            sent = data.get("benchT")
            if sent is not None:
                self.lat_ns.append(now - sent)
            if data.get("benchId") == self.end_id:
                rec["end_ns"] = now
                return False
        return True

    def closed(self, code: int | None, reason: str) -> bool:
        """After a close: True to reconnect (1013 too slow, 1001 going away)."""
        if code in (1013, 1001):
            self.rec["drops"] += 1
            return True
        self.rec["closed"] = f"{code} {reason}"
        return False


def worker(url: str, clients: int, end_id: str) -> None:
    """Connect `clients` trio-websocket clients, print "ready", collect until the `end_id`
    marker (reconnecting with since/epoch like `coordd watch` when dropped), print one
    JSON line with the figures."""
    import trio
    import trio_websocket

    lat_ns: list[int] = []
    trackers = [Tracker(end_id, lat_ns) for _ in range(clients)]

    async def one(tr: Tracker, ready: Any) -> None:
        while True:
            try:
                async with trio_websocket.open_websocket_url(
                    tr.url(url), max_message_size=MAX_MESSAGE, receive_buffer_size=None
                ) as ws:
                    first = tr.last is None
                    tr.feed(await ws.get_message(), time.monotonic_ns())
                    if first:
                        ready()
                    while tr.feed(await ws.get_message(), time.monotonic_ns()):
                        pass
                    return
            except trio_websocket.ConnectionClosed as e:
                r = e.reason
                if not tr.closed(r.code if r else None, (r.reason or "") if r else ""):
                    return

    async def main() -> None:
        pending = [clients]

        def ready() -> None:
            pending[0] -= 1
            if pending[0] == 0:
                print("ready", flush=True)

        async with trio.open_nursery() as nursery:
            for tr in trackers:
                nursery.start_soon(one, tr, ready)
        print(json.dumps({"lat_ns": lat_ns, "clients": [t.rec for t in trackers]}),
              flush=True)

    trio.run(main)


def raw_worker(url: str, clients: int, end_id: str) -> None:
    """The same as `worker` with a minimal RFC 6455 client on plain sockets and one
    selector loop: a tenth of trio-websocket's CPU per frame, so that 100 clients on a
    small machine measure the daemon rather than the clients' own backlog."""
    import base64
    import selectors
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sel = selectors.DefaultSelector()
    lat_ns: list[int] = []
    trackers = [Tracker(end_id, lat_ns) for _ in range(clients)]
    state: dict[socket.socket, tuple[Tracker, bytearray]] = {}

    def connect(tr: Tracker) -> None:
        target = urlsplit(tr.url(url))
        path = target.path + ("?" + target.query if target.query else "")
        sock = socket.create_connection((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                     .encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, rest = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"handshake refused: {head[:80]!r}")
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        state[sock] = (tr, bytearray(rest))

    def frames(buf: bytearray) -> list[tuple[int, bytes]]:
        out = []
        pos = 0
        while len(buf) - pos >= 2:
            op, n, off = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, off = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, off = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if len(buf) - pos < off + n:
                break
            out.append((op, bytes(buf[pos + off:pos + off + n])))
            pos += off + n
        del buf[:pos]
        return out

    def handle(sock: socket.socket, tr: Tracker, buf: bytearray, now: int) -> str:
        """"more", "done" or "reconnect"."""
        for op, payload in frames(buf):
            if op == 9:  # ping: answer with a masked, empty pong
                sock.sendall(b"\x8a\x80\x00\x00\x00\x00")
            elif op == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                again = tr.closed(code, payload[2:].decode("utf-8", "replace"))
                return "reconnect" if again else "done"
            elif op == 1 and not tr.feed(payload, now):
                return "done"
        return "more"

    for tr in trackers:
        connect(tr)
    ready = False
    while state:
        if not ready and all(t.last is not None for t in trackers):
            print("ready", flush=True)
            ready = True
        for sk, _ in sel.select(timeout=1.0):
            conn = sk.fileobj
            assert isinstance(conn, socket.socket)
            tr, buf = state[conn]
            try:
                data = conn.recv(1 << 20)
            except BlockingIOError:
                continue
            now = time.monotonic_ns()
            buf += data
            outcome = handle(conn, tr, buf, now) if data else "done"
            if outcome != "more":
                sel.unregister(conn)
                conn.close()
                del state[conn]
                if outcome == "reconnect":
                    connect(tr)
    print(json.dumps({"lat_ns": lat_ns, "clients": [t.rec for t in trackers]}), flush=True)


# ---------------------------------------------------------------------------- bench side


class Daemon:
    def __init__(self, home: Path, config: str | None = None) -> None:
        self.home = home
        self.config = config
        self.log = home / ".openclaw" / "logs" / "coordination-events.ndjson"
        self.url = ""
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> float:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TASK_MONITOR_", "MONGODB_", "NOTIFY_SOCKET", "COORDD_"))}
        # The built-in classifier only, as bench_daemon.py: an example plugin installed in the
        # same environment (plugins/coordd-rules) would otherwise be measured too.
        env.update({"HOME": str(self.home), "PYTHONPATH": str(ROOT), "COORDD_PLUGINS": "keywords"})
        cmd = [sys.executable, "-m", "coordd", "run", "--host", "127.0.0.1", "--port", "0",
               "--log", str(self.log), "--state-dir", str(self.home / "state")]
        if self.config:
            cmd += ["--config", str(Path(self.config).resolve())]
        ready = threading.Event()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace")

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                m = READY_RE.search(line)
                if m:
                    self.url = m.group(1)
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120):
            self.stop()
            raise SystemExit("daemon did not start:\n" + "\n".join(self.lines[-30:]))
        return time.perf_counter() - t0

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def usage(self) -> str:
        assert self.proc is not None
        pid = self.proc.pid
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return "daemon usage unavailable"
        return f"daemon: RSS {rss:.0f} MiB, CPU {cpu:.1f} s so far"

    def ws_messages(self) -> int:
        """`coordd_ws_messages` from /metrics (0 if unavailable)."""
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError:
            return 0
        m = re.search(r"^coordd_ws_messages(?:_total)?\s+([0-9.e+]+)", text, re.M)
        return int(float(m.group(1))) if m else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Workers:
    """`total` clients spread over `procs` worker processes."""

    def __init__(self, url: str, total: int, procs: int, end_id: str, kind: str) -> None:
        procs = max(1, min(procs, total))
        sizes = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
        self.procs = [
            subprocess.Popen([sys.executable, __file__, "--worker", kind, url, str(n), end_id],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for n in sizes
        ]
        for p in self.procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("a worker did not connect its clients")

    def results(self, timeout: float) -> tuple[list[int], list[dict[str, Any]]]:
        lat: list[int] = []
        clients: list[dict[str, Any]] = []
        for p in self.procs:
            try:
                out, _ = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            for line in out.splitlines():
                if line.startswith("{"):
                    data = json.loads(line)
                    lat.extend(data["lat_ns"])
                    clients.extend(data["clients"])
        return lat, clients


def bench_line(i: int | str, extra: dict[str, Any] | None = None) -> bytes:
    data: dict[str, Any] = {
        "fromAgent": "ruda", "toAgent": "eden", "conversationId": "bench-conv",
        "workSessionId": "ws_bench", "message": "배포 전 회귀 테스트 결과를 검토해 주세요",
        "benchId": i, "benchT": time.monotonic_ns(),
    }
    data.update(extra or {})
    event = {"type": "a2a.send", "agentId": "ruda", "ts": int(time.time() * 1000), "data": data}
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def lost_summary(clients: list[dict[str, Any]], expected_last: int | None = None) -> str:
    bad = [c for c in clients
           if c["closed"] or c["gaps"] or c["dups"] or c["resyncs"] or c["end_ns"] is None
           or c["first"] != c["connected_seq"] + 1
           or (expected_last is not None and c["last"] != expected_last)]
    if not clients:
        return "NO RESULTS from the clients"
    drops = sum(c["drops"] for c in clients)
    resumed = f" ({drops} drop(s) for being slow, all resumed from the ring)" if drops else ""
    if bad:
        return f"{len(bad)} client(s) LOST events: {bad[:3]}"
    return "nothing lost on any client" + resumed


def latency_phase(daemon: Daemon, fd: int, clients: int, procs: int, samples: int,
                  gap: float, kind: str) -> None:
    workers = Workers(daemon.ws_url, clients, procs, "lat-end", kind)
    time.sleep(0.2)
    sent_before = daemon.ws_messages()
    for i in range(samples):
        os.write(fd, bench_line(i))
        time.sleep(gap)
    os.write(fd, bench_line("lat-end"))
    lat, per_client = workers.results(timeout=60)
    frames = (daemon.ws_messages() - sent_before) / clients / (samples + 1)
    ms = [v / 1e6 for v in lat]
    print(f"  {clients:>3} client(s), {procs} worker process(es), one event every "
          f"{gap * 1000:g} ms: {len(ms)} samples, "
          f"p50 {pct(ms, 0.5):.2f} ms, p99 {pct(ms, 0.99):.2f} ms, max {max(ms):.2f} ms; "
          f"{frames:.2f} frames per event per client; {lost_summary(per_client)}")


def ingest_phase(daemon: Daemon, fd: int, clients: int, procs: int, n: int,
                 rate: float, kind: str) -> None:
    from coordd.synth.gen import lines

    payload = list(lines(n, seed=7))
    workers = Workers(daemon.ws_url, clients, procs, "ingest-end", kind)
    time.sleep(0.2)
    tick = 0.005
    per_tick = max(1, int(rate * tick))
    t0_ns = time.monotonic_ns()
    t0 = time.perf_counter()
    for k, start in enumerate(range(0, n, per_tick)):
        os.write(fd, b"".join(payload[start:start + per_tick]))
        delay = t0 + (k + 1) * tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    written = time.perf_counter() - t0
    end_written_ns = time.monotonic_ns()
    os.write(fd, bench_line("ingest-end"))
    _, per_client = workers.results(timeout=120)
    ends = [c["end_ns"] for c in per_client if c["end_ns"] is not None]
    print(f"  wrote {n} events in {written:.2f} s = {n / written:,.0f} events/s")
    if len(ends) == len(per_client) and ends:
        last = max(ends)
        recv_rate = n / ((last - t0_ns) / 1e9)
        print(f"  {clients} client(s) received them all at {recv_rate:,.0f} events/s "
              f"(first write → end marker on the slowest client); marker lag "
              f"{(last - end_written_ns) / 1e6:.1f} ms")
    counts = sorted({c["count"] for c in per_client})
    print(f"  events per client: {counts}; {lost_summary(per_client)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--history", type=int, default=100_000, help="events in the log at start")
    p.add_argument("--samples", type=int, default=500, help="latency samples per run")
    p.add_argument("--gap", type=float, default=10.0,
                   help="ms between latency samples with one client")
    p.add_argument("--gap-many", type=float, default=50.0,
                   help="ms between latency samples with more than one client")
    p.add_argument("--clients", default="1,100", help="client counts for the latency runs")
    p.add_argument("--procs", type=int, default=2, help="worker processes for >1 client")
    p.add_argument("--ingest", type=int, default=100_000, help="events in the ingest run")
    p.add_argument("--rate", type=float, default=20_000.0, help="ingest events per second")
    p.add_argument("--ingest-clients", type=int, default=10)
    p.add_argument("--config", help="a coordd TOML file for the daemon (e.g. [websocket])")
    p.add_argument("--client", choices=["trio-websocket", "raw"], default="trio-websocket",
                   help="client implementation in the worker processes")
    args = p.parse_args(argv)

    from coordd.synth.gen import write_log

    print(f"bench_ws: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("command: python bench/bench_ws.py " + " ".join(argv or sys.argv[1:]))
    with tempfile.TemporaryDirectory(prefix="coordd-bench-ws-") as tmp:
        daemon = Daemon(Path(tmp), args.config)
        size = write_log(daemon.log, args.history, seed=3) if args.history else 0
        if not args.history:
            daemon.log.parent.mkdir(parents=True, exist_ok=True)
            daemon.log.touch()
        print(f"log: {args.history} events, {size / 1e6:.1f} MB")
        startup = daemon.start()
        print(f"daemon ready in {startup:.2f} s; {daemon.usage()}")
        fd = os.open(daemon.log, os.O_WRONLY | os.O_APPEND)
        try:
            print(f"1. append → push latency ({args.samples} events, one at a time):")
            for count in [int(c) for c in args.clients.split(",") if c.strip()]:
                gap = args.gap if count == 1 else args.gap_many
                latency_phase(daemon, fd, count, 1 if count == 1 else args.procs,
                              args.samples, gap / 1000, args.client)
            print(f"   {daemon.usage()}")
            print(f"2. sustained ingest ({args.ingest} events at {args.rate:,.0f}/s, "
                  f"{args.ingest_clients} clients):")
            ingest_phase(daemon, fd, args.ingest_clients, args.procs, args.ingest, args.rate,
                         args.client)
            print(f"   {daemon.usage()}")
        finally:
            os.close(fd)
            daemon.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        run = raw_worker if sys.argv[2] == "raw" else worker
        run(sys.argv[3], int(sys.argv[4]), sys.argv[5])
        sys.exit(0)
    sys.exit(main())
