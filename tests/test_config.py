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
