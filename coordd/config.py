"""One TOML file into frozen dataclasses, one per table.

Precedence, highest first: command-line flag > environment > TOML file > default.
The environment variables are the old monitor's (`TASK_MONITOR_HOST`, `TASK_MONITOR_PORT`,
`TASK_MONITOR_WRITE_TOKEN`, `MONGODB_URI`) plus systemd's `STATE_DIRECTORY`, so an existing
deployment moves over without edits. Unknown tables or keys and wrong types are refused
with a `ConfigError` naming the file, the table and the key (or the variable or flag the
value came from); the file is validated whole, also the keys a flag or the environment
overrides. A TOML syntax error names the file, line and column; `config.example.toml`
documents every key with its default (a test loads it and compares).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coordd.errors import ConfigError

__all__ = [
    "AttentionConfig",
    "Config",
    "LogConfig",
    "LoggingConfig",
    "ModeConfig",
    "MongoConfig",
    "OpenclawConfig",
    "PluginsConfig",
    "ServerConfig",
    "StateConfig",
    "StoreConfig",
    "WebConfig",
    "WebSocketConfig",
    "changed_keys",
    "load_config",
]

#: The overrides file's name, in the state directory unless `[openclaw] category_overrides`.
OVERRIDES_NAME = "work-session-category-overrides.json"
#: The old monitor's overrides file.
LEGACY_OVERRIDES = "~/.openclaw/" + OVERRIDES_NAME


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """`[server]`: the REST/WebSocket listener."""

    host: str = "127.0.0.1"
    port: int = 3847
    write_token: str = ""
    shutdown_grace: float = 5.0
    max_body_bytes: int = 65536
    max_query_bytes: int = 8192
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LogConfig:
    """`[log]`: the coordination log and how it is followed."""

    path: str = "~/.openclaw/logs/coordination-events.ndjson"
    watch: Literal["auto", "inotify", "poll"] = "auto"
    poll_interval: float = 1.0
    max_line_bytes: int = 1048576
    read_rotated: bool = True


@dataclass(frozen=True, slots=True)
class OpenclawConfig:
    """`[openclaw]`: files shared with the agent gateway."""

    config: str = "~/.openclaw/openclaw.json"
    #: Empty: `work-session-category-overrides.json` in the state directory.
    category_overrides: str = ""


@dataclass(frozen=True, slots=True)
class StateConfig:
    """`[state]`: where the checkpoint (and the shutdown snapshot) live."""

    dir: str = ""
    checkpoint_interval: float = 1.0
    snapshot: bool = True


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """`[store]`: the in-memory event window."""

    max_events: int = 100000


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    """`[websocket]`: live push."""

    replay_window: int = 10000
    heartbeat: float = 20.0
    client_queue: int = 2048


@dataclass(frozen=True, slots=True)
class AttentionConfig:
    """`[attention]`: when work counts as stuck (seconds)."""

    reply_timeout: float = 600.0
    silent_after: float = 1800.0
    closed_kept: int = 1000


@dataclass(frozen=True, slots=True)
class WebConfig:
    """`[web]`: the console at `/ui/`. `base_path` is the path prefix a reverse proxy
    publishes the daemon under (`/coordd`: the console is `https://host/coordd/ui/`);
    empty when it is served at the root."""

    base_path: str = ""


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """`[logging]`: the daemon's own log on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["plain", "json"] = "plain"


@dataclass(frozen=True, slots=True)
class MongoConfig:
    """`[mongo]`: the optional durable tier (empty `uri` = in memory only)."""

    uri: str = ""
    database: str = "task_monitor"
    server_selection_timeout: float = 2.0
    operation_timeout: float = 10.0
    ttl_days: int = 90
    batch_size: int = 200
    batch_interval: float = 0.2
    buffer_events: int = 10000
    backoff_max: float = 30.0
    max_threads: int = 4


@dataclass(frozen=True, slots=True)
class ModeConfig:
    """`[mode]`: `follower` serves the API from MongoDB without the log (needs `[mongo]
    uri`); `poll_interval` is how often a follower looks for new events when the server
    offers no change streams."""

    follower: bool = False
    poll_interval: float = 0.5


