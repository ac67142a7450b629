"""The typed plugin host: loads plugins and is the only code that calls their hooks.

Loading: every entry point of the group `coordd` (the built-in keyword classifier
included; when coordd runs from a source tree without installed metadata, the
built-ins are loaded from the same entry-point definitions in code), minus
`[plugins] disabled`, restricted to the environment allow-list when one is given
(`COORDD_PLUGINS`), plus `extra` objects registered directly (tests). A plugin that
cannot be imported, registered or started is reported (`status()`, `describe()`, the
log) and left out; coordd runs on without it.

Isolation: hooks are called plugin by plugin, each with its own `[plugins.<name>]`
settings, never as one pluggy call, so one plugin's failure cannot hide the others'
answers. For `coordd_classify_event` a call that raises, returns an invalid
classification, or takes longer than `budget` seconds is discarded (the next
classifier answers, ultimately the built-in one), counted per plugin and logged at
most once per `log_interval` per plugin and kind. A call cannot be interrupted (the
enrichment worker thread runs it to the end), so a plugin that is slow `slow_limit`
times in a row is suspended for `cooldown` seconds: its events get the built-in result
meanwhile, then it is tried again. Built-in plugins are exempt from the budget.

Thread safety: `classify` may run in one worker thread at a time while the event
loop reads `statistics()`, `status()` and `describe()`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import pluggy

from coordd import __version__, hookspecs
from coordd.hookspecs import Classification
from coordd.model import CATEGORIES

__all__ = [
    "BUILTIN_ENTRY_POINTS",
    "ENTRY_POINT_GROUP",
    "PluginCallStats",
    "PluginHost",
    "PluginStats",
    "validate_classification",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "coordd"
#: The built-ins, as pyproject.toml declares them (used when coordd's metadata is absent).
BUILTIN_ENTRY_POINTS: Final = {"keywords": "coordd.default_plugins.keywords"}
_RESERVED_SOURCES: Final = frozenset({"manual", "fallback"})
_MAX_SUB_TAGS: Final = 5
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PluginCallStats:
    """Counters of one plugin's `coordd_classify_event` calls."""

    calls: int
    answers: int
    errors: Mapping[str, int]  # kind ("raised", "invalid", "slow") -> count
    seconds: float
    suspended: bool
    suspensions: int


@dataclass(frozen=True, slots=True)
class PluginStats:
    """A snapshot of every loaded plugin's call counters, by plugin name."""

    plugins: Mapping[str, PluginCallStats]


def validate_classification(value: object, categories: frozenset[str]) -> str | None:
    """Why `value` is not an acceptable classifier answer, or None when it is."""
    if type(value) is not Classification:
        return f"returned {type(value).__name__}, not Classification"
    if type(value.category) is not str or value.category not in categories:
        return f"unknown category {value.category!r}"
    tags = value.sub_tags
    if not isinstance(tags, list | tuple):
        return f"sub_tags is {type(tags).__name__}, not a list or tuple"
    if len(tags) > _MAX_SUB_TAGS:
        return f"{len(tags)} sub_tags (at most {_MAX_SUB_TAGS})"
    if any(type(t) is not str or not t for t in tags):
        return "sub_tags must be non-empty strings"
    conf = value.confidence
    if type(conf) not in (int, float) or not (math.isfinite(conf) and 0 <= conf <= 1):
        return f"confidence {conf!r} is not a number in [0, 1]"
    if value.source is not None and (type(value.source) is not str or not value.source
                                     or value.source in _RESERVED_SOURCES):
        return f"source {value.source!r} is not allowed"
    if value.version is not None and (type(value.version) is not str or not value.version):
        return f"version {value.version!r} is not a non-empty string"
    return None


@dataclass(eq=False)
class _Plugin:
    """Everything the host knows about one plugin, loaded or not."""

    name: str
    origin: str
    version: str | None = None
    obj: object | None = None
    builtin: bool = False
    enabled: bool = True
    reason: str | None = None  # why not enabled
    warnings: list[str] = dataclasses.field(default_factory=list)
    settings: Mapping[str, Any] = dataclasses.field(default_factory=lambda: _EMPTY)
    # classify counters, written by the worker thread only
    calls: int = 0
    answers: int = 0
    seconds: float = 0.0
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    strikes: int = 0
    suspended_until: float | None = None
    suspensions: int = 0
    last_log: dict[str, float] = dataclasses.field(default_factory=dict)
    suppressed: Counter[str] = dataclasses.field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Link:
    """One classifier in the chain, with what calling it needs precomputed."""

    plugin: _Plugin
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    kwargnames: tuple[str, ...]
    timed: bool


