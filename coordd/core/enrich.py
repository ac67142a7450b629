"""Enrichment: role, session types and collaboration category of one event.

Pure: no I/O of its own (the main-agent set comes from a callable), no trio. The
category comes from, in order: an explicit valid `data.collabCategory` (source
`manual`), the classifier plugins through a `Classifier` (in production the plugin host,
`coordd.plugins.host.PluginHost`, which asks the built-in keyword classifier last, source
`rule`), and the fallback by role (source `fallback`). The valid categories are a
`CategoryVocabulary` handed in with the classifier.

`Enricher.enrich` takes any JSON value and returns the enriched event (the
input's keys in order, `type` trimmed and `data` enriched in place, the enrichment
fields appended or replaced in place, in the documented order, which the event hash
depends on) or None for a rejected value, counted in `rejected` by reason. It never
raises. One thread at a time may call it (the daemon runs batches in one worker).

Known difference: JavaScript objects list integer-like keys (`"0"`, `"17"`) first, in
numeric order; coordd keeps every key where the log had it. Only events with such keys
are affected (their JSON key order, hence their `eventHash`), and none are known.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, Protocol

from coordd.core.event import Event, Prepare, event_from_enrichment
from coordd.core.jsvalues import N, S
from coordd.core.pacing import RateLimitedLog
from coordd.core.vocabulary import ROLE_SET as _ROLE_SET
from coordd.core.vocabulary import CategoryVocabulary
from coordd.hookspecs import Classification

__all__ = [
    "SESSION_TYPES",
    "Classifier",
    "Classify",
    "Enricher",
    "event_role",
    "key_type",
    "session_types",
]

log = logging.getLogger(__name__)

SESSION_TYPES: Final = frozenset({"main", "subagent", "unknown"})
_ORCHESTRATION_PREFIXES: Final = ("task.", "continuation.", "plan.", "unblock.", "zombie.",
                                  "resume_reminder.", "backlog.")
_SPAWN_TYPES: Final = frozenset({"a2a.spawn", "a2a.spawn_result"})
# JavaScript's /^agent:[^:]+:main$/i without the u flag folds ASCII letters only.
_MAIN_KEY_RE: Final = re.compile(r"agent:[^:]+:main", re.ASCII | re.IGNORECASE)
_FALLBACK_CATEGORY: Final = {"orchestration.task": "planning_decision",
                             "system.observability": "infra_ops"}
_FALLBACK_CONFIDENCE: Final = 0.2
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

#: Classifies one event: `(event, data, role, from_session_type, to_session_type)` ->
#: the first valid answer, or None for the fallback. Never raises.
Classify = Callable[[Mapping[str, Any], Mapping[str, Any], str, str, str],
                    Classification | None]


class Classifier(Protocol):
    """What enrichment needs of the classifier plugins (`PluginHost` in production)."""

    def classifier(self) -> Classify:
        """The function that classifies one event, bound once by the `Enricher` (it is
        called for every event without an explicit category). Raises `RuntimeError`
        when the classifiers are not ready yet (a plugin host not started)."""
        ...


def key_type(key: str | None) -> str:
    """Session type a session key implies: `subagent`, `main` or `unknown`."""
    if key is None:
        return "unknown"
    if ":subagent:" in key:
        return "subagent"
    if _MAIN_KEY_RE.fullmatch(key):
        return "main"
    return "unknown"


def session_types(etype: str, data: Mapping[str, Any], from_agent: str | None,
                  to_agent: str | None, mains: frozenset[str]) -> tuple[str, str, bool]:
    """`(fromSessionType, toSessionType, delegation hint)` of an event; `from_agent` and
    `to_agent` are the agents it names (`coordd.core.event.resolve_agents`)."""
    # Hot path. Most keys are absent from a given event, so `S`/`N` are called only
    # on values that exist (`x is not None and ...` short-circuits the call).
    get = data.get
    hint = (((v := get("parentConversationId")) is not None and S(v) is not None)
            or ((v := get("depth")) is not None and N(v) is not None)
            or ((v := get("hop")) is not None and N(v) is not None))
    if (v := get("fromSessionType")) is not None and (w := get("toSessionType")) is not None:
        explicit_from, explicit_to = S(v), S(w)
        if explicit_from in SESSION_TYPES and explicit_to in SESSION_TYPES:
            return explicit_from, explicit_to, hint
    if etype in _SPAWN_TYPES:
        from_type, to_type = "main", "subagent"
    else:
        source = (((v := get("sourceSessionKey")) is not None and S(v))
                  or ((v := get("requesterSessionKey")) is not None and S(v))
                  or ((v := get("sessionKey")) is not None and S(v)) or None)
        from_type = "unknown" if source is None else key_type(source)
        v = get("targetSessionKey")
        to_type = "unknown" if v is None else key_type(S(v))
    if from_type == "unknown" or to_type == "unknown":
        from_main = from_agent is not None and from_agent.lower() in mains
        to_main = to_agent is not None and to_agent.lower() in mains
        if from_type == "unknown":
            if from_main:
                from_type = "main"
            elif hint and to_main:
                from_type = "subagent"
        if to_type == "unknown":
            if to_main:
                to_type = "main"
            elif hint and from_main:
                to_type = "subagent"
    return from_type, to_type, hint


_A2A: Final = None  # marks, in the type-role cache, a type whose role depends on the event
_type_roles: dict[str, str | None] = {}
_TYPE_ROLES_MAX: Final = 4096


def _type_role(etype: str) -> str | None:
    """The role rules 2, 3 and 5 give a type; None for `a2a.*` (rule 4 decides)."""
    if etype.startswith(_ORCHESTRATION_PREFIXES):
        return "orchestration.task"
    if etype == "milestone.sync_failed":
        return "system.observability"
    if etype.startswith("a2a."):
        return _A2A
    return "system.observability"


def event_role(etype: str, data: Mapping[str, Any], from_type: str, to_type: str,
               hint: bool) -> str:
    """`eventRole`: the first matching rule wins."""
    if (v := data.get("eventRole")) is not None and (explicit := S(v)) in _ROLE_SET:
        return explicit
    try:
        role = _type_roles[etype]
    except KeyError:
        if len(_type_roles) >= _TYPE_ROLES_MAX:  # types are few; junk must not grow it
            _type_roles.clear()
        role = _type_roles[etype] = _type_role(etype)
    if role is not None:
        return role
    if etype in _SPAWN_TYPES or hint or from_type == "subagent" or to_type == "subagent":
        return "delegation.subagent"
    if from_type == "main" and to_type == "main":
        return "conversation.main"
    return "delegation.subagent"


def _manual_sub_tags(value: Any) -> list[str]:
    if type(value) is not list:
        return []
    tags = []
    for item in value:
        tag = S(item)
        if tag is not None:
            tags.append(tag)
            if len(tags) == 5:
                break
    return tags


class Enricher:
    """Enriches parsed events; see the module docstring."""

    def __init__(self, classifier: Classifier, vocabulary: CategoryVocabulary,
                 main_agents: Callable[[], frozenset[str]], *, prepare: Prepare | None = None,
                 log_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`classifier` must be ready (a `PluginHost` started: `RuntimeError` otherwise);
        `vocabulary`: the valid categories, those the classifier's answers are checked
        against (`PluginHost.vocabulary()`); `main_agents()` is asked once per event
        (keep it cheap). `prepare`: makes `Event.source` of the events `enrich_event`
        builds `with_source` (the MongoDB document: `coordd.mongo.schema.prepare_document`,
        when a sync worker runs)."""
        self._classify = classifier.classifier()
        self._prepare = prepare
        #: The valid categories.
        self.categories = vocabulary
        self._category_set = vocabulary.members
        self._main_agents = main_agents
        self._error_log = RateLimitedLog(log, log_interval, clock=clock)
        #: Rejected values by reason: `not_object`, `no_type`, `internal_error`.
        self.rejected: Counter[str] = Counter()

    def enrich(self, value: Any) -> dict[str, Any] | None:
        """The enriched event, or None when `value` is not an event (counted). Never raises."""
        parts = self._enrich(value)
        return None if parts is None else parts[0]

    def enrich_event(self, value: Any, seq: int = 0, *,
                     with_source: bool = False) -> Event | None:
        """`Event(seq, enrich(value))`, built from the fields enrichment computed (no
        second extraction), or None when `value` is not an event (counted). Never raises.
        `with_source`: give the event its `Event.source` (made by the `prepare` the
        enricher was built with, if any): the pipeline asks for it for live events."""
        parts = self._enrich(value)
        if parts is None:
            return None
        try:
            return event_from_enrichment(seq, *parts, categories=self.categories,
                                         prepare=self._prepare if with_source else None)
        except Exception:
            self._internal_error(parts[2])
            return None

    def _enrich(self, value: Any) -> tuple[dict[str, Any], dict[str, Any], str, str, str,
                                           list[str], str | None, str | None] | None:
        """(enriched, its data, type, role, category, sub-tags, the agents), or None
        (counted)."""
        if type(value) is not dict:
            self.rejected["not_object"] += 1
            return None
        etype = S(value.get("type"))
        if etype is None:
            self.rejected["no_type"] += 1
            return None
        # The hot path, in one frame on purpose (each Python call costs as much as a
        # dict copy here).
        try:
            raw_data = value.get("data")
            data: Mapping[str, Any] = raw_data if raw_data.__class__ is dict else _EMPTY
            get = data.get
            # coordd.core.event.resolve_agents, inlined: only present values are trimmed.
            from_agent = (((v := get("fromAgent")) is not None and S(v))
                          or ((v := get("senderAgentId")) is not None and S(v))
                          or ((v := value.get("agentId")) is not None and S(v)) or None)
            to_agent = (((v := get("toAgent")) is not None and S(v))
                        or ((v := get("targetAgentId")) is not None and S(v)) or None)
            from_type, to_type, hint = session_types(etype, data, from_agent, to_agent,
                                                     self._main_agents())
            role = event_role(etype, data, from_type, to_type, hint)
            version = ((v := get("categoryVersion")) is not None and S(v)) or "v1"

            category = (v := get("collabCategory")) is not None and S(v)
            if category and category in self._category_set:
                sub_tags = _manual_sub_tags(get("collabSubTags"))
                confidence: int | float = 1
                source = "manual"
            else:
                answer: Classification | None = self._classify(value, data, role, from_type,
                                                               to_type)
                if answer is None:
                    category = _FALLBACK_CATEGORY.get(role, "engineering_build")
                    sub_tags = []
                    confidence = _FALLBACK_CONFIDENCE
                    source = "fallback"
                else:
                    category = answer.category
                    sub_tags = list(answer.sub_tags)
                    confidence = answer.confidence
                    if confidence.__class__ is float and confidence.is_integer():
                        confidence = int(confidence)  # JavaScript writes 1, not 1.0
                    source = answer.source  # type: ignore[assignment]  # set by the host
                    if answer.version is not None:
                        version = answer.version
            intent = (v := get("collabIntent")) is not None and S(v)

            # A dict display assigns in order and keeps an existing key's place: exactly
            # the old monitor's key order (that of JavaScript's object spread).
            out_data = {**data, "eventRole": role, "fromSessionType": from_type,
                        "toSessionType": to_type, "collabCategory": category,
                        "collabSubTags": sub_tags, "collabIntent": intent,
                        "categoryConfidence": confidence, "categorySource": source,
                        "categoryVersion": version}
            if not intent:  # written only when present
                del out_data["collabIntent"]
            return ({**value, "type": etype, "data": out_data, "eventRole": role,
                     "fromSessionType": from_type, "toSessionType": to_type,
                     "collabCategory": category, "collabSubTags": sub_tags,
                     "categoryConfidence": confidence, "categorySource": source},
                    out_data, etype, role, category, sub_tags, from_agent, to_agent)
        except Exception:
            self._internal_error(etype)
            return None

    def _internal_error(self, etype: str) -> None:
        # A bug, not bad input: keep the pipeline going, but say so loudly.
        self.rejected["internal_error"] += 1
        suffix = self._error_log.admit("internal_error")
        if suffix is not None:
            log.exception("enrichment failed for an event of type %r; event skipped" + suffix,
                          etype)
