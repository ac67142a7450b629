"""`coordd --check`: a health probe an operator (or a monitoring system) can run.

`coordd --check` asks the running daemon (`/api/health`) and reports what it reports; no
daemon answering is CRITICAL. `coordd --check --offline` is the validation to run before
a start, without a daemon: configuration, log, state directory, openclaw.json, plugins
and MongoDB, checked the way the daemon would use them.

Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN (the probe itself could not run). `--json` prints
`{"status": "pass"|"warn"|"fail", "checks": {"<component>": [{"status", "observedValue",
"output"}]}}`; the plain form prints one line per check, with what to do about a failure.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coordd.config import Config, load_config
from coordd.core.health import RANK, Check, grouped, worst
from coordd.errors import CoorddError
from coordd.tail.checkpoint import Checkpoint, FileId, read_checkpoint
from coordd.tail.snapshot import SNAPSHOT_NAME, snapshot_header

__all__ = ["daemon_url", "exit_code", "render_json", "render_plain", "run_checks"]

_EXIT = {"pass": 0, "warn": 1, "fail": 2}


def overall(checks: list[Check]) -> str:
    return worst(checks)


def exit_code(checks: list[Check]) -> int:
    return _EXIT[overall(checks)]


def check_config(path: str | None, overrides: Mapping[str, Mapping[str, Any]]) -> tuple[
        Config | None, Check]:
    try:
        cfg = load_config(path, overrides=overrides)
    except CoorddError as e:
        return None, Check("config", "fail", str(e),
                           hint="fix the named key, then run --check again")
    where = path or "built-in defaults (no --config)"
    return cfg, Check("config", "pass", f"loaded {where}")


def check_log(cfg: Config) -> Check:
    path = cfg.log_path()
    if not path.parent.is_dir():
        return Check("log", "warn", f"directory {path.parent} does not exist; coordd creates "
                     "it at start and waits for the log",
                     hint="check [log] path, or start the agent gateway that writes the log")
    if not path.exists():
        return Check("log", "warn", f"{path} does not exist yet; coordd waits for it",
                     hint="check [log] path, or start the agent gateway that writes the log")
    if not os.access(path, os.R_OK):
        return Check("log", "fail", f"{path} is not readable by uid {os.getuid()}",
                     hint="grant read access to the log (and its directory) to coordd's user")
    size = path.stat().st_size
    return Check("log", "pass", f"{path} readable", {"bytes": size})


def check_state(cfg: Config) -> list[Check]:
    state = cfg.state_dir()
    out: list[Check] = []
    try:
        state.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state, prefix=".probe-"):
            pass
    except OSError as e:
        return [Check("state", "fail", f"state directory {state} not writable: {e.strerror or e}",
                      hint="create it and give coordd's user write access, or set [state] dir")]
    out.append(Check("state", "pass", f"state directory {state} writable"))
    try:
        cp = read_checkpoint(state)
    except ValueError as e:
        out.append(Check("state", "warn", f"checkpoint is corrupt ({e}): the next start moves it "
                         "aside and begins a new epoch (clients resync)",
                         hint="nothing to do unless it keeps happening (disk problems?)"))
        return out
    except OSError as e:
        return [*out, Check("state", "fail", f"checkpoint unreadable: {e.strerror or e}",
                            hint="give coordd's user read access to its state directory")]
    if cp is None:
        out.append(Check("state", "pass", "no checkpoint yet: the next start reads the whole log"))
        return out
    where = _locate(cp.file, cfg.log_path())
    if where is None:
        out.append(Check("state", "warn",
                         "checkpoint names a file that is no longer there: the next start begins "
                         "a new epoch (clients resync)", {"seq": cp.seq, "epoch": cp.epoch},
                         hint="nothing to do unless this is unexpected (log deleted or replaced)"))
    else:
        size = where.stat().st_size
        status = "pass" if cp.offset <= size else "warn"
        out.append(Check("state", status,
                         f"checkpoint at byte {cp.offset} of {where.name} (seq {cp.seq})",
                         {"offset": cp.offset, "size": size, "seq": cp.seq, "epoch": cp.epoch}))
        if cfg.state.snapshot:
            out.append(_check_snapshot(state, cp))
    return out


def _check_snapshot(state: Path, cp: Checkpoint) -> Check:
    try:
        found = snapshot_header(state)
    except (OSError, ValueError) as e:
        return Check("state", "warn", f"{SNAPSHOT_NAME} is not a usable snapshot ({e}): the "
                     "next start reads the log", hint="the next clean stop rewrites it")
    if found is None:
        return Check("state", "pass", "no snapshot: the next start reads the log (a clean stop "
                     "writes one)")
    written_for, count = found
    if written_for != cp:
        return Check("state", "pass", f"snapshot is for seq {written_for.seq}, the checkpoint "
                     f"is at {cp.seq} (not stopped cleanly since): the next start reads the log",
                     {"snapshot_seq": written_for.seq})
    return Check("state", "pass", f"snapshot of {count} events for the checkpoint: the next "
                 "start loads it (unless coordd, the plugins or the main agents changed)",
                 {"snapshot_events": count})


def _locate(file: FileId, log_path: Path) -> Path | None:
    """The file (live or rotated sibling) whose device and inode the checkpoint names."""
    candidates = [log_path, *sorted(log_path.parent.glob(f"{log_path.stem}-*{log_path.suffix}"))]
    for p in candidates:
        try:
            st = p.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (file.dev, file.ino):
            return p
    return None


def check_openclaw(cfg: Config) -> Check:
    from coordd.service.mainagents import MainAgents

    status, message = MainAgents(cfg.openclaw_config_path()).status()
    hint = "" if status == "pass" else "fix openclaw.json; until then only main and ruda are main"
    return Check("openclaw", status, message, hint=hint)


def check_plugins(cfg: Config) -> list[Check]:
    from coordd.plugins.host import PluginHost, allow_list_from_env

    try:
        host = PluginHost(settings=cfg.plugins.settings, disabled=cfg.plugins.disabled,
                          allow=allow_list_from_env(os.environ))
        host.start()
    except Exception as e:  # a broken plugin must not break the probe
        return [Check("plugins", "fail", f"plugins failed to load: {e}",
                      hint="uninstall the plugin or add it to [plugins] disabled")]
    out = [Check("plugins", status, f"{name}: {message}")
           for name, status, message in host.status()]
    return out or [Check("plugins", "warn", "no plugin loaded: every event gets the fallback")]


def check_mongo(cfg: Config) -> list[Check]:
    """MongoDB reachable, with the unique eventHash index (only when `[mongo] uri` is set)."""
    if not cfg.mongo.uri:
        return []
    try:
        import pymongo

        from coordd.mongo.capabilities import probe
    except ImportError:
        return [Check("mongo", "fail", "[mongo] uri is set but pymongo is not installed",
                      hint="pip install 'coordd[mongo]'")]
    timeout_ms = int(cfg.mongo.server_selection_timeout * 1000)
    client: Any = pymongo.MongoClient(cfg.mongo.uri, serverSelectionTimeoutMS=timeout_ms,
                                      connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        info = client[cfg.mongo.database]["coordination_events"].index_information()
        caps = probe(client[cfg.mongo.database])
    except Exception as e:  # any driver error is "not reachable" to an operator
        message = f"MongoDB not reachable: {e}".splitlines()[0][:300]
        if cfg.mode.follower:
            return [Check("mongo", "fail", message,
                          hint="a follower serves only what MongoDB holds: check [mongo] uri")]
        return [Check("mongo", "warn", message,
                      hint="coordd serves from memory meanwhile; check [mongo] uri and the server")]
    finally:
        client.close()
    unique = any(spec.get("unique") and spec.get("key") == [("eventHash", 1)]
                 for spec in info.values())
    if not unique:
        return [Check("mongo", "warn", "MongoDB reachable, indexes not created yet",
                      hint="start coordd once: it creates the collections' indexes")]
    return [Check("mongo", "pass", f"MongoDB reachable, database {cfg.mongo.database!r} indexed"),
            Check("mongo-server", "pass", caps.describe(), caps.as_json())]


def daemon_url(cfg: Config) -> str:
    """The running daemon's health URL, from `[server] host`/`port` (a wildcard listen
    address is asked on loopback)."""
    host = cfg.server.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{('[' + host + ']') if ':' in host else host}:{cfg.server.port}/api/health"


def check_daemon(cfg: Config, timeout: float = 2.0) -> list[Check]:
    """The running daemon's `/api/health`: one `daemon` check, then every component check
    the daemon reports, as it reports them. No daemon answering is critical."""
    url = daemon_url(cfg)
    try:
        status, body = _get_json(url, timeout)
    except (OSError, ValueError) as e:
        return [Check("daemon", "fail", f"no daemon answers at {url} ({_reason(e)})",
                      hint="start it (systemctl start coordd), check --host/--port/--config, "
                           "or validate a configuration before a start with --check --offline")]
    reported = _reported_checks(body)
    failing = [c.component for c in reported if c.status != "pass"]
    if status >= 500 or body.get("status") not in ("ok", "pass"):
        head = Check("daemon", "fail", f"running daemon at {url} reports {status}: "
                     f"{', '.join(failing) or 'no detail'}",
                     hint="see the daemon's log: journalctl -u coordd")
    elif failing:
        head = Check("daemon", "warn", f"running daemon at {url} reports warnings in: "
                     f"{', '.join(failing)}", {"url": url}, hint="see the lines below")
    else:
        head = Check("daemon", "pass", f"running daemon healthy at {url}")
    return [head, *reported]


def _get_json(url: str, timeout: float) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body, status = json.loads(resp.read()), resp.status
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read())
        except ValueError:
            body = {}
        status = e.code
    return status, body if isinstance(body, dict) else {}


def _reported_checks(body: Mapping[str, Any]) -> list[Check]:
    checks = body.get("checks")
    out = []
    for name, items in (checks.items() if isinstance(checks, dict) else ()):
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                status = item.get("status")
                out.append(Check(str(name), status if status in RANK else "warn",
                                 str(item.get("output", "")), item.get("observedValue")))
    return out


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    return str(reason if reason is not None else e)


def run_checks(
    path: str | None, overrides: Mapping[str, Mapping[str, Any]] | None = None, *,
    offline: bool = False,
) -> list[Check]:
    """The health probe: the configuration, then the running daemon's own health (no
    daemon answering is critical). `offline`: the pre-start validation instead, without
    a daemon: configuration, log, state directory, openclaw.json, plugins, MongoDB. A
    follower has no log and no checkpoint: MongoDB is its only source, so an unreachable
    server is critical there."""
    cfg, first = check_config(path, overrides or {})
    checks = [first]
    if cfg is None:
        return checks
    if not offline:
        return checks + check_daemon(cfg)
    if not cfg.mode.follower:
        checks.append(check_log(cfg))
        checks += check_state(cfg)
    checks.append(check_openclaw(cfg))
    checks += check_plugins(cfg)
    checks += check_mongo(cfg)
    return checks


def render_json(checks: list[Check]) -> str:
    return json.dumps({"status": overall(checks), "checks": grouped(checks)}, indent=2,
                      ensure_ascii=False)


def render_plain(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        line = f"{c.status.upper():4} {c.component}: {c.output}"
        if c.status != "pass" and c.hint:
            line += f" -> {c.hint}"
        lines.append(line)
    lines.append(f"overall: {overall(checks).upper()}")
    return "\n".join(lines)
