"""The classifier chain: calls `coordd_classify_event` implementations in isolation.

Built by `PluginHost.start()` from pluggy's hook implementations, in pluggy's call
order (tryfirst first, then the most recently registered, trylast last). Each
implementation is called directly with the arguments it names, one plugin at a time,
so that one plugin's failure cannot hide the others' answers:

* a call that raises, or returns something `validate_classification` rejects, is
  discarded: the next classifier answers (ultimately the built-in one, else coordd's
  fallback);
* a call that takes longer than `budget` seconds is discarded too. A call cannot be
  interrupted (the enrichment worker thread runs it to its end), so a plugin that is
  slow `slow_limit` times in a row is suspended for `cooldown` seconds (its events get
  the next classifier's answer meanwhile), then tried again. Built-in plugins are
  trusted: exempt from the budget and from answer validation;
* every failure is counted per plugin and kind (`raised`, `invalid`, `slow`) and
  logged at most once per `log_interval` per plugin and kind.

Thread safety: `classify` runs in one worker thread at a time; `statistics()` may be
read concurrently from the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from coordd.core.pacing import RateLimitedLog
from coordd.hookspecs import Classification

__all__ = [
    "EVENT_ARGS",
    "CallRecord",
    "ClassifierChain",
    "Link",
    "PluginCallStats",
    "PluginStats",
    "validate_classification",
]

log = logging.getLogger("coordd.plugins.host")

_RESERVED_SOURCES: Final = frozenset({"manual", "fallback"})
_MAX_SUB_TAGS: Final = 5


@dataclass(frozen=True, slots=True)
class PluginCallStats:
    """Counters of one plugin's `coordd_classify_event` calls."""

    calls: int
    answers: int
    errors: Mapping[str, int]  # kind ("raised", "invalid", "slow") -> count
    seconds: float
    suspended: bool
    suspensions: int
    #: `"<kind>: <detail>"` of the most recent failure (`raised: ValueError('x')`), or None.
    last_failure: str | None = None


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


@dataclass(eq=False, slots=True)
class CallRecord:
    """One plugin's identity in the chain and its mutable call counters."""

    name: str
    settings: Mapping[str, Any]
    #: Built-in code: exempt from the time budget and from answer validation (its
    #: answers are covered by coordd's own tests), and handed the event dicts directly.
    trusted: bool = False
    calls: int = 0
    answers: int = 0
    seconds: float = 0.0
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    strikes: int = 0
    suspended_until: float | None = None
    suspensions: int = 0
    last_failure: str | None = None


#: The per-event arguments of `coordd_classify_event`, in the order `Link.call` gets them.
EVENT_ARGS: Final = ("event", "data", "role", "from_session_type", "to_session_type")


@dataclass(frozen=True, slots=True)
class Link:
    """One classifier in the chain and how to call it with `args` (as `EVENT_ARGS`).

    Common case: `function(*pick(args))`, `pick` a C-level `itemgetter` (no extra
    Python frame on the hot path). Otherwise (settings, optional arguments, a single
    argument) `call(args)` does it.
    """

    record: CallRecord
    function: Callable[..., Any]
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
    call: Callable[[tuple[Any, ...]], Any] | None = None

    @classmethod
    def build(cls, record: CallRecord, function: Callable[..., Any],
              argnames: Sequence[str], kwargnames: Sequence[str] = ()) -> Link:
        """Precompute how to call `function` with the arguments it names.

        `settings` is fixed per plugin, so it is bound here.
        """
        settings = record.settings
        index = {name: i for i, name in enumerate(EVENT_ARGS)}
        unknown = [n for n in (*argnames, *kwargnames) if n not in index and n != "settings"]
        if unknown:
            raise ValueError(f"unknown argument {unknown[0]!r}")
        if len(argnames) >= 2 and not kwargnames and "settings" not in argnames:
            return cls(record, function, operator.itemgetter(*[index[n] for n in argnames]))

        def call(args: tuple[Any, ...]) -> Any:
            named = {**dict(zip(EVENT_ARGS, args, strict=True)), "settings": settings}
            return function(*[named[n] for n in argnames], **{n: named[n] for n in kwargnames})

        return cls(record, function, None, call)