@dataclass(frozen=True, slots=True)
class PluginsConfig:
    """`[plugins]`: `disabled` names, and one free-form `[plugins.<name>]` table per plugin."""

    disabled: tuple[str, ...] = ()
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. `source` is the TOML file it came from, if any."""

    server: ServerConfig = field(default_factory=ServerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    openclaw: OpenclawConfig = field(default_factory=OpenclawConfig)
    state: StateConfig = field(default_factory=StateConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    web: WebConfig = field(default_factory=WebConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    mongo: MongoConfig = field(default_factory=MongoConfig)
    mode: ModeConfig = field(default_factory=ModeConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    source: str | None = None

    # Resolved paths (`~` expanded against $HOME; relative paths against the config file).
    def log_path(self) -> Path:
        return self._path(self.log.path)

    def openclaw_config_path(self) -> Path:
        return self._path(self.openclaw.config)

    def overrides_path(self, env: Mapping[str, str] | None = None) -> Path:
        """`[openclaw] category_overrides`, else the file of that name in the state
        directory (writable under the systemd unit, unlike the home directory)."""
        if self.openclaw.category_overrides:
            return self._path(self.openclaw.category_overrides)
        return self.state_dir(env) / OVERRIDES_NAME

    def legacy_overrides_path(self) -> Path | None:
        """Where the old monitor kept the overrides, read once when the default file in
        the state directory does not exist yet; None when `category_overrides` is set."""
        if self.openclaw.category_overrides:
            return None
        return Path(os.path.expanduser(LEGACY_OVERRIDES))

    def state_dir(self, env: Mapping[str, str] | None = None) -> Path:
        """`[state] dir`, else `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/coordd`, else
        `~/.local/state/coordd`."""
        if self.state.dir:
            return self._path(self.state.dir)
        env = os.environ if env is None else env
        if env.get("STATE_DIRECTORY"):
            # systemd may pass several, separated by ':'; the first is ours.
            return Path(env["STATE_DIRECTORY"].split(":")[0])
        if env.get("XDG_STATE_HOME"):
            return Path(env["XDG_STATE_HOME"]) / "coordd"
        return Path(os.path.expanduser("~/.local/state/coordd"))

    def _path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        if not p.is_absolute() and self.source:
            p = Path(self.source).resolve().parent / p
        return p


_TABLES: dict[str, type] = {
    "server": ServerConfig,
    "log": LogConfig,
    "openclaw": OpenclawConfig,
    "state": StateConfig,
    "store": StoreConfig,
    "websocket": WebSocketConfig,
    "attention": AttentionConfig,
    "web": WebConfig,
    "logging": LoggingConfig,
    "mongo": MongoConfig,
    "mode": ModeConfig,
}

#: Command-line flags -> (table, key), to name the flag in messages.
FLAGS: dict[tuple[str, str], str] = {
    ("server", "host"): "--host",
    ("server", "port"): "--port",
    ("log", "path"): "--log",
    ("state", "dir"): "--state-dir",
    ("logging", "level"): "--log-level",
    ("logging", "format"): "--log-format",
    ("mode", "follower"): "--follower",
}

#: Environment overrides: variable -> (table, key). Blank values are ignored.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "TASK_MONITOR_HOST": ("server", "host"),
    "TASK_MONITOR_PORT": ("server", "port"),
    "TASK_MONITOR_WRITE_TOKEN": ("server", "write_token"),
    "MONGODB_URI": ("mongo", "uri"),
}

_ORIGIN = re.compile(r"\*|[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#@]+/?")
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*")
_HOST = re.compile(r"\*|[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]")

_CHECKS: dict[str, tuple[str, Any]] = {
    # key -> (description, predicate) for values that must be in range
    "port": ("a port: an integer from 0 to 65535 (0: any free port)", lambda v: 0 <= v <= 65535),
    "write_token": ("a token with at least one non-space character, or \"\" (empty: only "
                    "loopback peers may write)", lambda v: v == "" or bool(v.strip())),
    "poll_interval": ("a number above 0", lambda v: v > 0),
    "max_line_bytes": ("an integer of at least 1024", lambda v: v >= 1024),
    "max_events": ("an integer of at least 1", lambda v: v >= 1),
    "replay_window": ("an integer of at least 0", lambda v: v >= 0),
    "heartbeat": ("a number above 0", lambda v: v > 0),
    "client_queue": ("an integer of at least 1", lambda v: v >= 1),
    "reply_timeout": ("a number of seconds above 0", lambda v: v > 0),
    "silent_after": ("a number of seconds above 0", lambda v: v > 0),
    "closed_kept": ("an integer of at least 0", lambda v: v >= 0),
    "shutdown_grace": ("a number of at least 0", lambda v: v >= 0),
    "checkpoint_interval": ("a number above 0", lambda v: v > 0),
    "max_body_bytes": ("an integer of at least 1", lambda v: v >= 1),
    "max_query_bytes": ("an integer of at least 1", lambda v: v >= 1),
    "server_selection_timeout": ("a number above 0", lambda v: v > 0),
    "ttl_days": ("an integer of at least 0", lambda v: v >= 0),
    "operation_timeout": ("a number above 0", lambda v: v > 0),
    "batch_size": ("an integer of at least 1", lambda v: v >= 1),
    "batch_interval": ("a number of at least 0", lambda v: v >= 0),
    "buffer_events": ("an integer of at least 1", lambda v: v >= 1),
    "backoff_max": ("a number above 0", lambda v: v > 0),
    "max_threads": ("an integer of at least 1", lambda v: v >= 1),
    "allowed_origins": ('a list of origins such as "http://localhost:3102" (scheme://host[:port], '
                        'no path), or ["*"] for any', lambda v: all(map(_ORIGIN.fullmatch, v))),
    "base_path": ('a path prefix such as "/coordd" (starting with "/", no trailing "/", no '
                  'query), or "" for none', lambda v: bool(_BASE_PATH.fullmatch(v))),
    "allowed_hosts": ('a list of host names such as "coordd.example.org" (no scheme, port or '
                      'path), or ["*"] for any', lambda v: all(map(_HOST.fullmatch, v))),
}


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _coerce(where: str, tp: Any, value: Any) -> Any:
    """Check `value` against the annotated type; `where` names file, table and key."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")


