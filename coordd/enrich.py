"""Enrichment: role, session types and collaboration category of one event (spec §3).

Pure: no I/O of its own (the main-agent set comes from a callable), no trio. The
category comes from, in order: an explicit valid `data.collabCategory` (source
`manual`), the classifier plugins through `PluginHost.classify` (the built-in keyword
classifier last, source `rule`), and the fallback by role (source `fallback`).

`Enricher.enrich` takes any JSON value and returns the enriched event (spec §3.6: the
input's keys in order, `type` trimmed and `data` enriched in place, the enrichment
fields appended or replaced in place, in the documented order, which the event hash
depends on) or None for a rejected value, counted in `rejected` by reason. It never
raises. One thread at a time may call it (the daemon runs batches in one worker).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final

from coordd.hookspecs import Classification
from coordd.model import N, O, S
from coordd.plugins import PluginHost

__all__ = [
    "SESSION_TYPES",
    "Enricher",
    "event_role",
    "key_type",
    "session_types",
]

log = logging.getLogger(__name__)

SESSION_TYPES: Final = frozenset({"main", "subagent", "unknown"})
_ROLE_SET: Final = frozenset({"conversation.main", "delegation.subagent",
                              "orchestration.task", "system.observability"})
_ORCHESTRATION_PREFIXES: Final = ("task.", "continuation.", "plan.", "unblock.", "zombie.",
                                  "resume_reminder.", "backlog.")
_SPAWN_TYPES: Final = frozenset({"a2a.spawn", "a2a.spawn_result"})
# JavaScript's /^agent:[^:]+:main$/i without the u flag folds ASCII letters only.
_MAIN_KEY_RE: Final = re.compile(r"agent:[^:]+:main", re.ASCII | re.IGNORECASE)
_FALLBACK_CATEGORY: Final = {"orchestration.task": "planning_decision",
                             "system.observability": "infra_ops"}
_FALLBACK_CONFIDENCE: Final = 0.2


def key_type(key: str | None) -> str:
    """Session type a session key implies: `subagent`, `main` or `unknown` (§3.3 step 2)."""
    if key is None:
        return "unknown"
    if ":subagent:" in key:
        return "subagent"
    if _MAIN_KEY_RE.fullmatch(key):
        return "main"
    return "unknown"


def _is_main(agent: str | None, mains: frozenset[str]) -> bool:
    return agent is not None and agent.lower() in mains


def session_types(etype: str, event: Mapping[str, Any], data: Mapping[str, Any],
                  mains: frozenset[str]) -> tuple[str, str, bool]:
    """`(fromSessionType, toSessionType, delegation hint)` of an event (spec §3.2, §3.3)."""
    hint = (S(data.get("parentConversationId")) is not None or N(data.get("depth")) is not None
            or N(data.get("hop")) is not None)
    explicit_from = S(data.get("fromSessionType"))
    explicit_to = S(data.get("toSessionType"))
    if explicit_from in SESSION_TYPES and explicit_to in SESSION_TYPES:
        return explicit_from, explicit_to, hint
    source = (S(data.get("sourceSessionKey")) or S(data.get("requesterSessionKey"))
              or S(data.get("sessionKey")))
    from_type = key_type(source)
    to_type = key_type(S(data.get("targetSessionKey")))
    if etype in _SPAWN_TYPES:
        from_type, to_type = "main", "subagent"
    if from_type == "unknown" or to_type == "unknown":
        from_agent = (S(data.get("fromAgent")) or S(data.get("senderAgentId"))
                      or S(event.get("agentId")))
        to_agent = S(data.get("toAgent")) or S(data.get("targetAgentId"))
        from_main = _is_main(from_agent, mains)
        to_main = _is_main(to_agent, mains)
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


def event_role(etype: str, data: Mapping[str, Any], from_type: str, to_type: str,
               hint: bool) -> str:
    """`eventRole` (spec §3.4): the first matching rule wins."""
    explicit = S(data.get("eventRole"))
    if explicit in _ROLE_SET:
        return explicit
    if etype.startswith(_ORCHESTRATION_PREFIXES):
        return "orchestration.task"
    if etype == "milestone.sync_failed":
        return "system.observability"
    if etype.startswith("a2a."):
        if etype in _SPAWN_TYPES or hint or from_type == "subagent" or to_type == "subagent":
            return "delegation.subagent"
        if from_type == "main" and to_type == "main":
            return "conversation.main"
        return "delegation.subagent"
    return "system.observability"


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


def _js_number(value: float) -> int | float:
    """A number as JavaScript would serialise it: integral floats without `.0`."""
    return int(value) if type(value) is float and value.is_integer() else value


class Enricher:
    """Enriches parsed events; see the module docstring."""

    def __init__(self, host: PluginHost, main_agents: Callable[[], frozenset[str]],
                 *, log_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`host` must be started; `main_agents()` is asked once per event (keep it cheap)."""
        if not host.started:
            raise RuntimeError("start the PluginHost before building an Enricher")
        self._host = host
        self._main_agents = main_agents
        self._log_interval = log_interval
        self._clock = clock
        self._last_error_log = float("-inf")
        #: Rejected values by reason: `not_object`, `no_type`, `internal_error`.
        self.rejected: Counter[str] = Counter()

    def enrich(self, value: Any) -> dict[str, Any] | None:
        """The enriched event, or None when `value` is not an event (counted). Never raises."""
        if type(value) is not dict:
            self.rejected["not_object"] += 1
            return None
        etype = S(value.get("type"))
        if etype is None:
            self.rejected["no_type"] += 1
            return None
        try:
            return self._enrich(value, etype)
        except Exception:
            # A bug, not bad input: keep the pipeline going, but say so loudly.
            self.rejected["internal_error"] += 1
            now = self._clock()
            if now - self._last_error_log >= self._log_interval:
                self._last_error_log = now
                log.exception("enrichment failed for an event of type %r; event skipped", etype)
            return None

    def _enrich(self, event: dict[str, Any], etype: str) -> dict[str, Any]:
        raw_data = event.get("data")
        data: Mapping[str, Any] = O(raw_data)
        from_type, to_type, hint = session_types(etype, event, data, self._main_agents())
        role = event_role(etype, data, from_type, to_type, hint)
        version = S(data.get("categoryVersion")) or "v1"

        category = S(data.get("collabCategory"))
        host = self._host
        if category is not None and category in host.category_set:
            sub_tags = _manual_sub_tags(data.get("collabSubTags"))
            confidence: int | float = 1
            source = "manual"
        else:
            answer: Classification | None = host.classify(event, data, role, from_type, to_type)
            if answer is None:
                category = _FALLBACK_CATEGORY.get(role, "engineering_build")
                sub_tags = []
                confidence = _FALLBACK_CONFIDENCE
                source = "fallback"
            else:
                category = answer.category
                sub_tags = list(answer.sub_tags)
                confidence = _js_number(answer.confidence)
                source = answer.source  # type: ignore[assignment]  # filled in by the host
                if answer.version is not None:
                    version = answer.version
        intent = S(data.get("collabIntent"))

        # Assignment order is the key order of §3.6 (a dict keeps an existing key's place).
        out_data = dict(data)
        out_data["eventRole"] = role
        out_data["fromSessionType"] = from_type
        out_data["toSessionType"] = to_type
        out_data["collabCategory"] = category
        out_data["collabSubTags"] = sub_tags
        if intent is None:
            out_data.pop("collabIntent", None)
        else:
            out_data["collabIntent"] = intent
        out_data["categoryConfidence"] = confidence
        out_data["categorySource"] = source
        out_data["categoryVersion"] = version

        out = dict(event)
        out["type"] = etype
        out["data"] = out_data
        out["eventRole"] = role
        out["fromSessionType"] = from_type
        out["toSessionType"] = to_type
        out["collabCategory"] = category
        out["collabSubTags"] = sub_tags
        out["categoryConfidence"] = confidence
        out["categorySource"] = source
        return out
