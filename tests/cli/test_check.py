"""`coordd --check`: every outcome and its exit code, plain and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordd.__main__ import main
from coordd.tail.checkpoint import Checkpoint, FileId, save_checkpoint


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("TASK_MONITOR_PORT", "TASK_MONITOR_HOST", "MONGODB_URI", "STATE_DIRECTORY",
                "XDG_STATE_HOME", "COORDD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".openclaw" / "logs").mkdir(parents=True)
    (tmp_path / ".openclaw" / "openclaw.json").write_text('{"agents": {"list": [{"id": "eden"}]}}')
    (tmp_path / ".openclaw" / "logs" / "coordination-events.ndjson").write_text(
        '{"type":"a2a.send","agentId":"ruda","ts":1,"data":{}}\n')
    return tmp_path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_check(capsys: pytest.CaptureFixture[str], *args: str,
              offline: bool = True) -> tuple[int, str]:
    """`coordd --check --offline` (the pre-start validation), or the probe of a daemon
    on a port nobody listens on."""
    code = main(["--check", *(["--offline"] if offline else []), "--port", str(free_port()),
                 *args])
    return code, capsys.readouterr().out


def test_all_good_is_ok(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_check(capsys)
    assert code == 0, out
    assert "PASS config" in out and "PASS log" in out and "PASS state" in out
    assert "PASS plugins: keywords" in out
    assert "daemon" not in out  # offline: no daemon is asked
    assert out.strip().endswith("overall: PASS")


def test_no_daemon_is_critical(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_check(capsys, offline=False)
    assert code == 2, out
    assert "FAIL daemon: no daemon answers at http://127.0.0.1:" in out
    assert "--check --offline" in out  # the hint names the pre-start validation
    assert out.strip().endswith("overall: FAIL")
    code, out = run_check(capsys, "--json", offline=False)
    body = json.loads(out)
    assert code == 2 and body["status"] == "fail"
    assert body["checks"]["daemon"][0]["status"] == "fail"


def test_check_subcommand_takes_offline(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--offline", "--port", str(free_port())]) == 0
    assert "overall: PASS" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--offline"])
    assert "--offline goes with --check" in capsys.readouterr().err


def test_fresh_install_without_openclaw_json_is_ok(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / ".openclaw" / "openclaw.json").unlink()
    code, out = run_check(capsys)
    assert code == 0, out
    assert "PASS openclaw:" in out and "defaults" in out


def test_json_shape(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_check(capsys, "--json")
    body = json.loads(out)
    assert code == 0 and body["status"] == "pass"
    for name in ("config", "log", "state", "openclaw", "plugins"):
        assert name in body["checks"], name
        for item in body["checks"][name]:
            assert item["status"] in ("pass", "warn", "fail") and item["output"]
    assert body["checks"]["log"][0]["observedValue"]["bytes"] > 0


def test_missing_log_is_a_warning(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / ".openclaw" / "logs" / "coordination-events.ndjson").unlink()
    code, out = run_check(capsys)
    assert code == 1
    assert "WARN log:" in out and "waits for it" in out and "->" in out


def test_missing_log_directory_is_a_warning(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_dir = home / ".openclaw" / "logs"
    (log_dir / "coordination-events.ndjson").unlink()
    log_dir.rmdir()
    code, out = run_check(capsys)
    assert code == 1 and "directory" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_log_is_critical(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / ".openclaw" / "logs" / "coordination-events.ndjson").chmod(0)
    code, out = run_check(capsys)
    assert code == 2 and "FAIL log" in out


def test_unwritable_state_dir_is_critical(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = home / "not-a-dir"
    blocker.write_text("x")
    code, out = run_check(capsys, "--state-dir", str(blocker / "state"))
    assert code == 2
    assert "FAIL state" in out and "not writable" in out


def test_bad_config_is_critical(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = home / "bad.toml"
    bad.write_text("[log]\nwatch = 3\n")
    code, out = run_check(capsys, "--config", str(bad))
    assert code == 2
    assert "FAIL config" in out and "[log] watch" in out


def test_broken_openclaw_json_is_a_warning(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / ".openclaw" / "openclaw.json").write_text("{not json at all")
    code, out = run_check(capsys)
    assert code == 1 and "WARN openclaw" in out


def test_checkpoint_for_a_vanished_file_is_a_warning(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = home / "st"
    save_checkpoint(state, Checkpoint(FileId(1, 1, 0, "0" * 64), 10, 5, "e1"))
    code, out = run_check(capsys, "--state-dir", str(state))
    assert code == 1 and "no longer there" in out


def test_checkpoint_consistent_with_the_file(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = home / "st"
    log = home / ".openclaw" / "logs" / "coordination-events.ndjson"
    st = log.stat()
    save_checkpoint(state, Checkpoint(FileId(st.st_dev, st.st_ino, 0, "0" * 64), st.st_size, 1,
                                      "e1"))
    code, out = run_check(capsys, "--state-dir", str(state))
    assert code == 0 and f"checkpoint at byte {st.st_size}" in out


def test_corrupt_checkpoint_is_a_warning_and_left_alone(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = home / "st"
    state.mkdir()
    (state / "checkpoint.json").write_text("{garbage")
    code, out = run_check(capsys, "--state-dir", str(state))
    assert code == 1 and "corrupt" in out
    assert (state / "checkpoint.json").read_text() == "{garbage"  # a probe changes nothing


def test_disabled_every_plugin_is_a_warning(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = home / "c.toml"
    cfg.write_text('[plugins]\ndisabled = ["keywords", "rules"]\n')
    code, out = run_check(capsys, "--config", str(cfg))
    assert code == 1 and "WARN plugins" in out


def test_probe_failure_is_unknown(home: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    import coordd.cli.check

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(coordd.cli.check, "run_checks", boom)
    code, out = run_check(capsys)
    assert code == 3 and "UNKNOWN" in out and "disk on fire" in out


def probe(home: Path, port: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "coordd", "--check", "--port", port, *args],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.slow
def test_running_daemon_is_probed(home: Path) -> None:
    from tests.daemon import Daemon

    d = Daemon(home).start()
    try:
        port = d.url.rsplit(":", 1)[1]
        r = probe(home, port, "--json")
        body = json.loads(r.stdout)
        assert body["checks"]["daemon"][0]["output"].startswith("running daemon healthy"), r.stdout
        # The daemon's own component checks, as /api/health reports them.
        assert body["checks"]["log"][0]["status"] == "pass"
        assert body["checks"]["pipeline"][0]["status"] == "pass"
        assert r.returncode == 0
    finally:
        d.kill()


@pytest.mark.slow
def test_fresh_install_daemon_and_check_agree(home: Path) -> None:
    from tests.daemon import Daemon

    (home / ".openclaw" / "openclaw.json").unlink()
    d = Daemon(home).start()
    try:
        health = d.get("/api/health").json()
        assert health["status"] == "ok"
        daemon_says = health["checks"]["openclaw"][0]
        assert daemon_says["status"] == "pass" and "defaults" in daemon_says["output"]
        port = d.url.rsplit(":", 1)[1]
        online = probe(home, port, "--json")
        assert online.returncode == 0, online.stdout
        assert json.loads(online.stdout)["checks"]["openclaw"] == [daemon_says]
        offline = probe(home, port, "--json", "--offline", "--state-dir", str(home / "st"))
        assert offline.returncode == 0, offline.stdout
        assert json.loads(offline.stdout)["checks"]["openclaw"][0] == daemon_says
    finally:
        d.kill()
    said = [line for line in d.lines if "does not exist" in line and "main agents" in line]
    assert len(said) == 1 and said[0].startswith("INFO "), d.output()


def test_follower_skips_log_and_state_and_needs_mongodb(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = home / "f.toml"
    cfg.write_text(f'[mode]\nfollower = true\n[mongo]\nuri = "mongodb://127.0.0.1:{port}/"\n'
                   "server_selection_timeout = 0.2\n")
    (home / ".openclaw" / "logs" / "coordination-events.ndjson").unlink()
    code, out = run_check(capsys, "--config", str(cfg))
    assert "log:" not in out and "state:" not in out
    assert code == 2 and "FAIL mongo" in out
