"""Service lifetime in-process: readiness, a crashing component stops the daemon by name,
graceful shutdown, live reload."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from coordd.config import Config, load_config
from coordd.errors import ComponentCrashed
from coordd.service.service import Service


def config(tmp_path: Path, **extra: dict[str, object]) -> Config:
    log = tmp_path / "logs" / "coordination-events.ndjson"
    log.parent.mkdir(exist_ok=True)
    log.write_text('{"type":"a2a.send","agentId":"ruda","ts":1,"data":{"workSessionId":"w"}}\n')
    overrides: dict[str, dict[str, object]] = {
        "log": {"path": str(log), "poll_interval": 0.05},
        "state": {"dir": str(tmp_path / "state")},
        "server": {"port": 0, "shutdown_grace": 1.0},
        "openclaw": {"config": str(tmp_path / "openclaw.json"),
                     "category_overrides": str(tmp_path / "overrides.json")},
    }
    for table, values in extra.items():
        overrides.setdefault(table, {}).update(values)
    return load_config(None, env={}, overrides=overrides)


async def test_ready_means_loaded_and_listening(tmp_path: Path) -> None:
    service = Service(config(tmp_path))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(service.run)
        assert len(service.store) == 1
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{info.port}/api/events")
        assert r.json()["count"] == 1
        service.request_shutdown()


async def test_a_crashing_component_stops_the_daemon_by_name(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    service = Service(config(tmp_path))
    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            assert service.pipeline is not None

            def broken(*_args: object) -> None:
                raise RuntimeError("disk on fire")

            # The next batch makes the pipeline fail on the event loop.
            service.pipeline._store = broken  # type: ignore[method-assign]
            (tmp_path / "logs" / "coordination-events.ndjson").write_text(
                '{"type":"a2a.send","agentId":"ruda","ts":1,"data":{}}\n' * 2)
            await trio.sleep_forever()
    crashed, _ = info.value.split(ComponentCrashed)
    assert crashed is not None
    assert [e.name for e in leaves(crashed)] == ["pipeline"]  # type: ignore[attr-defined]
    assert "component pipeline crashed: RuntimeError: disk on fire" in caplog.text


def leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for x in e.exceptions for leaf in leaves(x)]
    return [e]


async def test_shutdown_saves_the_checkpoint(tmp_path: Path) -> None:
    service = Service(config(tmp_path, state={"checkpoint_interval": 3600.0}))
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        service.request_shutdown()
    assert (tmp_path / "state" / "checkpoint.json").exists()


async def test_reload_applies_what_it_can(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("[log]\npoll_interval = 0.05\n")
    base = config(tmp_path)
    service = Service(load_config(cfg_file, env={}, overrides={
        "log": {"path": str(base.log_path())}, "state": {"dir": str(base.state_dir())},
        "server": {"port": 0}, "openclaw": {"config": str(tmp_path / "x.json"),
                                            "category_overrides": str(tmp_path / "o.json")}}),
        cli_overrides={"log": {"path": str(base.log_path())},
                       "state": {"dir": str(base.state_dir())}, "server": {"port": 0}})
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        cfg_file.write_text('[log]\npoll_interval = 0.5\n[logging]\nlevel = "DEBUG"\n'
                            '[server]\nwrite_token = "t"\n[store]\nmax_events = 7\n')
        needs_restart = service.reload()
        assert "store.max_events" in needs_restart
        assert service.tailer is not None
        assert service.tailer._poll_interval == 0.5  # applied live
        assert service.web.write_token == "t"
        assert service.config.logging.level == "DEBUG"
        cfg_file.write_text("[log]\npoll_interval = -1\n")  # invalid: keep running config
        assert service.reload() == []
        assert service.config.logging.level == "DEBUG"
        service.request_shutdown()


async def test_category_write_runs_off_the_event_loop(tmp_path: Path) -> None:
    import threading

    service = Service(config(tmp_path))
    ov = service.overrides
    writers: list[threading.Thread] = []
    real_write = ov._write

    def recording_write(entries: object) -> None:
        writers.append(threading.current_thread())
        real_write(entries)  # type: ignore[arg-type]

    ov._write = recording_write  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        info = await nursery.start(service.run)
        async with httpx.AsyncClient() as client:
            r = await client.patch(f"http://127.0.0.1:{info.port}/api/work-sessions/w/category",
                                   json={"collabCategory": "infra_ops"})
        assert r.status_code == 200, r.text
        service.request_shutdown()
    assert writers and writers[0] is not threading.main_thread()
    assert "w" in (tmp_path / "overrides.json").read_text()


@pytest.mark.slow
def test_a_busy_port_is_one_line_and_exit_1_before_the_history(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    log = tmp_path / ".openclaw" / "logs" / "coordination-events.ndjson"
    log.parent.mkdir(parents=True)
    log.write_text('{"type":"a2a.send","agentId":"ruda","ts":1,"data":{}}\n' * 1000)
    with socket.socket() as busy:  # another monitor on the port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASK_MONITOR_",
                                                                         "MONGODB_", "COORDD_"))}
        r = subprocess.run([sys.executable, "-m", "coordd", "--port", str(port),
                            "--state-dir", str(tmp_path / "state")],
                           env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True,
                           timeout=60)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # no traceback, and no history read before it
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "another monitor" in lines[0] and "--port" in lines[0]
    assert not (tmp_path / "state" / "checkpoint.json").exists()


def test_listen_problems_say_what_to_do() -> None:
    import socket

    from coordd.errors import ListenError
    from coordd.service.listen import listen_socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenError, match=r"already in use .*--port"):
            listen_socket("127.0.0.1", port)
    with pytest.raises(ListenError, match=r"no such address .*--host"):
        listen_socket("192.0.2.1", 0)  # TEST-NET-1: not an address of this machine
    with listen_socket("127.0.0.1", 0) as ok:
        assert ok.getsockname()[1] > 0


@pytest.mark.slow
def test_an_empty_home_gets_the_log_directory(tmp_path: Path) -> None:
    from tests.daemon import Daemon, event

    d = Daemon(tmp_path)  # nothing in HOME: no ~/.openclaw at all
    try:
        d.start()
        assert d.log_path.parent.is_dir()
        assert any(line.startswith("INFO ") and "created the log directory" in line
                   and str(d.log_path.parent) in line for line in d.lines), d.output()
        # What the README's quickstart does next: append a line with the shell, then ask.
        with open(d.log_path, "a") as f:  # `>>` creates the file, not the directory
            f.write(json.dumps(event(1)) + "\n")
        assert d.wait_events(1)[0]["data"]["n"] == 1
        assert d.stop() == 0
    finally:
        d.kill()