class PluginHost:
    """Loads coordd plugins and calls their hooks in isolation (see the module doc)."""

    def __init__(
        self,
        *,
        settings: Mapping[str, Mapping[str, Any]] = _EMPTY,
        disabled: Iterable[str] = (),
        allow: Iterable[str] | None = None,
        load_entry_points: bool = True,
        extra: Iterable[object] = (),
        budget: float = 0.1,
        slow_limit: int = 3,
        cooldown: float = 60.0,
        log_interval: float = 60.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Discover, import and register plugins; hooks run from `start()` on.

        `extra` holds plugin objects (or `(name, plugin)` pairs) registered directly
        and unconditionally except for `disabled`; they are asked before entry-point
        plugins. `clock` (seconds, monotonic) measures call durations and cool-downs.
        """
        self._settings = {str(k): MappingProxyType(dict(v)) for k, v in settings.items()}
        self._disabled = frozenset(disabled)
        self._allow = None if allow is None else frozenset(allow)
        self._budget = budget
        self._slow_limit = max(1, slow_limit)
        self._cooldown = cooldown
        self._log_interval = log_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, _Plugin] = {}
        self._chain: tuple[_Link, ...] = ()
        self._started = False
        self._extra_categories: tuple[str, ...] = ()
        self.category_set: frozenset[str] = frozenset(CATEGORIES)
        extras = [_named(obj) for obj in extra]
        if load_entry_points:
            self._load_entry_points({name for name, _ in extras})
        for name, obj in extras:
            plugin = self._add(_Plugin(name, "extra", getattr(obj, "__version__", None)))
            if plugin.enabled:
                self._register(plugin, obj)

    # ------------------------------------------------------------------ loading

    def _add(self, plugin: _Plugin) -> _Plugin:
        if plugin.name in self._plugins:
            self._plugins[plugin.name].warnings.append(
                f"another plugin named {plugin.name!r} ({plugin.origin}) was ignored")
            plugin.enabled, plugin.reason = False, "duplicate name"
            return plugin
        if plugin.name in self._disabled:
            plugin.enabled, plugin.reason = False, "disabled by [plugins] disabled"
        elif (self._allow is not None and plugin.origin != "extra"
              and plugin.name not in self._allow):
            plugin.enabled, plugin.reason = False, "not in the plugin allow-list"
        plugin.settings = self._settings.get(plugin.name, _EMPTY)
        self._plugins[plugin.name] = plugin
        return plugin

    def _load_entry_points(self, skip: set[str]) -> None:
        found = list(md.entry_points(group=ENTRY_POINT_GROUP))
        names = {ep.name for ep in found}
        for name, value in BUILTIN_ENTRY_POINTS.items():
            if name not in names:  # running from a source tree: same definition, in code
                found.append(md.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP))
        for ep in found:
            if ep.name in skip:
                continue
            builtin = BUILTIN_ENTRY_POINTS.get(ep.name) == ep.value
            dist = getattr(ep, "dist", None)
            version = __version__ if builtin else (dist.version if dist is not None else None)
            plugin = self._add(_Plugin(ep.name, f"entry point {ep.value}", version,
                                       builtin=builtin))
            if not plugin.enabled:
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                self._fail_load(plugin, f"cannot be imported: {exc!r}", exc)
                continue
            self._register(plugin, obj)

    def _register(self, plugin: _Plugin, obj: object) -> None:
        try:
            self._pm.register(obj, name=plugin.name)
        except Exception as exc:  # PluginValidationError, or the object registered twice
            self._fail_load(plugin, f"cannot be registered: {exc}", exc)
            return
        plugin.obj = obj
        log.debug("plugin %r registered (%s)", plugin.name, plugin.origin)

    def _fail_load(self, plugin: _Plugin, reason: str, exc: BaseException | None) -> None:
        if plugin.obj is not None and self._pm.is_registered(plugin.obj):
            self._pm.unregister(plugin.obj)
        plugin.obj = None
        plugin.enabled, plugin.reason = False, f"failed: {reason}"
        log.error("plugin %r %s; coordd continues without it", plugin.name, reason,
                  exc_info=exc if exc is not None and not isinstance(
                      exc, pluggy.PluginValidationError) else None)

    def _by_object(self, obj: object) -> _Plugin | None:
        return next((p for p in self._plugins.values() if p.obj is obj), None)

    # ------------------------------------------------------------------ start-up

    def start(self) -> None:
        """Validate hook implementations, run start-up hooks, build the classifier chain.

        Idempotent. Failures are per plugin (see `status()`); this never raises for a
        plugin's sake.
        """
        if self._started:
            return
        while True:
            try:
                self._pm.check_pending()
                break
            except pluggy.PluginValidationError as exc:
                culprit = self._by_object(exc.plugin)
                if culprit is None:  # cannot happen: only the host registers plugins
                    raise
                self._fail_load(culprit, f"implements an unknown hook: {exc}", exc)
        extra: list[str] = []
        for plugin in self._loaded():
            ok, _ = self._run_setup_hook(plugin, "coordd_startup")
            if not ok:
                continue
            ok, answer = self._run_setup_hook(plugin, "coordd_categories")
            if not ok:
                continue
            for name in self._category_names(plugin, answer):
                if name not in CATEGORIES and name not in extra:
                    extra.append(name)
        self._extra_categories = tuple(extra)
        self.category_set = frozenset(CATEGORIES) | frozenset(extra)
        self._chain = self._build_chain()
        self._started = True
        for plugin in self._plugins.values():
            for warning in plugin.warnings:
                log.warning("plugin %r: %s", plugin.name, warning)
        for kind, names in (("disabled", self._disabled), ("allowed", self._allow or ()),
                            ("configured", self._settings)):
            for name in sorted(set(names) - set(self._plugins)):
                log.warning("%s plugin %r is not installed", kind, name)

    @property
    def started(self) -> bool:
        """Whether `start()` has run."""
        return self._started

    def _loaded(self) -> list[_Plugin]:
        return [p for p in self._plugins.values() if p.enabled and p.obj is not None]

    def _impl(self, plugin: _Plugin, hook: str) -> pluggy.HookImpl | None:
        caller = getattr(self._pm.hook, hook)
        return next((i for i in caller.get_hookimpls() if i.plugin is plugin.obj), None)

    def _run_setup_hook(self, plugin: _Plugin, hook: str) -> tuple[bool, Any]:
        """Call one start-up hook of one plugin: `(False, None)`, plugin dropped, if it raised."""
        impl = self._impl(plugin, hook)
        if impl is None:
            return True, None
        available = {"settings": plugin.settings}
        try:
            return True, impl.function(
                *[available[n] for n in impl.argnames],
                **{n: available[n] for n in impl.kwargnames if n in available})
        except Exception as exc:
            self._fail_load(plugin, f"{hook} raised {exc!r}", exc)
            return False, None

    def _category_names(self, plugin: _Plugin, answer: Any) -> list[str]:
        if answer is None:
            return []
        if isinstance(answer, str) or not isinstance(answer, Iterable):
            plugin.warnings.append(f"coordd_categories returned {type(answer).__name__}; ignored")
            return []
        names = []
        for name in answer:
            if type(name) is str and name and name == name.strip():
                names.append(name)
            else:
                plugin.warnings.append(f"invalid category name {name!r} ignored")
        return names

    def _build_chain(self) -> tuple[_Link, ...]:
        links = []
        # pluggy keeps implementations in reverse call order (tryfirst last).
        for impl in reversed(self._pm.hook.coordd_classify_event.get_hookimpls()):
            plugin = self._by_object(impl.plugin)
            if plugin is None:
                continue
            if impl.hookwrapper or impl.wrapper:
                plugin.warnings.append("wrappers of coordd_classify_event are not supported")
                continue
            links.append(_Link(plugin, impl.function, tuple(impl.argnames),
                               tuple(impl.kwargnames), timed=not plugin.builtin))
        return tuple(links)

    # ------------------------------------------------------------------ the hot path

    def classify(
        self,
        event: Mapping[str, Any],
        data: Mapping[str, Any],
        role: str,
        from_session_type: str,
        to_session_type: str,
    ) -> Classification | None:
        """The first valid classifier answer for one event, or None (coordd's fallback).

        Never raises because of a plugin. `source` is filled in with the plugin's
        name when the plugin left it None.
        """
        if not self._started:
            raise RuntimeError("PluginHost.start() has not been called")
        available: dict[str, Any] = {
            "event": MappingProxyType(event) if type(event) is dict else event,
            "data": MappingProxyType(data) if type(data) is dict else data,
            "role": role,
            "from_session_type": from_session_type,
            "to_session_type": to_session_type,
        }
        clock = self._clock
        for link in self._chain:
            plugin = link.plugin
            if plugin.suspended_until is not None:
                if clock() < plugin.suspended_until:
                    continue
                self._resume(plugin)
            available["settings"] = plugin.settings
            error: Exception | None = None
            start = clock()
            try:
                if link.kwargnames:
                    answer = link.function(
                        *[available[n] for n in link.argnames],
                        **{n: available[n] for n in link.kwargnames if n in available})
                else:
                    answer = link.function(*[available[n] for n in link.argnames])
            except Exception as exc:
                answer, error = None, exc
            elapsed = clock() - start
            plugin.calls += 1
            plugin.seconds += elapsed
            if link.timed:
                if elapsed > self._budget:
                    self._slow(plugin, elapsed)
                    continue
                plugin.strikes = 0
            if error is not None:
                self._failure(plugin, "raised", repr(error), error)
                continue
            if answer is None:
                continue
            problem = validate_classification(answer, self.category_set)
            if problem is not None:
                self._failure(plugin, "invalid", problem)
                continue
            plugin.answers += 1
            if answer.source is None:
                answer = dataclasses.replace(answer, source=plugin.name)
            return answer  # type: ignore[no-any-return]
        return None

    def _slow(self, plugin: _Plugin, elapsed: float) -> None:
        plugin.strikes += 1
        self._failure(plugin, "slow", f"took {elapsed:.3f} s (budget {self._budget} s)")
        if plugin.strikes >= self._slow_limit:
            with self._lock:
                plugin.suspended_until = self._clock() + self._cooldown
                plugin.suspensions += 1
            log.warning("plugin %r suspended for %g s after %d slow calls in a row; "
                        "its events get the built-in classification meanwhile",
                        plugin.name, self._cooldown, plugin.strikes)

    def _resume(self, plugin: _Plugin) -> None:
        with self._lock:
            plugin.suspended_until = None
            plugin.strikes = 0
        log.info("plugin %r resumed after its cool-down", plugin.name)

    def _failure(self, plugin: _Plugin, kind: str, detail: str,
                 exc: BaseException | None = None) -> None:
        with self._lock:
            plugin.errors[kind] += 1
        now = self._clock()
        last = plugin.last_log.get(kind)
        if last is not None and now - last < self._log_interval:
            plugin.suppressed[kind] += 1
            return
        plugin.last_log[kind] = now
        suppressed = plugin.suppressed.pop(kind, 0)
        log.warning("plugin %r: classification %s (%s); the event gets the next classifier's "
                    "answer%s", plugin.name, kind, detail,
                    f"; {suppressed} similar failures not logged" if suppressed else "",
                    exc_info=exc)

    # ------------------------------------------------------------------ introspection

    def categories(self) -> tuple[str, ...]:
        """The ten built-in categories, then every category plugins introduced."""
        return CATEGORIES + self._extra_categories

    def describe(self) -> list[dict[str, Any]]:
        """Every known plugin: name, version, hooks, enabled (for `coordd plugins`)."""
        out = []
        for plugin in self._plugins.values():
            hooks: list[str] = []
            if plugin.obj is not None and self._pm.is_registered(plugin.obj):
                hooks = sorted(c.name for c in self._pm.get_hookcallers(plugin.obj) or ())
            entry: dict[str, Any] = {"name": plugin.name, "version": plugin.version,
                                     "hooks": hooks, "enabled": plugin.enabled,
                                     "builtin": plugin.builtin, "origin": plugin.origin}
            if plugin.reason is not None:
                entry["reason"] = plugin.reason
            out.append(entry)
        return out

    def statistics(self) -> PluginStats:
        """A frozen snapshot of the classify counters of every loaded plugin."""
        with self._lock:
            return PluginStats(MappingProxyType({
                p.name: PluginCallStats(p.calls, p.answers, MappingProxyType(dict(p.errors)),
                                        p.seconds, p.suspended_until is not None,
                                        p.suspensions)
                for p in self._plugins.values() if p.obj is not None}))

    def status(self) -> list[tuple[str, str, str]]:
        """`(plugin, "pass"|"warn"|"fail", message)` per plugin, for `coordd --check`."""
        stats = self.statistics().plugins
        out: list[tuple[str, str, str]] = []
        for plugin in self._plugins.values():
            if plugin.reason is not None and plugin.reason.startswith("failed"):
                out.append((plugin.name, "fail", plugin.reason))
                continue
            if not plugin.enabled:
                out.append((plugin.name, "pass", plugin.reason or "not enabled"))
                continue
            st = stats.get(plugin.name)
            problems = list(plugin.warnings)
            if st is not None and st.errors:
                problems.append("classify failures: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(st.errors.items())))
            if st is not None and st.suspended:
                problems.append("suspended for being slow")
            if problems:
                out.append((plugin.name, "warn", "; ".join(problems)))
            else:
                out.append((plugin.name, "pass", f"loaded ({plugin.origin}, version "
                            f"{plugin.version or 'unknown'})"))
        for kind, names in (("[plugins] disabled", self._disabled),
                            ("the allow-list", self._allow or ()),
                            ("[plugins.<name>] settings", self._settings)):
            for name in sorted(set(names) - set(self._plugins)):
                out.append((name, "warn", f"named in {kind} but not installed"))
        if self._started and not self._chain:
            out.append(("classifiers", "warn", "no classifier loaded: every event gets the "
                        "fallback category"))
        return out


def _named(obj: object) -> tuple[str, object]:
    """`(name, plugin)` for an `extra` item: an explicit pair, or named after the object."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str):
        return obj[0], obj[1]
    module_name = getattr(obj, "__name__", None)
    if isinstance(module_name, str):
        return module_name.rsplit(".", 1)[-1], obj
    return type(obj).__name__, obj
