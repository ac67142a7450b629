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
answers; a plugin whose start-up hooks raise is dropped. The classifier calls, with
their time budget, suspension and failure accounting, are `coordd.plugins.chain`'s job.

Thread safety: `classify` may run in one worker thread at a time while the event
loop reads `statistics()`, `status()` and `describe()`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import pluggy

from coordd import __version__, hookspecs
from coordd.core.enrich import Classify
from coordd.core.vocabulary import BUILTIN_VOCABULARY, CategoryVocabulary
from coordd.hookspecs import Classification
from coordd.plugins.chain import (
    CallRecord,
    ClassifierChain,
    Link,
    PluginCallStats,
    PluginStats,
    validate_classification,
)

__all__ = [
    "ALLOW_ENV",
    "BUILTIN_ENTRY_POINTS",
    "ENTRY_POINT_GROUP",
    "PluginCallStats",
    "PluginHost",
    "PluginStats",
    "allow_list_from_env",
    "validate_classification",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "coordd"
#: Environment variable naming the only entry-point plugins to load (tests, debugging).
ALLOW_ENV: Final = "COORDD_PLUGINS"
#: The built-ins, as pyproject.toml declares them (used when coordd's metadata is absent).
BUILTIN_ENTRY_POINTS: Final = {"keywords": "coordd.plugins.keywords"}
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def allow_list_from_env(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """The plugin allow-list `COORDD_PLUGINS="keywords,rules"` names, or None when unset.

    Set but empty means no entry-point plugin at all (not even the built-in keywords).
    """
    value = env.get(ALLOW_ENV)
    if value is None:
        return None
    return tuple(name.strip() for name in value.split(",") if name.strip())


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
    record: CallRecord | None = None  # classify counters, once started
    categories: tuple[str, ...] = ()  # what its coordd_categories declared (valid names)


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
        self._chain_options: dict[str, Any] = {
            "budget": budget, "slow_limit": slow_limit, "cooldown": cooldown,
            "log_interval": log_interval, "clock": clock}
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, _Plugin] = {}
        self._chain: ClassifierChain | None = None
        self._started = False
        self._vocabulary = BUILTIN_VOCABULARY
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
        for plugin in self._loaded():
            ok, _ = self._run_setup_hook(plugin, "coordd_startup")
            if not ok:
                continue
            ok, answer = self._run_setup_hook(plugin, "coordd_categories")
            if ok:
                plugin.categories = tuple(dict.fromkeys(self._category_names(plugin, answer)))
        self._vocabulary = CategoryVocabulary(
            name for plugin in self._loaded() for name in plugin.categories)
        self._chain = self._build_chain()
        self._started = True
        for plugin in self._plugins.values():
            for warning in plugin.warnings:
                log.warning("plugin %r: %s", plugin.name, warning)
        for kind, names in (("disabled", self._disabled), ("allowed", self._allow or ()),
                            ("configured", self._settings)):
            for name in sorted(set(names) - set(self._plugins)):
                log.warning("%s plugin %r is not installed", kind, name)

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
            if name == "all":  # the filters' "every category"
                plugin.warnings.append("category name 'all' is reserved; ignored")
            elif type(name) is str and name and name == name.strip():
                names.append(name)
            else:
                plugin.warnings.append(f"invalid category name {name!r} ignored")
        return names

    def _build_chain(self) -> ClassifierChain:
        for loaded in self._loaded():
            loaded.record = CallRecord(loaded.name, loaded.settings, trusted=loaded.builtin)
        links = []
        # pluggy keeps implementations in reverse call order (tryfirst last).
        for impl in reversed(self._pm.hook.coordd_classify_event.get_hookimpls()):
            plugin = self._by_object(impl.plugin)
            if plugin is None or plugin.record is None:
                continue
            if impl.hookwrapper or impl.wrapper:
                plugin.warnings.append("wrappers of coordd_classify_event are not supported")
                continue
            links.append(Link.build(plugin.record, impl.function, impl.argnames,
                                    impl.kwargnames))
        records = [p.record for p in self._loaded() if p.record is not None]
        return ClassifierChain(links, records, self._vocabulary.members, **self._chain_options)

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

        Never raises because of a plugin (see `coordd.plugins.chain`). `source` is filled in
        with the plugin's name when the plugin left it None.
        """
        return self.classifier()(event, data, role, from_session_type, to_session_type)

    def classifier(self) -> Classify:
        """`classify` without the per-call indirection, for the enrichment hot path (the
        `coordd.core.enrich.Classifier` protocol). Raises `RuntimeError` before `start()`."""
        if self._chain is None:
            raise RuntimeError("PluginHost.start() has not been called")
        return self._chain.classify

    # ------------------------------------------------------------------ introspection

    def vocabulary(self) -> CategoryVocabulary:
        """The valid categories: the ten built-in ones, then every category the started
        plugins declared (only the built-in ones before `start()`)."""
        return self._vocabulary

    def categories(self) -> tuple[str, ...]:
        """`vocabulary()`'s names, in order."""
        return self._vocabulary.names

    def describe(self) -> list[dict[str, Any]]:
        """Every known plugin: name, version, hooks, enabled, the categories it declared,
        and why it is not enabled (`reason`), for `coordd plugins` and `/-/plugins`."""
        out = []
        for plugin in self._plugins.values():
            hooks: list[str] = []
            if plugin.obj is not None and self._pm.is_registered(plugin.obj):
                hooks = sorted(c.name for c in self._pm.get_hookcallers(plugin.obj) or ())
            entry: dict[str, Any] = {"name": plugin.name, "version": plugin.version,
                                     "hooks": hooks, "enabled": plugin.enabled,
                                     "builtin": plugin.builtin, "origin": plugin.origin,
                                     "categories": list(plugin.categories)}
            if plugin.reason is not None:
                entry["reason"] = plugin.reason
            out.append(entry)
        return out

    def statistics(self) -> PluginStats:
        """A frozen snapshot of the classify counters of every loaded plugin."""
        if self._chain is None:
            return PluginStats(MappingProxyType({}))
        return self._chain.statistics()

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
        if self._chain is not None and not self._chain.links:
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
