"""Black-box: the real daemon syncing to a real server that goes away mid-stream and comes back.

A tailing daemon with `[mongo] uri` on a temporary log; events are appended the whole time.
The server is killed (SIGKILL: a crash, not a polite stop) while the daemon syncs, more events
are appended while it is down, then it is started again with the same command line, port and
data directory. Checked:

* every log line ends up in the server exactly once (distinct `eventHash` == documents ==
  log lines; their seqs are 1..N);
* `/api/health` says the outage (`mongo` check `warn`, the driver's error, the lag) and then
  the recovery (`pass`, lag 0), and `mongo-queries` counts the answers that fell back;
* the routes MongoDB answers (search, session search, a deep page, stats) never give a 500
  during the outage: they answer from memory at once, with `"tier": "memory"` and
  `"degraded": "MongoDB unreachable: ..."`.

Runs under `make test-mongo`, which starts FerretDB and exports its pid file
(`COORDD_TEST_FERRETDB_PIDFILE`) so the server can be restarted. Against a server given
with `COORDD_TEST_MONGODB_URI` alone (a MongoDB replica set) the outage is made by a TCP
relay between the daemon and the server, cut and restored (the relay's port stays the same).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon, event, wait_for

URI = os.environ.get("COORDD_TEST_MONGODB_URI", "")
PIDFILE = os.environ.get("COORDD_TEST_FERRETDB_PIDFILE", "")

pytestmark = [
    pytest.mark.mongo,
    pytest.mark.slow,
    pytest.mark.skipif(not URI, reason="COORDD_TEST_MONGODB_URI is not set"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

#: How long a broken build may hang a wait (not a timed assertion).
PATIENCE = 60.0


# ---------------------------------------------------------------- ways to take the server away


class RestartedServer:
    """The FerretDB `make test-mongo` started: killed and started again with the same command
    line (same port, same data and state directories). The pid file is kept up to date, so
    the script stops the new process at the end."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        pid = int(pidfile.read_text().strip())
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        self.port = _port_of(URI)
        self.pid: int | None = pid

    @property
    def uri(self) -> str:
        return URI

    def stop(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        _wait_gone(self.pid)
        self.pid = None
        wait_for(lambda: not _listening(self.port), PATIENCE)

    def start(self) -> None:
        log = open(self.pidfile.with_name("ferretdb.log"), "ab")
        proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.pid = proc.pid
        self.pidfile.write_text(f"{proc.pid}\n")
        wait_for(lambda: _listening(self.port), PATIENCE)

    def close(self) -> None:
        if self.pid is None:
            self.start()  # the next tests need their server


class Relay:
    """A TCP relay on a fixed loopback port in front of the server: `stop` closes the listener
    and every relayed connection (the daemon sees connections reset, then refused), `start`
    listens again on the same port."""

    def __init__(self, uri: str) -> None:
        self.target = _host_port(uri)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.rest = uri.split("/", 3)[3] if uri.count("/") >= 3 else ""
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.start()

    @property
    def uri(self) -> str:
        # One server through the relay: a replica set's members would be dialled directly.
        sep = "&" if "?" in self.rest else "?"
        return f"mongodb://127.0.0.1:{self.port}/{self.rest}{sep}directConnection=true"

    def start(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def stop(self) -> None:
        assert self._listener is not None
        self._listener.close()
        self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def close(self) -> None:
        if self._listener is not None:
            self.stop()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _host_port(uri: str) -> tuple[str, int]:
    hosts = uri.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = hosts.split(",")[0].partition(":")
    return host, int(port or 27017)


def _port_of(uri: str) -> int:
    return _host_port(uri)[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


def _wait_gone(pid: int) -> None:
    def gone() -> bool:
        try:
            os.waitpid(pid, os.WNOHANG)  # our child after a restart: reap it
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")

    wait_for(gone, PATIENCE)


@pytest.fixture
def outage() -> Iterator[RestartedServer | Relay]:
    way: RestartedServer | Relay = (RestartedServer(Path(PIDFILE)) if PIDFILE
                                    else Relay(URI))
    try:
        yield way
    finally:
        way.close()


# ------------------------------------------------------------------------------------ the test


class Appender:
    """Appends events to the daemon's log in a thread, a few at a time, until stopped."""

    def __init__(self, d: Daemon, start: int) -> None:
        self.d = d
        self.n = start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.d.append(*(event(self.n + i) for i in range(1, 6)))
            self.n += 5
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.n


def mongo_check(d: Daemon) -> dict[str, Any]:
    check: dict[str, Any] = d.get("/api/health").json()["checks"]["mongo"][0]
    return check


def count(coll: Any) -> int:
    try:
        return int(coll.count_documents({}))
    except Exception:
        return -1  # the server is down or coming back


def test_server_killed_and_restarted_mid_stream(tmp_path: Path,
                                                 outage: RestartedServer | Relay) -> None:
    import pymongo

    name = f"coordd_test_{secrets.token_hex(4)}"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
[mongo]
uri = "{outage.uri}"
database = "{name}"
server_selection_timeout = 0.5
# After the recovery a search on FerretDB/SQLite scans the collection twice (about 1.5 s at
# 3,000 documents, more on a loaded machine): room for that, and below the client's 10 s.
operation_timeout = 5.0
batch_interval = 0.05
backoff_max = 0.5
[store]
max_events = 100
""")
    client: Any = pymongo.MongoClient(URI, serverSelectionTimeoutMS=2000)
    coll = client[name]["coordination_events"]
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    d = Daemon(tmp_path, "--config", str(cfg))
    appender: Appender | None = None
    try:
        d.append(*(event(n) for n in range(1, 51)))  # all within memory: seqs 1..50
        d.start()
        wait_for(lambda: count(coll) == 50, PATIENCE)
        assert mongo_check(d)["status"] == "pass"

        appender = Appender(d, 50)  # mid-stream from here on
        wait_for(lambda: count(coll) > 150, PATIENCE)
        outage.stop()
        down = wait_for(lambda: (lambda c: c if c["status"] == "warn" else None)(
            mongo_check(d)), PATIENCE)
        assert down["output"].startswith("MongoDB down") and down["observedValue"][
            "lagEvents"] > 0, down
        answers = routes_during_outage(d)
        assert {a["tier"] for a in answers} == {"memory"}
        # The driver knows the server is gone: answered at once, not after the timeout.
        assert all(a["degraded"].startswith("MongoDB unreachable") for a in answers), [
            a["degraded"] for a in answers]
        health = d.get("/api/health").json()
        assert health["status"] == "ok"  # degraded, not critical: the API works
        assert health["checks"]["mongo-queries"][0]["observedValue"]["degraded"] >= len(answers)
        lines_while_down = appender.n
        wait_for(lambda: appender is not None and appender.n > lines_while_down + 100, PATIENCE)

        outage.start()
        wait_for(lambda: appender is not None and count(coll) > lines_while_down, PATIENCE)
        last = appender.stop()
        appender = None
        lines = d.log_path.read_bytes().count(b"\n")
        assert lines == last
        wait_for(lambda: count(coll) >= lines and mongo_check(d)["observedValue"][
            "lagEvents"] == 0, PATIENCE)
        up = mongo_check(d)
        assert (up["status"], up["output"]) == ("pass", "MongoDB connected")

        hashes = coll.distinct("eventHash")
        seqs = sorted(doc["seq"] for doc in coll.find({}, {"seq": 1}))
        assert len(hashes) == coll.count_documents({}) == lines  # every line once
        assert seqs == list(range(1, lines + 1))
        search = d.get("/api/events/search", params={"q": "message"}).json()
        assert (search["tier"], search["total"]) == ("mongo", lines), search.get("degraded")
        assert "degraded" not in search
    finally:
        if appender is not None:
            appender.stop()
        d.kill()
        with contextlib.suppress(Exception):
            outage.close()
            client.drop_database(name)
        client.close()


def routes_during_outage(d: Daemon) -> list[dict[str, Any]]:
    """Each route MongoDB answers, while it is down: 200 from memory, never a 500."""
    answers = []
    gets: list[tuple[str, dict[str, str]]] = [
        ("/api/events/search", {"q": "message"}),
        ("/api/work-sessions/search", {"q": "ws_1"}),
        ("/api/events", {"since": "0", "limit": "50"}),  # before memory: MongoDB's
        ("/api/stats", {}),
    ]
    for path, params in gets:
        r = d.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        answers.append(r.json())
    return answers
