"""Black-box harness: the real daemon as a subprocess on a temporary HOME.

It listens on 127.0.0.1 port 0; the bound address is read from its "coordd ready on"
log line. Waits use the wall clock with generous deadlines (these are not timed
assertions: they only bound how long a broken build can hang the suite).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = ["Daemon", "wait_for"]

READY_RE = re.compile(r"coordd ready on (http://[^\s,]+)")


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


class Daemon:
    """One coordd process. `home` holds `.openclaw/logs/coordination-events.ndjson`.

    `launcher` is put in front of the command (e.g. `unshare ... sh -c '...; exec "$@"'`);
    `state_dir` defaults to `home/state`."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None,
                 launcher: Sequence[str] = (), state_dir: Path | None = None) -> None:
        self.home = home
        self.args = list(args)
        self.extra_env = env or {}
        self.launcher = list(launcher)
        self._state_dir = state_dir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[str] = []
        self._ready = threading.Event()

    @property
    def log_path(self) -> Path:
        return self.home / ".openclaw" / "logs" / "coordination-events.ndjson"

    @property
    def state_dir(self) -> Path:
        return self._state_dir or self.home / "state"

    def start(self, timeout: float = 30.0) -> Daemon:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TASK_MONITOR_", "MONGODB_", "NOTIFY_SOCKET", "COORDD_"))}
        env.update({"HOME": str(self.home), "TZ": "UTC", "PYTHONUNBUFFERED": "1"})
        env.update(self.extra_env)
        cmd = [*self.launcher, sys.executable, "-m", "coordd", "--port", "0", "--host", "127.0.0.1",
               "--state-dir", str(self.state_dir), *self.args]
        self._ready.clear()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, encoding="utf-8", errors="replace")
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            raise AssertionError("daemon did not become ready:\n" + "\n".join(self.lines[-40:]))
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = READY_RE.search(line)
            if m:
                self.url = m.group(1)
                self._ready.set()

    def output(self) -> str:
        return "\n".join(self.lines)

    # ------------------------------------------------------------------ HTTP

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=10.0, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def events(self, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", "1000000")
        r = self.get("/api/events", params=params)
        assert r.status_code == 200, r.text
        return r.json()["events"]  # type: ignore[no-any-return]

    def wait_events(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until /api/events holds at least n events; return them."""
        return wait_for(lambda: (lambda e: e if len(e) >= n else None)(self.events()), timeout)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ lifetime

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon did not stop:\n" + self.output()) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def append(self, *lines: str | bytes | dict[str, Any], raw: bool = False) -> None:
        """Append lines (dicts are serialised; `raw` writes bytes/str as given, no newline)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as f:
            for line in lines:
                if isinstance(line, dict):
                    data = json.dumps(line, ensure_ascii=False).encode() + b"\n"
                elif isinstance(line, str):
                    data = line.encode() + (b"" if raw else b"\n")
                else:
                    data = line + (b"" if raw else b"\n")
                f.write(data)
                f.flush()


def event(n: int, **data: Any) -> dict[str, Any]:
    """A small valid event numbered n (in `data.n`), in work session ws_<n // 10>."""
    payload = {"n": n, "workSessionId": f"ws_{n // 10}", "message": f"message {n} 코드"}
    payload.update(data)
    return {"type": "a2a.send", "agentId": "ruda", "ts": 1_767_000_000_000 + n, "data": payload}
