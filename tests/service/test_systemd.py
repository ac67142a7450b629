"""systemd integration: sd_notify messages seen by a datagram socket the test opens, the
watchdog withheld when ingestion stalls, and the unit file checked where systemd exists."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from coordd.config import load_config
from coordd.core.event import Event
from coordd.service.service import Service
from tests.daemon import Daemon, event, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Datagrams:
    """Collects every datagram sent to a Unix socket, in a background thread."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def lines(self) -> list[str]:
        return [line for m in list(self.messages) for line in m.split("\n")]

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.mark.slow
def test_sd_notify_lifecycle(tmp_path: Path) -> None:
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[log]\npoll_interval = 0.2\n")
    sock = Datagrams(tmp_path / "notify.sock")
    d = Daemon(tmp_path, "--config", str(cfg),
               env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"})
    try:
        d.append(event(1))
        d.start()
        wait_for(lambda: "READY=1" in sock.lines())
        wait_for(lambda: "WATCHDOG=1" in sock.lines())
        status = [line for line in sock.lines() if line.startswith("STATUS=")]
        assert status and "1 events" in status[0] and "lag" in status[0]
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "RELOADING=1" in sock.lines())
        after = sock.lines()[sock.lines().index("RELOADING=1"):]
        assert any(line.startswith("MONOTONIC_USEC=") for line in after)
        wait_for(lambda: "READY=1" in sock.lines()[sock.lines().index("RELOADING=1"):])
        assert d.stop() == 0
        assert "STOPPING=1" in sock.lines()
    finally:
        d.kill()
        sock.close()


class BlockingEnricher:
    """Blocks the worker thread on the first event until released: a hung thread pool."""

    def __init__(self) -> None:
        from collections import Counter

        self.rejected: Counter[str] = Counter()
        self.release = threading.Event()

    def enrich_event(self, value: Any, seq: int = 0, *, with_source: bool = False) -> Event:
        self.release.wait(30)
        return Event(seq, {"type": "a2a.send", "agentId": "ruda", "ts": 1, "data": {}})


async def test_hung_worker_thread_withholds_the_watchdog(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "coordination-events.ndjson"
    log.parent.mkdir()
    log.write_text("")
    cfg = load_config(None, env={}, overrides={
        "log": {"path": str(log), "poll_interval": 0.05},
        "state": {"dir": str(tmp_path / "state")},
        "server": {"port": 0},
        "openclaw": {"config": str(tmp_path / "none.json"),
                     "category_overrides": str(tmp_path / "o.json")},
    })
    service = Service(cfg)
    blocker = BlockingEnricher()
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        service.pipeline.enricher = blocker  # type: ignore[union-attr]
        assert service.stalled(0.5) is None
        log.write_text('{"type":"a2a.send","agentId":"ruda","ts":1,"data":{}}\n')
        with trio.fail_after(10):
            while service.stalled(0.5) is None:  # noqa: ASYNC110 - a derived state, no event
                await trio.sleep(0.05)
        assert "worker thread" in (service.stalled(0.5) or "")
        blocker.release.set()
        with trio.fail_after(10):
            while service.stalled(0.5) is not None:  # noqa: ASYNC110 - a derived state
                await trio.sleep(0.05)
        service.request_shutdown()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_unit_file_verifies() -> None:
    r = subprocess.run(["systemd-analyze", "verify", str(ROOT / "systemd" / "coordd.service")],
                       capture_output=True, text=True, timeout=60)
    # verify complains about the ExecStart binary missing on a build machine; nothing else.
    problems = [line for line in r.stderr.splitlines()
                if line.strip() and "/opt/coordd/bin/coordd" not in line]
    assert not problems, r.stderr


@pytest.mark.slow
def test_socket_activation_serves_on_the_passed_socket(tmp_path: Path) -> None:
    import os
    import sys
    import urllib.request

    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    # What systemd does: the socket as fd 3, LISTEN_FDS=1, LISTEN_PID=<the service's pid>.
    code = ("import os, sys; os.dup2(int(os.environ.pop('TEST_FD')), 3); "
            "os.environ['LISTEN_PID'] = str(os.getpid()); "
            "from coordd.__main__ import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "HOME": str(tmp_path), "LISTEN_FDS": "1",
           "TEST_FD": str(listener.fileno())}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--state-dir", str(tmp_path / "st"), "--port", "1"],
        env=env, pass_fds=(listener.fileno(),),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def health() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    return r.read()
            except OSError:
                return None
        assert b'"status":"ok"' in wait_for(health)
        proc.terminate()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        listener.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_unit_file_exposure_is_ok() -> None:
    r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        str(ROOT / "systemd" / "coordd.service")],
                       capture_output=True, text=True, timeout=60)
    if "--offline" in r.stderr and r.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline")
    overall = [line for line in r.stdout.splitlines() if "Overall exposure level" in line]
    assert overall and " OK" in overall[0], r.stdout[-2000:]