class ClassifierChain:
    """Asks classifiers in order; see the module docstring."""

    def __init__(self, links: Sequence[Link], records: Sequence[CallRecord],
                 categories: frozenset[str], *, budget: float, slow_limit: int,
                 cooldown: float, log_interval: float, clock: Callable[[], float]) -> None:
        """`records` are every loaded plugin's (also those without a classifier)."""
        self.links = tuple(links)
        self._records = tuple(records)
        self._categories = categories
        self._budget = budget
        self._slow_limit = max(1, slow_limit)
        self._cooldown = cooldown
        self._log_interval = log_interval
        self._failure_log = RateLimitedLog(log, log_interval, clock=clock)
        self._clock = clock
        self._lock = threading.Lock()

    def classify(self, event: Mapping[str, Any], data: Mapping[str, Any], role: str,
                 from_session_type: str, to_session_type: str) -> Classification | None:
        """The first valid answer, `source` defaulted to the plugin's name; None if none."""
        # Built-in (trusted) classifiers get the dicts themselves; plugins get read-only
        # views, made only when a plugin is actually asked.
        plain = (event, data, role, from_session_type, to_session_type)
        guarded: tuple[Any, ...] | None = None
        clock = self._clock
        budget = self._budget
        for link in self.links:
            record = link.record
            if record.suspended_until is not None:
                if clock() < record.suspended_until:
                    continue
                self._resume(record)
            if record.trusted:
                args = plain
            else:
                if guarded is None:
                    guarded = (MappingProxyType(event) if type(event) is dict else event,
                               MappingProxyType(data) if type(data) is dict else data,
                               role, from_session_type, to_session_type)
                args = guarded
            error: Exception | None = None
            start = clock()
            try:
                pick = link.pick
                if pick is not None:
                    answer = link.function(*pick(args))
                else:
                    answer = link.call(args)  # type: ignore[misc]  # set when pick is not
            except Exception as exc:
                answer, error = None, exc
            elapsed = clock() - start
            record.calls += 1
            record.seconds += elapsed
            if not record.trusted:
                if elapsed > budget:
                    self._slow(record, elapsed)
                    continue
                if record.strikes:
                    record.strikes = 0
            if error is not None:
                self._failure(record, "raised", repr(error), error)
                continue
            if answer is None:
                continue
            if not record.trusted:
                problem = validate_classification(answer, self._categories)
                if problem is not None:
                    self._failure(record, "invalid", problem)
                    continue
            record.answers += 1
            if answer.source is None:
                answer = dataclasses.replace(answer, source=record.name)
            return answer  # type: ignore[no-any-return]  # pluggy is untyped
        return None

    def _slow(self, record: CallRecord, elapsed: float) -> None:
        record.strikes += 1
        self._failure(record, "slow", f"took {elapsed:.3f} s (budget {self._budget} s)")
        if record.strikes >= self._slow_limit:
            with self._lock:
                record.suspended_until = self._clock() + self._cooldown
                record.suspensions += 1
            log.warning("plugin %r suspended for %g s after %d slow calls in a row; "
                        "its events get the next classifier's answer meanwhile",
                        record.name, self._cooldown, record.strikes)

    def _resume(self, record: CallRecord) -> None:
        with self._lock:
            record.suspended_until = None
            record.strikes = 0
        log.info("plugin %r resumed after its cool-down", record.name)

    def _failure(self, record: CallRecord, kind: str, detail: str,
                 exc: BaseException | None = None) -> None:
        with self._lock:
            record.errors[kind] += 1
            record.last_failure = f"{kind}: {detail}"
        suffix = self._failure_log.admit(f"{record.name}\x00{kind}")
        if suffix is None:
            return
        log.warning("plugin %r: classification %s (%s); the event gets the next classifier's "
                    "answer%s", record.name, kind, detail, suffix, exc_info=exc)

    def statistics(self) -> PluginStats:
        """A frozen snapshot of every record's counters."""
        with self._lock:
            return PluginStats(MappingProxyType({
                r.name: PluginCallStats(r.calls, r.answers, MappingProxyType(dict(r.errors)),
                                        r.seconds, r.suspended_until is not None,
                                        r.suspensions, r.last_failure)
                for r in self._records}))
