"""What the tests of a coordd plugin need, without coordd's internals (see docs/plugins.md).

* `make_event` builds a raw event as one line of the coordination log holds it;
* `classify` asks one plugin about one event, as coordd would ask it (the role and the
  session types computed by coordd, the answer checked, `source` defaulted);
* `enricher_with` gives an enricher with the plugins registered after the built-in
  keyword classifier, as an installed plugin is: `enrich` returns the enriched event.

In production coordd survives a misbehaving plugin: a plugin that cannot start is left
out, an answer that raises or is invalid is discarded (the event gets the next
classifier's answer), both logged and counted. Here they raise `PluginFailure` instead,
saying what went wrong, so that a test cannot pass by accident on coordd's fallback.

A plugin is a module or an object with `@coordd.hookimpl` functions, or a `(name, plugin)`
pair. Without a name it is named after its module (`acme_classifier`) or its class; give
it its entry-point name when it reads settings: `settings` is keyed by plugin name, as
coordd's `[plugins.<name>]` tables are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from coordd.core.enrich import Enricher, event_role, session_types
from coordd.core.event import resolve_agents
from coordd.core.jsvalues import S
from coordd.hookspecs import Classification
from coordd.plugins import keywords
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS

__all__ = ["EVENT_TS", "PluginEnricher", "PluginFailure", "classify", "enricher_with",
           "make_event"]

#: The `ts` `make_event` gives an event by default (2026-02-17T12:00:00.000Z).
EVENT_TS: Final = 1_771_329_600_000

_Settings = Mapping[str, Mapping[str, Any]]


class PluginFailure(AssertionError):
    """A plugin failed in a way coordd survives in production (it logs and counts the
    failure and leaves the plugin or its answer out); the message says what failed."""


def make_event(type: str = "a2a.send", data: Mapping[str, Any] | None = None, *,
               ts: int | float | None = EVENT_TS, **fields: Any) -> dict[str, Any]:
    """A raw event: `{"type": type, "ts": ts, **fields, "data": data}` (`ts` None: none).

    `fields` are other top-level keys (`agentId="ruda"`, `timestamp="2026-..."`).
    """
    event: dict[str, Any] = {"type": type}
    if ts is not None:
        event["ts"] = ts
    event.update(fields)
    event["data"] = dict(data or {})
    return event


def classify(plugin: object, event: Mapping[str, Any], *, settings: _Settings | None = None,
             main_agents: Iterable[str] = DEFAULT_MAIN_AGENTS,
             budget: float = math.inf) -> Classification | None:
    """The plugin's answer for `event` as coordd takes it, the plugin alone registered: its
    `source` defaulted to the plugin's name; None when it declines.

    coordd computes the `role` and session types the hook receives (`main_agents`: the
    agents whose sessions are main sessions). It does not ask classifiers about an event
    with an explicit valid `data.collabCategory`; this asks anyway. Raises
    `PluginFailure` when the plugin cannot start or its answer raises, is invalid or
    takes longer than `budget` seconds (none by default: a busy test machine must not
    fail the test; coordd's own budget is 0.1 s); `ValueError` when `event` is not an
    event (an object with a `type`).
    """
    host = _started_host([plugin], settings, budget)
    etype = S(event.get("type")) if isinstance(event, Mapping) else None
    if etype is None:
        raise ValueError(f"not an event (an object with a type): {event!r}")
    raw_data = event.get("data")
    data: Mapping[str, Any] = raw_data if isinstance(raw_data, Mapping) else {}
    from_type, to_type, hint = session_types(etype, data, *resolve_agents(event, data),
                                             _mains(main_agents))
    role = event_role(etype, data, from_type, to_type, hint)
    before = host.statistics().plugins
    answer = host.classify(event, data, role, from_type, to_type)
    _check_calls(host, before)
    return answer


class PluginEnricher:
    """An enricher with the plugins under test registered (made by `enricher_with`)."""

    def __init__(self, host: PluginHost, main_agents: Iterable[str]) -> None:
        mains = _mains(main_agents)
        self._host = host
        self._enricher = Enricher(host, host.vocabulary(), lambda: mains)

    @property
    def categories(self) -> tuple[str, ...]:
        """The category vocabulary: the ten built-in categories, then those the plugins
        declared (`coordd_categories`)."""
        return self._host.categories()

    def enrich(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """`event` enriched as coordd stores it (`collabCategory`, `categorySource`, ...).

        Raises `PluginFailure` when a plugin's answer raised, was invalid or too slow
        (coordd would have used the next classifier's answer), `ValueError` when `event`
        is not an event (an object with a `type`; coordd would skip the line).
        """
        before = self._host.statistics().plugins
        out = self._enricher.enrich(event)
        _check_calls(self._host, before)
        if out is None:
            raise ValueError(f"not an event (an object with a type): {event!r}")
        return out


def enricher_with(*plugins: object, settings: _Settings | None = None,
                  main_agents: Iterable[str] = DEFAULT_MAIN_AGENTS,
                  budget: float = math.inf) -> PluginEnricher:
    """An enricher with the built-in keyword classifier and `plugins`, registered after it
    (so that, as installed plugins, they are asked first); `settings` by plugin name.

    Raises `PluginFailure` when a plugin cannot start (its `coordd_startup` or
    `coordd_categories` raised, it implements an unknown hook...) or `coordd --check`
    would warn about it (an invalid category name, settings for a plugin that is not
    there). `main_agents` and `budget` as for `classify`.
    """
    host = _started_host([("keywords", keywords), *plugins], settings, budget)
    return PluginEnricher(host, main_agents)


def _mains(main_agents: Iterable[str]) -> frozenset[str]:
    return frozenset(name.lower() for name in main_agents)


def _started_host(plugins: list[object], settings: _Settings | None,
                  budget: float) -> PluginHost:
    # log_interval 0: every failure is logged (pytest shows the log of a failed test).
    host = PluginHost(load_entry_points=False, extra=plugins, settings=settings or {},
                      budget=budget, log_interval=0.0)
    host.start()
    problems = [f"plugin {name!r}: {message}" for name, level, message in host.status()
                if level != "pass"]
    if problems:
        raise PluginFailure("; ".join(problems))
    return host


def _check_calls(host: PluginHost, before: Mapping[str, Any]) -> None:
    """PluginFailure when a plugin's classify call failed since `before`."""
    for name, stats in host.statistics().plugins.items():
        earlier = before.get(name)
        if sum(stats.errors.values()) > (sum(earlier.errors.values()) if earlier else 0):
            raise PluginFailure(f"plugin {name!r}: classification {stats.last_failure}")
