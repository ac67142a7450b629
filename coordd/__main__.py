"""The `coordd` command line: `main(argv) -> int`.

    coordd [run] [options]          run the daemon (the default)
    coordd --check [--json]         health probe of the running daemon: 0 OK, 1 WARNING,
                                    2 CRITICAL (also: no daemon), 3 UNKNOWN
    coordd --check --offline        the same checks before a start, without a daemon
    coordd plugins [--json]         installed plugins: name, version, state, hooks, categories
    coordd demo [options]           the daemon on a live synthetic log
    coordd watch [options]          follow the live stream of a running daemon
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from coordd import __version__
from coordd.errors import CoorddError

__all__ = ["console_main", "main"]

log = logging.getLogger("coordd")

EXIT_OK, EXIT_CRASH, EXIT_USAGE = 0, 1, 2


def _common(p: argparse.ArgumentParser, *, sub: bool = True) -> None:
    # On subcommands the defaults are suppressed, so `coordd --port 1 run` keeps the port
    # given before the subcommand (argparse would otherwise reset it to None).
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("--config", metavar="FILE", help="TOML configuration file", **d)
    p.add_argument("--host", help="listen address ([server] host; env TASK_MONITOR_HOST)", **d)
    p.add_argument("--port", type=int, help="listen port ([server] port; env TASK_MONITOR_PORT)",
                   **d)
    p.add_argument("--log", metavar="PATH", help="coordination log to follow ([log] path)", **d)
    p.add_argument("--state-dir", metavar="DIR", help="checkpoint directory ([state] dir)", **d)
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                   type=str.upper, help="daemon log level ([logging] level)", **d)
    p.add_argument("--log-format", choices=["plain", "json"], help="([logging] format)", **d)
    p.add_argument("--json", action="store_true",
                   help="JSON output (--check, plugins; watch: one JSON object per event)", **d)
    p.add_argument("--follower", action="store_true",
                   help="serve the API from MongoDB without the log ([mode] follower)", **d)


def _offline(p: argparse.ArgumentParser, *, sub: bool = False) -> None:
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("--offline", action="store_true",
                   help="with --check: validate the configuration, log, state directory and "
                        "plugins before a start, without asking a running daemon", **d)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coordd",
        description="Follow a multi-agent coordination log and serve work sessions "
                    "over REST and WebSocket.",
    )
    parser.add_argument("--version", action="version", version=f"coordd {__version__}")
    parser.add_argument("--check", action="store_true",
                        help="ask the running daemon for its health and exit "
                             "(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; no daemon: CRITICAL)")
    _offline(parser)
    _common(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon (default)")
    _common(run)
    chk = sub.add_parser("check", help="same as --check")
    _common(chk)
    _offline(chk, sub=True)
    plg = sub.add_parser("plugins", help="list plugins: name, version, state (why disabled), "
                         "hooks, declared categories")
    _common(plg)
    demo = sub.add_parser("demo", help="run the daemon on a live synthetic log")
    _common(demo)
    demo.add_argument("--rate", type=float, default=20.0, help="events per second (default 20)")
    demo.add_argument("--seed", type=int, default=None)
    watch = sub.add_parser("watch", help="follow a running daemon's live stream")
    _common(watch)
    watch.add_argument("--url", help="WebSocket URL (default from --host/--port)")
    watch.add_argument("--type", action="append", default=[], help="event type (repeatable, CSV)")
    watch.add_argument("--role", action="append", default=[], help="event role (repeatable, CSV)")
    watch.add_argument("--agent", action="append", default=[], help="agent id (repeatable, CSV)")
    watch.add_argument("--session", action="append", default=[],
                       help="work-session id (repeatable, CSV)")
    watch.add_argument("--max-events", type=int, default=None, help="exit after N events")
    return parser


def cli_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Command-line flags as `load_config` overrides (None = not given)."""
    return {
        "server": {"host": args.host, "port": args.port},
        "log": {"path": args.log},
        "state": {"dir": args.state_dir},
        "logging": {"level": args.log_level, "format": args.log_format},
        # Only when given: `store_true` would otherwise turn off `[mode] follower = true`.
        "mode": {"follower": True if getattr(args, "follower", False) else None},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    command = "check" if args.check else (args.command or "run")
    if getattr(args, "offline", False) and command != "check":
        parser.error("--offline goes with --check (coordd --check --offline)")
    try:
        if command == "check":
            return _check(args)
        if command == "plugins":
            return _plugins(args)
        if command == "run":
            return _run(args)
        if command == "demo":
            return _demo(args)
        if command == "watch":
            return _watch(args)
    except CoorddError as e:
        print(f"coordd: {e}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {command!r}")
    return EXIT_USAGE  # pragma: no cover - parser.error exits


def console_main() -> None:
    sys.exit(main())


def _check(args: argparse.Namespace) -> int:
    from coordd.cli.check import exit_code, render_json, render_plain, run_checks

    try:
        checks = run_checks(args.config, cli_overrides(args), offline=args.offline)
    except Exception as e:  # the probe itself failed: UNKNOWN
        if args.json:
            print(json.dumps({"status": "fail", "checks": {}, "error": str(e)}))
        else:
            print(f"UNKNOWN: the probe failed: {e}")
        return 3
    print(render_json(checks) if args.json else render_plain(checks))
    return exit_code(checks)


def _plugins(args: argparse.Namespace) -> int:
    from coordd.config import load_config
    from coordd.plugins.host import PluginHost, allow_list_from_env

    cfg = load_config(args.config, overrides=cli_overrides(args))
    host = PluginHost(settings=cfg.plugins.settings, disabled=cfg.plugins.disabled,
                      allow=allow_list_from_env(os.environ))
    host.start()
    rows = host.describe()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    for row in rows:
        print(_plugin_line(row))
    return EXIT_OK


def _plugin_line(row: dict[str, Any]) -> str:
    """One plugin for `coordd plugins`: name, version, state (with why it is disabled),
    hooks and the categories it declares."""
    state = "enabled" if row.get("enabled") else f"disabled: {row.get('reason') or 'unknown'}"
    line = (f"{row.get('name')} {row.get('version') or ''} [{state}] hooks: "
            f"{', '.join(row.get('hooks', [])) or '-'}")
    if row.get("categories"):
        line += f"; categories: {', '.join(row['categories'])}"
    return line


def _run(args: argparse.Namespace, *, config_overrides: dict[str, dict[str, Any]] | None = None,
         tasks: Mapping[str, Callable[..., Any]] | None = None,
         on_ready: Callable[[Any], None] | None = None) -> int:
    """Run the daemon until it stops; `tasks` (by name) run in its root nursery, started
    first; `on_ready` is called with the `ServiceInfo` once it listens."""
    import trio

    from coordd.config import load_config
    from coordd.errors import ComponentCrashed, ListenError
    from coordd.service.logs import setup_logging
    from coordd.service.service import Service

    overrides = config_overrides or cli_overrides(args)
    cfg = load_config(args.config, overrides=overrides)
    setup_logging(cfg.logging.level, cfg.logging.format)
    service = Service(cfg, cli_overrides=overrides, tasks=tasks)

    async def _main() -> None:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(service.run)
            if on_ready is not None:
                on_ready(info)

    try:
        trio.run(_main)
    except BaseExceptionGroup as group:
        unbound, _ = group.split(ListenError)
        if unbound is not None:
            for e in _leaves(unbound):
                print(f"coordd: {e}", file=sys.stderr)
            return EXIT_CRASH
        crashed, rest = group.split(ComponentCrashed)
        if crashed is not None:
            log.critical("exiting: %s", "; ".join(str(e) for e in _leaves(crashed)))
            return EXIT_CRASH
        if rest is not None:
            config_errors, other = rest.split(CoorddError)
            if config_errors is not None and other is None:
                for e in _leaves(config_errors):
                    print(f"coordd: {e}", file=sys.stderr)
                return EXIT_USAGE
        raise
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for e in group.exceptions for leaf in _leaves(e)]
    return [group]


