"""Warm restart from a real MongoDB-compatible server vs cold start from the log, in one run.

Without `--uri` it builds FerretDB once (`scripts/ferretdb.sh`, needs Go) and starts it on a
free loopback port with a temporary SQLite directory (`bench_mongo_real.ferretdb`); with
`--uri` it uses that server, in a database of its own, dropped at the end.

On a generated log of `--events` lines (100,000 by default; `[store] max_events` holds them
all) the real daemon runs as a subprocess with `[mongo] uri`, and each start is timed from
spawn to the first `/api/work-sessions` answer:

1. cold start, MongoDB empty (from the log); then the sync worker writes everything (timed
   until `/api/health` says lag 0 at the last seq);
2. warm restart from MongoDB: SIGTERM, the shutdown snapshot removed (else it would be
   taken first), start; the daemon's log must say "loaded from MongoDB";
3. cold start from the log again, same files in the page cache (checkpoint and snapshot
   removed: nothing to resume from);

and after each, every work session is compared to the first start's (its events, threads,
times and category; not its status, which moves with the clock).

    python bench/bench_mongo_restart.py                     # FerretDB, 100,000 events
    python bench/bench_mongo_restart.py --events 20000      # quicker
    python bench/bench_mongo_restart.py --uri mongodb://127.0.0.1:27017/
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_mongo_real import ferretdb  # noqa: E402

from coordd.synth.gen import AGENTS, write_log  # noqa: E402

READY = re.compile(r"coordd ready on http://127\.0\.0\.1:(\d+)")
EVERY = "/api/work-sessions?limit=100000"


class Run:
    """One daemon process on `home`, its output in `home/daemon-<n>.log`."""

    def __init__(self, home: Path, config: Path, n: int) -> None:
        self.log = home / f"daemon-{n}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "COORDD_"))}
        env.update({"HOME": str(home), "TZ": "UTC", "COORDD_PLUGINS": "keywords"})
        out = open(self.log, "w")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coordd", "--port", "0", "--host", "127.0.0.1",
             "--state-dir", str(home / "state"), "--config", str(config)],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        out.close()
        self.port = self._port()
        while self.get("/api/work-sessions")[0] != 200:
            time.sleep(0.005)
        self.ready = time.perf_counter() - t0

    def _port(self) -> int:
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("daemon exited:\n" + self.log.read_text())
            m = READY.search(self.log.read_text())
            if m:
                return int(m.group(1))
            time.sleep(0.005)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            return resp.status, body
        except OSError:
            return 0, b""

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)


def sessions(run: Run) -> list[tuple[Any, ...]]:
    """What a restart must give back of every work session (not its status: that moves
    with the clock between the starts)."""
    return sorted((s["id"], s["eventCount"], s["threadCount"], s["startTime"], s["lastTime"],
                   s["collabCategory"]) for s in run.json(EVERY)["sessions"])


def synced(run: Run, seq: int) -> bool:
    check = run.json("/api/health")["checks"].get("mongo", [{}])[0]
    seen = check.get("observedValue", {})
    return bool(seen.get("syncedSeq") == seq and seen.get("lagEvents") == 0)


def main(args: argparse.Namespace, uri: str) -> int:
    home = Path(tempfile.mkdtemp(prefix="coordd-bench-restart-"))
    name = f"coordd_bench_{secrets.token_hex(3)}"
    runs: list[Run] = []
    try:
        logs = home / ".openclaw" / "logs"
        logs.mkdir(parents=True)
        (home / ".openclaw" / "openclaw.json").write_text(
            json.dumps({"agents": {"list": [{"id": x} for x in AGENTS]}}))
        now = int(time.time() * 1000)
        size = write_log(logs / "coordination-events.ndjson", args.events, seed=7,
                         start_ms=now - 7 * 86_400_000, end_ms=now)
        config = home / "coordd.toml"
        # A long operation timeout: the warm load of the whole window is one query, and the
        # point is to time it, not to give up on it (the default 10 s would, on FerretDB).
        config.write_text(f'[mongo]\nuri = "{uri}"\ndatabase = "{name}"\n'
                          f"operation_timeout = {args.operation_timeout}\n"
                          f"[store]\nmax_events = {args.events}\n")
        print(f"command: python bench/bench_mongo_restart.py --events {args.events}"
              + (f" --uri {args.uri}" if args.uri else ""))
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
              f"log: {args.events:,} events, {size / 1e6:.1f} MB")
        state = home / "state"

        first = Run(home, config, 1)
        runs.append(first)
        before = sessions(first)
        t = time.perf_counter()
        while not synced(first, args.events):
            time.sleep(0.2)
        sync = time.perf_counter() - t
        server = first.json("/api/health")["checks"]["mongo-server"][0]["output"]
        print(f"server: {server}")
        print(f"1. cold start, MongoDB empty:        {first.ready:7.2f} s to ready; then "
              f"synced {args.events:,} events in {sync:.1f} s ({args.events / sync:,.0f}/s)")
        rows = []
        for step, label, remove, must_say in (
                (2, "warm restart from MongoDB:", ("snapshot.bin",), "loaded from MongoDB"),
                (3, "cold start from the log again:", ("snapshot.bin", "checkpoint.json"),
                 "")):
            runs[-1].stop()
            for f in remove:
                (state / f).unlink(missing_ok=True)
            run = Run(home, config, step)
            runs.append(run)
            same = sessions(run) == before
            path_ok = (run.said(must_say) if must_say
                       else not run.said("loaded from MongoDB"))
            rows.append((step, label, run.ready, same, path_ok))
            print(f"{step}. {label:<33}{run.ready:7.2f} s to ready; every session the "
                  f"same: {same}; took that path: {path_ok}")
        warm, cold = rows[0][2], rows[1][2]
        print(f"warm from MongoDB / cold from the log: {warm / cold:.2f}")
        return 0 if all(r[3] and r[4] for r in rows) else 1
    finally:
        for run in runs:
            if run.proc.poll() is None:
                run.stop()
        with contextlib.suppress(Exception):
            import pymongo

            pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000).drop_database(name)
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--operation-timeout", type=float, default=300.0)
    ap.add_argument("--uri", default="")
    ap.add_argument("--keep", action="store_true", help="keep the temporary HOME")
    a = ap.parse_args()
    if a.uri:
        sys.exit(main(a, a.uri))
    with ferretdb() as u:
        sys.exit(main(a, u))
