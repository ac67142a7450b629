from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from coordd.config import Config, load_config
from coordd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


def test_example_loads_and_equals_the_defaults() -> None:
    cfg = load_config(EXAMPLE, env={})
    defaults = Config()
    for table in ("server", "log", "openclaw", "state", "store", "websocket", "logging", "mongo"):
        assert getattr(cfg, table) == getattr(defaults, table), table
    assert cfg.plugins.disabled == ()


def test_example_documents_every_key() -> None:
    with open(EXAMPLE, "rb") as f:
        raw = tomllib.load(f)
    for field in dataclasses.fields(Config):
        if field.name in ("source",):
            continue
        section = getattr(Config(), field.name)
        assert field.name in raw, f"[{field.name}] missing from config.example.toml"
        for key in (f.name for f in dataclasses.fields(section)):
            if field.name == "plugins" and key == "settings":
                continue  # free-form [plugins.<name>] tables
            assert key in raw[field.name], f"[{field.name}] {key} missing from the example"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_unknown_table_names_file_and_table(tmp_path: Path) -> None:
    p = write(tmp_path, "[servr]\nport = 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert str(p) in str(e.value) and "[servr]" in str(e.value) and "unknown table" in str(e.value)


def test_unknown_key_names_file_table_and_key(tmp_path: Path) -> None:
    p = write(tmp_path, "[log]\npoll_intervall = 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    msg = str(e.value)
    assert str(p) in msg and "[log] poll_intervall" in msg and "unknown key" in msg


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[server]\nport = "80"\n', "[server] port"),
        ("[server]\nport = 70000\n", "[server] port"),
        ("[log]\nread_rotated = 1\n", "[log] read_rotated"),
        ('[log]\nwatch = "fanotify"\n', "[log] watch"),
        ("[log]\npoll_interval = 0\n", "[log] poll_interval"),
        ("[plugins]\ndisabled = [1]\n", "[plugins] disabled"),
        ("[plugins]\nfoo = 1\n", "[plugins] foo"),
        ("server = 1\n", "server"),
    ],
)
def test_wrong_types_are_refused_by_name(tmp_path: Path, text: str, where: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert str(p) in str(e.value) and where in str(e.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[server\n"), env={})
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", env={})


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    p = write(tmp_path, '[server]\nport = 4000\nhost = "0.0.0.0"\n')
    assert load_config(None, env={}).server.port == 3847
    assert load_config(p, env={}).server.port == 4000
    env = {"TASK_MONITOR_PORT": "5000", "TASK_MONITOR_HOST": "::1"}
    cfg = load_config(p, env=env)
    assert (cfg.server.port, cfg.server.host) == (5000, "::1")
    cfg = load_config(p, env=env, overrides={"server": {"port": 6000, "host": None}})
    assert (cfg.server.port, cfg.server.host) == (6000, "::1")


def test_environment_variables_of_the_old_monitor(tmp_path: Path) -> None:
    env = {"TASK_MONITOR_WRITE_TOKEN": " sekret ", "MONGODB_URI": "mongodb://db:27017",
           "TASK_MONITOR_PORT": "  "}
    cfg = load_config(None, env=env)
    assert cfg.server.write_token == " sekret "  # trimmed at comparison time, as upstream
    assert cfg.mongo.uri == "mongodb://db:27017"
    assert cfg.server.port == 3847  # blank values are ignored
    with pytest.raises(ConfigError, match="TASK_MONITOR_PORT"):
        load_config(None, env={"TASK_MONITOR_PORT": "eighty"})


def test_plugin_tables_are_free_form(tmp_path: Path) -> None:
    p = write(tmp_path, '[plugins]\ndisabled = ["x"]\n[plugins.rules]\nfoo = [1, 2]\n')
    cfg = load_config(p, env={})
    assert cfg.plugins.disabled == ("x",)
    assert dict(cfg.plugins.settings["rules"]) == {"foo": [1, 2]}


def test_state_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(None, env={})
    assert cfg.state_dir({"STATE_DIRECTORY": "/var/lib/coordd:/other"}) == Path("/var/lib/coordd")
    assert cfg.state_dir({"XDG_STATE_HOME": "/xdg"}) == Path("/xdg/coordd")
    assert cfg.state_dir({}) == tmp_path / ".local/state/coordd"
    explicit = load_config(write(tmp_path, '[state]\ndir = "st"\n'), env={})
    assert explicit.state_dir({"STATE_DIRECTORY": "/x"}) == tmp_path / "st"


def test_default_paths_follow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(None, env={})
    assert cfg.log_path() == tmp_path / ".openclaw/logs/coordination-events.ndjson"
    assert cfg.openclaw_config_path() == tmp_path / ".openclaw/openclaw.json"
    assert cfg.overrides_path({}) == (tmp_path / ".local/state/coordd"
                                      / "work-session-category-overrides.json")
    assert cfg.legacy_overrides_path() == (
        tmp_path / ".openclaw/work-session-category-overrides.json")


def test_overrides_follow_the_state_dir_unless_named(tmp_path: Path) -> None:
    cfg = load_config(None, env={}, overrides={"state": {"dir": str(tmp_path / "st")}})
    assert cfg.overrides_path() == tmp_path / "st" / "work-session-category-overrides.json"
    assert cfg.overrides_path({"STATE_DIRECTORY": "/x"}) == (
        tmp_path / "st" / "work-session-category-overrides.json")
    named = load_config(write(tmp_path, '[openclaw]\ncategory_overrides = "ov.json"\n'), env={})
    assert named.overrides_path() == tmp_path / "ov.json"
    assert named.legacy_overrides_path() is None  # a named file is not migrated


def test_the_file_is_validated_whole_even_where_overridden(tmp_path: Path) -> None:
    p = write(tmp_path, '[server]\nport = "80"\nhost = 7\n')
    for env, flags in [({}, {"server": {"port": 4000, "host": "::1"}}),
                       ({"TASK_MONITOR_PORT": "4000", "TASK_MONITOR_HOST": "::1"}, {})]:
        with pytest.raises(ConfigError) as e:
            load_config(p, env=env, overrides=flags)
        assert str(p) in str(e.value) and "[server] port" in str(e.value)
    q = write(tmp_path, '[log]\nwatch = "fanotify"\n')
    with pytest.raises(ConfigError, match=r"\[log\] watch"):
        load_config(q, env={}, overrides={"log": {"watch": "poll"}})


def test_a_whitespace_write_token_is_a_config_error(tmp_path: Path) -> None:
    p = write(tmp_path, '[server]\nwrite_token = "   "\n')
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    msg = str(e.value)
    assert str(p) in msg and "[server] write_token" in msg
    assert "non-space" in msg and '""' in msg  # says how to fix it
    assert load_config(write(tmp_path, '[server]\nwrite_token = ""\n'), env={}).server \
        .write_token == ""
    assert load_config(write(tmp_path, '[server]\nwrite_token = " t "\n'), env={}).server \
        .write_token == " t "
    # A blank variable means "not set", as with the old monitor.
    assert load_config(None, env={"TASK_MONITOR_WRITE_TOKEN": "  "}).server.write_token == ""


@pytest.mark.parametrize(("port", "ok"), [(0, True), (65535, True), (65536, False),
                                          (-1, False), (70000, False)])
def test_port_range_in_the_file(tmp_path: Path, port: int, ok: bool) -> None:
    p = write(tmp_path, f"[server]\nport = {port}\n")
    if ok:
        assert load_config(p, env={}).server.port == port
    else:
        with pytest.raises(ConfigError, match=r"\[server\] port: expected a port: an integer "
                                              r"from 0 to 65535"):
            load_config(p, env={})


def test_port_range_from_a_flag_and_the_environment_names_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, env={}, overrides={"server": {"port": 70000}})
    assert str(e.value).startswith("--port ([server] port): expected a port")
    with pytest.raises(ConfigError) as e:
        load_config(None, env={"TASK_MONITOR_PORT": "-5"})
    assert str(e.value).startswith("$TASK_MONITOR_PORT ([server] port): expected a port")


def test_a_port_flag_out_of_range_is_refused_by_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from coordd.__main__ import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TASK_MONITOR_PORT", raising=False)
    assert main(["--port", "70000", "--state-dir", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("coordd: --port ([server] port): expected a port: an integer from 0 "
                           "to 65535 (0: any free port), got 70000")


@pytest.mark.parametrize(("text", "where"), [
    ("[server\n", ":1:8: invalid TOML: Expected ']'"),
    ('[server]\nport = 80 80\n', ":2:11: invalid TOML: Expected newline"),
    ("[log]\npath = ", ":2: invalid TOML: Invalid value (at the end of the file)"),
])
def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path, text: str,
                                                      where: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert str(e.value).startswith(f"{p}{where}"), str(e.value)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_bytes(b'[log]\npath = "\xff"\n')
    with pytest.raises(ConfigError, match=r"c\.toml:2: invalid TOML: not UTF-8"):
        load_config(p, env={})