def _from_env(tp: Any, where: str, raw: str) -> Any:
    if tp is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {raw!r}") from None
    return raw.strip() if tp is not str else raw


#: A value and where it came from (file, table and key; variable; flag), for messages.
_Sourced = tuple[Any, str]


def _build_table(cls: type, values: Mapping[str, _Sourced]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, (value, where) in values.items():
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(f"{where}: unknown key (known keys: {known})")
        value = _coerce(where, hints[key], value)
        check = _CHECKS.get(key)
        if check is not None and not check[1](value):
            raise ConfigError(f"{where}: expected {check[0]}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _plugins_table(values: Mapping[str, _Sourced], file: str) -> PluginsConfig:
    disabled: tuple[str, ...] = ()
    settings: dict[str, Mapping[str, Any]] = {}
    for key, (value, where) in values.items():
        if key == "disabled":
            disabled = _coerce(where, tuple[str, ...], value)
        elif isinstance(value, dict):
            settings[key] = types.MappingProxyType(dict(value))
        else:
            raise ConfigError(
                f"{where}: unknown key (use `disabled = [...]` or a [plugins.{key}] table)"
            )
    return PluginsConfig(disabled=disabled, settings=types.MappingProxyType(settings))


def _build_all(tables: Mapping[str, Mapping[str, _Sourced]], file: str) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for name, cls in _TABLES.items():
        built[name] = _build_table(cls, tables.get(name, {}))
    built["plugins"] = _plugins_table(tables.get("plugins", {}), file)
    return built


def _read_toml(path: str | Path, file: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{file}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{file}:{line}: invalid TOML: not UTF-8 text (byte {e.start}); "
                          "save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_toml_problem(file, text, e)) from None


def _toml_problem(file: str, text: str, e: tomllib.TOMLDecodeError) -> str:
    """`<file>:<line>:<column>: invalid TOML: <what>` (the form editors jump to)."""
    message = str(e)
    at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if at is not None:
        return f"{file}:{at.group(1)}:{at.group(2)}: invalid TOML: {message[:at.start()]}"
    end = re.search(r"\s*\(at end of document\)$", message)
    if end is not None:
        last = max(1, len(text.splitlines()))
        return f"{file}:{last}: invalid TOML: {message[:end.start()]} (at the end of the file)"
    return f"{file}: invalid TOML: {message}"


def _file_tables(raw: Mapping[str, Any], file: str) -> dict[str, dict[str, _Sourced]]:
    tables: dict[str, dict[str, _Sourced]] = {}
    for name, values in raw.items():
        if name != "plugins" and name not in _TABLES:
            known = ", ".join([*_TABLES, "plugins"])
            raise ConfigError(f"{file}: [{name}]: unknown table (known tables: {known})")
        if not isinstance(values, dict):
            raise ConfigError(f"{file}: {name}: expected a table, got {values!r}")
        tables[name] = {key: (value, f"{file}: [{name}] {key}") for key, value in values.items()}
    return tables


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Load `path` (or only defaults when None), then apply the environment and `overrides`.

    `overrides` are the command-line flags as `{table: {key: value}}`. Raises `ConfigError`
    for a missing or unreadable file, invalid TOML (naming line and column), unknown
    tables or keys and wrong types. The file is validated whole, also the keys the
    environment or a flag overrides; a message names where the bad value came from.
    """
    env = os.environ if env is None else env
    file = str(path) if path is not None else "<defaults>"
    tables = _file_tables(_read_toml(path, file) if path is not None else {}, file)
    _build_all(tables, file)  # the file alone: a wrong type is an error even if overridden

    for var, (table, key) in ENVIRONMENT.items():
        value = env.get(var)
        if value is not None and value.strip():
            where = f"${var} ([{table}] {key})"
            tp = typing.get_type_hints(_TABLES[table])[key]
            tables.setdefault(table, {})[key] = (_from_env(tp, where, value), where)

    for table, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                where = f"{FLAGS.get((table, key), 'the command line')} ([{table}] {key})"
                tables.setdefault(table, {})[key] = (value, where)

    built = _build_all(tables, file)
    if built["mode"].follower and not built["mongo"].uri:
        raise ConfigError(f"{file}: [mode] follower: a follower reads MongoDB: set [mongo] uri "
                          "(or MONGODB_URI)")
    return Config(**built, source=str(path) if path is not None else None)


def changed_keys(old: Config, new: Config) -> list[str]:
    """The `table.key` names whose values differ between `old` and `new` (`plugins` for
    the whole plugin table), for a reload."""
    out = []
    for table in ("server", "log", "openclaw", "state", "store", "websocket", "web", "logging",
                  "mongo", "mode"):
        a, b = getattr(old, table), getattr(new, table)
        for key in a.__dataclass_fields__:
            if getattr(a, key) != getattr(b, key):
                out.append(f"{table}.{key}")
    if old.plugins != new.plugins:
        out.append("plugins")
    return out
