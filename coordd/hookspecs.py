"""The coordd plugin API: hook specifications and the type classifiers return.

Plugin authors import `coordd.hookimpl` and `coordd.Classification`; everything else
here is read by `coordd.plugins.host.PluginHost`, the only code that calls the hooks.

Every hook is called *per plugin* with that plugin's own `[plugins.<name>]` settings
table, and implementations may accept any subset of a hook's arguments (pluggy
matches them by name), so new arguments can be added without breaking plugins.

The set is deliberately small:

* `coordd_startup` - validate settings and build state (compile patterns, load a
  model) once, before the first event, so a bad configuration is reported at
  start-up and in `coordd --check` rather than on every event;
* `coordd_categories` - declare the category names a plugin can return, so the
  host can validate answers and filters/overrides accept them;
* `coordd_classify_event` - the work itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pluggy

__all__ = [
    "HOOK_NAMES",
    "PROJECT",
    "Classification",
    "coordd_categories",
    "coordd_classify_event",
    "coordd_startup",
    "hookimpl",
    "hookspec",
]

PROJECT: Final = "coordd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, slots=True)
class Classification:
    """A classifier's answer for one event.

    * `category` - one of the ten built-in categories or a name the plugin declared
      through `coordd_categories`.
    * `sub_tags` - at most 5 non-empty strings (written as `collabSubTags`).
    * `confidence` - a number in [0, 1] (written as `categoryConfidence`).
    * `source` - written as `categorySource`; name your classifier (`"rules"`,
      `"ml"`, ...); None means the plugin's registered name. `"manual"` and
      `"fallback"` are reserved for coordd itself; the built-in keyword classifier
      answers `"rule"`.
    * `version` - written as `categoryVersion`; `None` keeps the event's own
      `data.categoryVersion` or `"v1"`, as the built-in classifier does.

    The host checks every answer; an invalid one is discarded and counted (the event
    then gets the next classifier's answer, ultimately the built-in one).
    """

    category: str
    sub_tags: Sequence[str] = ()
    confidence: float = 0.5
    source: str | None = None
    version: str | None = None


@hookspec
def coordd_startup(settings: Mapping[str, Any]) -> None:
    """Prepare the plugin before the first event.

    Called once per plugin by `PluginHost.start()`, before `coordd_categories`.

    :param settings: this plugin's `[plugins.<name>]` table from coordd's TOML file
        (an empty mapping when there is none). Read-only.

    Validate `settings` here and raise (any exception, with a message naming the
    key) when they are unusable: the plugin is then unregistered, reported as
    failed by `coordd --check` and `coordd plugins`, and coordd runs without it.

    Every implementation is called; return values are ignored.

    .. versionadded:: 0.1.0
    """


@hookspec
def coordd_categories(settings: Mapping[str, Any]) -> Iterable[str] | None:
    """Category names this plugin introduces (besides the ten built-in ones).

    Called once per plugin at start-up, after `coordd_startup`. The union of all
    answers and the ten built-in categories is the set the host accepts from
    `coordd_classify_event`, as explicit `data.collabCategory` values, and in
    category filters and overrides.

    :param settings: this plugin's `[plugins.<name>]` table. Read-only.
    :return: an iterable of non-empty strings without surrounding white space,
        or None. Invalid names (and `all`, the filters' "every category") are
        ignored with a warning.

    The ten built-in categories followed by every declared one form the category
    vocabulary used everywhere: event, thread and session categories, filters,
    stats, overrides, OpenAPI and MongoDB documents.

    Every implementation is called; all answers are collected.

    .. versionadded:: 0.1.0
    """


@hookspec(firstresult=True)
def coordd_classify_event(
    event: Mapping[str, Any],
    data: Mapping[str, Any],
    role: str,
    from_session_type: str,
    to_session_type: str,
    settings: Mapping[str, Any],
) -> Classification | None:
    """Classify one event into a collaboration category, or decline.

    Called for every accepted event that carries no explicit valid
    `data.collabCategory` (those keep their category, source `manual`, and no
    classifier is asked).

    :param event: the parsed event as read from the log, read-only (`event["type"]`
        may carry surrounding white space; nested values must not be mutated).
    :param data: `event["data"]` when it is an object, else an empty mapping;
        read-only.
    :param role: the computed `eventRole` (one of `conversation.main`,
        `delegation.subagent`, `orchestration.task`, `system.observability`).
    :param from_session_type: computed `fromSessionType` (`main`, `subagent`,
        `unknown`).
    :param to_session_type: computed `toSessionType`.
    :param settings: this plugin's `[plugins.<name>]` table. Read-only.
    :return: a `Classification`, or None to let the next classifier answer.

    The first non-None valid answer wins (firstresult). Classifiers are asked in
    pluggy order: `tryfirst` ones first, then the most recently registered; the
    built-in keyword classifier is `trylast`, so any installed classifier that
    answers takes precedence over it. When nobody answers, coordd's fallback
    category applies (source `fallback`).

    An answer that raises, is invalid or exceeds the per-call time budget is
    discarded and counted against the plugin; the next classifier answers instead.

    .. versionadded:: 0.1.0
    """


#: Every hook of the API, in documentation order.
HOOK_NAMES: Final = ("coordd_startup", "coordd_categories", "coordd_classify_event")
