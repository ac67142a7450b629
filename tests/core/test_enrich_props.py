"""Property tests: any JSON value in, an enriched event or a counted rejection out; the
Aho-Corasick keyword scan agrees with the spec's literal substring algorithm."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordd.core.enrich import Enricher
from coordd.core.jsvalues import event_hash, js_trim
from coordd.core.vocabulary import CATEGORIES
from coordd.hookspecs import Classification
from coordd.plugins import keywords
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS

# No time budget: a call descheduled on a loaded machine must not fall back (see
# tests/test_enrich.py `make`).
_host = PluginHost(load_entry_points=False, extra=[("keywords", keywords)], budget=1e9)
_host.start()

# Text that often contains keywords, keyword fragments, case variants and white space.
_FRAGMENTS = [w for words in keywords.KEYWORDS.values() for w in words] + [
    "DOC", "Docker", "Root Cause", "e2", "2e", "pla", "n.", "\n", " ", "\u00a0", "\ufeff",
    "ws_", "task_", "-", "İ", "K"]
text = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=4)),
                max_size=8).map("".join)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                         st.floats(allow_nan=False, allow_infinity=False), text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12)

_DATA_KEYS = ["fromAgent", "toAgent", "senderAgentId", "targetAgentId", "sourceSessionKey",
              "requesterSessionKey", "sessionKey", "targetSessionKey", "fromSessionType",
              "toSessionType", "parentConversationId", "depth", "hop", "eventRole",
              "collabCategory", "collabSubTags", "collabIntent", "categoryVersion",
              *keywords.HAYSTACK_FIELDS]
_DATA_VALUES = st.one_of(json_values, st.sampled_from(
    ["main", "subagent", "unknown", "ruda", " Main ", "agent:x:main", "agent:y:subagent:1",
     "legal_compliance", "delegation.subagent", "orchestration.task", 0, 1.5, True]))
event_like = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["a2a.send", " a2a.spawn ", "task.started", "plan.x",
                                        "milestone.sync_failed", "", " "]), json_values)},
    optional={"agentId": st.one_of(st.sampled_from(["ruda", "eden", " MAIN "]), json_values),
              "ts": json_values,
              "data": st.one_of(st.dictionaries(st.sampled_from(_DATA_KEYS), _DATA_VALUES,
                                                max_size=8), json_values),
              "eventRole": json_values})


def _fresh() -> Enricher:
    return Enricher(_host, _host.vocabulary(), lambda: DEFAULT_MAIN_AGENTS)


def _check_enriched(value: dict[str, Any], out: dict[str, Any]) -> None:
    assert list(out)[: len(value)] == list(value)  # original keys keep their order
    assert out["type"] == js_trim(value["type"])
    data = out["data"]
    for key in ("eventRole", "fromSessionType", "toSessionType", "collabCategory",
                "collabSubTags", "categoryConfidence", "categorySource"):
        assert out[key] == data[key]
    assert out["collabCategory"] in CATEGORIES
    assert out["categorySource"] in ("manual", "rule", "fallback")
    assert 0 <= out["categoryConfidence"] <= 1
    assert len(out["collabSubTags"]) <= 5
    assert all(type(t) is str and t for t in out["collabSubTags"])
    assert type(data["categoryVersion"]) is str and data["categoryVersion"]
    event_hash(out)  # hashable, never raises


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_is_enriched_or_counted(value: Any) -> None:
    enricher = _fresh()
    out = enricher.enrich(value)
    if out is None:
        assert sum(enricher.rejected.values()) == 1
        assert enricher.rejected["internal_error"] == 0
    else:
        assert enricher.rejected == {}
        _check_enriched(value, out)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(event_like)
def test_event_shaped_values_never_fail(value: dict[str, Any]) -> None:
    enricher = _fresh()
    before = json.dumps(value, sort_keys=False)
    out = enricher.enrich(value)
    assert json.dumps(value, sort_keys=False) == before  # input untouched
    assert enricher.rejected["internal_error"] == 0
    has_type = type(value["type"]) is str and js_trim(value["type"]) != ""
    assert (out is not None) == has_type
    if out is not None:
        _check_enriched(value, out)


def reference_rule(etype: str, data: dict[str, Any]) -> Classification | None:
    """The old monitor's keyword scoring literally: join, lower-case, one substring test per
    keyword."""
    parts = [etype]
    for field in keywords.HAYSTACK_FIELDS:
        value = data.get(field)
        if type(value) is str and js_trim(value):
            parts.append(js_trim(value))
    hay = "\n".join(parts).lower()
    scores, hits = [], []
    for words in keywords.KEYWORDS.values():
        found = [w for w in words if w.lower() in hay]
        hits.append(found)
        scores.append(sum(2 if len(w) > 4 else 1 for w in found))
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
    s, gap = scores[ranked[0]], scores[ranked[0]] - scores[ranked[1]]
    if s <= 0:
        return None
    confidence = round(min(0.95, 0.50 + 0.08 * s + 0.05 * gap), 2)
    return Classification(CATEGORIES[ranked[0]], tuple(hits[ranked[0]][:3]), confidence,
                          "rule", None)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["a2a.send", "plan.submitted", "x", "Docker.Run"]),
       st.dictionaries(st.sampled_from([*keywords.HAYSTACK_FIELDS, "other"]),
                       st.one_of(text, st.integers()), max_size=6))
def test_keyword_scan_equals_the_literal_algorithm(etype: str, data: dict[str, Any]) -> None:
    got = keywords.coordd_classify_event({"type": etype}, data)
    want = reference_rule(etype, data)
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert (got.category, tuple(got.sub_tags), got.source) == (
            want.category, want.sub_tags, want.source)
        assert math.isclose(got.confidence, want.confidence, abs_tol=1e-12)


_RECORD_FIELDS = ("seq", "ts", "type", "agent_id", "role", "category", "sub_tags", "ws_id",
                  "thread", "conversation_id", "from_agent", "to_agent", "terminal", "json")
_RECORD_DATA_KEYS = [*_DATA_KEYS, "workSessionId", "conversationId", "status"]
_RECORD_VALUES = st.one_of(_DATA_VALUES, st.sampled_from(
    ["ws_1", " ws_2 ", "conv-1", "error", "completed", " failed ", "", "  "]),
    st.lists(st.one_of(text, st.integers()), max_size=7))
record_like = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["a2a.send", "a2a.spawn_result", "task.completed",
                                        "task.updated", "continuation.sent", " a2a.complete ",
                                        "x"]), json_values)},
    optional={"agentId": st.one_of(st.sampled_from(["ruda", "eden", " ", " MAIN "]),
                                   json_values),
              "ts": st.one_of(st.integers(), st.floats(allow_nan=False), json_values),
              "timestamp": st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02", "junk"]),
              "status": _RECORD_VALUES,
              "data": st.one_of(st.dictionaries(st.sampled_from(_RECORD_DATA_KEYS),
                                                _RECORD_VALUES, max_size=10), json_values)})


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(record_like, st.integers(min_value=0, max_value=10**9))
def test_enrich_event_is_the_record_of_enrich(value: dict[str, Any], seq: int) -> None:
    """The fused path builds exactly `Event(seq, enrich(value))`, field for field."""
    from coordd.core.event import Event

    fused = _fresh().enrich_event(value, seq)
    enriched = _fresh().enrich(value)
    if enriched is None:
        assert fused is None
        return
    if fused is None:
        # Enriched but not storable (a value JSON cannot carry, e.g. an integer beyond 64
        # bits next to an infinite ts): the record cannot be built from it either.
        with pytest.raises(Exception):  # noqa: B017 - whatever the serialiser raises
            Event(seq, enriched)
        return
    ref = Event(seq, enriched)
    for name in _RECORD_FIELDS:
        got, want = getattr(fused, name), getattr(ref, name)
        assert got == want and type(got) is type(want), name