# ---------------------------------------------------------------- the unit's file sandbox

UNIT = ROOT / "systemd" / "coordd.service"
UNIT_HOME = "/home/openclaw"  # the unit's paths name this home; the test's HOME stands in


def unit_paths(key: str) -> list[str]:
    """The unit's `key=` paths that lie in the home directory, without the "-" prefix."""
    out = []
    for line in UNIT.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            out += [p.lstrip("-") for p in value.split() if p.lstrip("-").startswith(UNIT_HOME)]
    return out


def sandbox_launcher(home: Path) -> list[str]:
    """`unshare --mount` with the unit's home sandbox: `ProtectHome=read-only` (home bound
    read-only) with the unit's `ReadWritePaths=` inside it bound writable on top, as
    systemd sets it up. The script checks the home really is read-only, then execs."""
    rw = [p.replace(UNIT_HOME, str(home), 1) for p in unit_paths("ReadWritePaths")]
    script = "\n".join([
        "set -e",
        'mount --bind "$HOME" "$HOME"',
        *(f'if [ -e "{p}" ]; then mount --bind "{p}" "{p}"; fi' for p in rw),
        'mount -o remount,bind,ro "$HOME"',
        'if touch "$HOME/.rw-probe" 2>/dev/null; then echo "home is writable" >&2; exit 99; fi',
        'exec "$@"',
    ])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sandbox"]


def unshare_permitted() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "mount --bind / /mnt && umount /mnt"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


@pytest.mark.slow
def test_category_edit_works_in_the_units_file_sandbox(tmp_path: Path) -> None:
    if not unshare_permitted():
        pytest.skip("unshare --mount with bind mounts is not permitted here (needs root or "
                    "user namespaces): the unit's ProtectHome= sandbox cannot be reproduced")
    home, state = tmp_path / "home", tmp_path / "state"  # state: the unit's StateDirectory=
    legacy = home / ".openclaw" / "work-session-category-overrides.json"
    legacy.parent.mkdir(parents=True)
    legacy_text = json.dumps({"ws_0": {"collabCategory": "legal_compliance",
                                       "updatedAt": "2026-01-01T00:00:00.000Z"}}, indent=2) + "\n"
    legacy.write_text(legacy_text)
    d = Daemon(home, launcher=sandbox_launcher(home), state_dir=state)
    try:
        d.append(event(1), event(11))
        d.start()
        d.wait_events(2)
        # The old monitor's file is read once: its override applies.
        r = d.get("/api/work-sessions/ws_0")
        assert r.status_code == 200 and r.json()["session"]["collabCategory"] == \
            "legal_compliance", r.text
        r = d.request("PATCH", "/api/work-sessions/ws_1/category",
                      json={"collabCategory": "qa_validation", "updatedBy": "ops"})
        assert r.status_code == 200, r.text + "\n" + d.output()
        saved = json.loads((state / "work-session-category-overrides.json").read_text())
        assert saved["ws_1"]["collabCategory"] == "qa_validation"
        assert saved["ws_0"]["collabCategory"] == "legal_compliance"
        assert d.get("/api/work-sessions/ws_1").json()["session"]["collabCategory"] == \
            "qa_validation"
        assert d.stop() == 0
    finally:
        d.kill()
    assert legacy.read_text() == legacy_text  # the old file is left as it was
    assert not (home / ".rw-probe").exists()