def _demo(args: argparse.Namespace) -> int:
    """The daemon on a live synthetic log in a temporary directory, removed on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="coordd-demo-"))
    try:
        return _demo_in(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _demo_in(args: argparse.Namespace, workdir: Path) -> int:
    from functools import partial

    from coordd.cli.demo import run_demo
    from coordd.synth.gen import AGENTS

    log_path = workdir / "logs" / "coordination-events.ndjson"
    log_path.parent.mkdir(parents=True)
    overrides = cli_overrides(args)
    overrides["log"]["path"] = str(log_path)
    overrides["state"]["dir"] = args.state_dir or str(workdir / "state")
    # The synthetic agents are the configured ones, as in a real gateway's openclaw.json.
    (workdir / "openclaw.json").write_text(
        json.dumps({"agents": {"list": [{"id": a} for a in AGENTS]}}, indent=2))
    overrides["openclaw"] = {
        "config": str(workdir / "openclaw.json"),
        "category_overrides": str(workdir / "work-session-category-overrides.json"),
    }
    overrides["log"]["poll_interval"] = 0.5
    print(f"coordd demo: synthetic log at {log_path} ({args.rate:g} events/s); this "
          "directory is removed on exit", file=sys.stderr)
    return _run(args, config_overrides=overrides, on_ready=_demo_banner,
                tasks={"demo": partial(run_demo, log_path, rate=args.rate, seed=args.seed)})


def _program() -> str:
    """How this program was started (`.venv/bin/coordd` from `make demo`), else `coordd`."""
    name = sys.argv[0] if sys.argv else ""
    return name if os.path.basename(name) == "coordd" else "coordd"


def _demo_banner(info: Any) -> None:
    """Where to look once the demo daemon listens."""
    base = info.urls[0] if info.urls else f"http://127.0.0.1:{info.port}"
    host = base.split("://", 1)[1].rsplit(":", 1)[0]
    host_flag = "" if host == "127.0.0.1" else f" --host {host.strip('[]')}"
    from coordd.cli.demo import console_url

    print("\n".join([
        "coordd demo is running; open:",
        f"  {console_url(base)}                      the web console (in a browser)",
        f"  {base}/api/work-sessions        the work sessions",
        f"  {base}/api/events?limit=20      the latest events",
        f"  {base}/api/stats                figures by category, role and agent pair",
        f"follow it live in another terminal:  {_program()} watch{host_flag} --port {info.port}",
        "Ctrl-C stops the demo.",
    ]), flush=True)


def _watch(args: argparse.Namespace) -> int:
    from coordd.cli.watch import watch_main

    return watch_main(args)


if __name__ == "__main__":
    sys.exit(main())
