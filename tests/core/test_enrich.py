"""Enrichment: every verified example of the old monitor, its classification tests, the
MongoDB hash vector, the quirks."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coordd.core.enrich import Enricher, event_role, key_type, session_types
from coordd.core.event import parse_line, resolve_agents
from coordd.core.jsvalues import dumps, event_hash, hash_input
from coordd.core.vocabulary import BUILTIN_VOCABULARY
from coordd.plugins.host import PluginHost
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS, MainAgents
from tests.core.helpers import VERIFIED_IN

PARITY = Path(__file__).resolve().parents[1] / "parity"


def ok(out: dict[str, Any] | None) -> dict[str, Any]:
    """An enriched event that must exist."""
    assert out is not None
    return out


def make(mains: frozenset[str] = DEFAULT_MAIN_AGENTS) -> Enricher:
    """An enricher with only the built-in keyword classifier, without a time budget: on a
    loaded machine (CI installing packages next door) a call descheduled past 0.1 s
    would be answered by the fallback, and two enrichers would disagree on a category.
    The budget itself is tested in test_plugins.py with a fake clock."""
    host = PluginHost(load_entry_points=False,
                      extra=[("keywords", _keywords_module())], budget=1e9)
    host.start()
    return Enricher(host, host.vocabulary(), lambda: mains)


def _keywords_module() -> Any:
    from coordd.plugins import keywords
    return keywords


@pytest.fixture
def enrich() -> Any:
    return make().enrich


def summary(out: dict[str, Any]) -> tuple[Any, ...]:
    return (out["eventRole"], out["fromSessionType"], out["toSessionType"],
            out["collabCategory"], out["collabSubTags"], out["categoryConfidence"],
            out["categorySource"])


# ------------------------------------------------------------------ shape and hash

VERIFIED_OUT = (
    '{"type":"a2a.send","agentId":"ruda","ts":1771330358110,"data":{"fromAgent":"ruda",'
    '"toAgent":"main","message":"코드 구현 진행 상황 공유","conversationId":"conv-main-1",'
    '"eventRole":"conversation.main","fromSessionType":"main","toSessionType":"main",'
    '"collabCategory":"engineering_build","collabSubTags":["코드","구현"],'
    '"categoryConfidence":0.76,"categorySource":"rule","categoryVersion":"v1"},'
    '"eventRole":"conversation.main","fromSessionType":"main","toSessionType":"main",'
    '"collabCategory":"engineering_build","collabSubTags":["코드","구현"],'
    '"categoryConfidence":0.76,"categorySource":"rule"}'
)


def test_verified_example_is_reproduced_byte_for_byte(enrich: Any) -> None:
    out = enrich(json.loads(VERIFIED_IN))
    assert dumps(out).decode() == VERIFIED_OUT


def test_event_hash_vector_of_section_7(enrich: Any) -> None:
    event = json.loads(VERIFIED_IN)
    event["data"]["workSessionId"] = "ws_demo"
    out = enrich(event)
    assert hash_input(out) == (
        'a2a.send|ruda|1771330358110|{"fromAgent":"ruda","toAgent":"main",'
        '"message":"코드 구현 진행 상황 공유","conversationId":"conv-main-1",'
        '"workSessionId":"ws_demo","eventRole":"conversation.main","fromSessionType":"main",'
        '"toSessionType":"main","collabCategory":"engineering_build",'
        '"collabSubTags":["코드","구현"],"categoryConfidence":0.76,"categorySource":"rule",'
        '"categoryVersion":"v1"}')
    assert event_hash(out) == "894d85f8739844995317dd7af523b7329d349636e6e9f02ff62af242c768b497"


def test_manual_confidence_hashes_as_integer_one(enrich: Any) -> None:
    out = enrich({"type": "a2a.send", "agentId": "x", "ts": 5,
                  "data": {"collabCategory": "infra_ops"}})
    assert out["categoryConfidence"] == 1 and type(out["categoryConfidence"]) is int
    assert '"categoryConfidence":1,' in hash_input(out)


# ------------------------------------------------------------------ the enrichment table

TABLE = [
    ({"type": "task.updated", "agentId": "ruda", "ts": 1,
      "data": {"taskId": "task_123", "progress": "step 2/4"}},
     ("orchestration.task", "main", "unknown", "planning_decision", [], 0.2, "fallback")),
    ({"type": "a2a.response", "agentId": "main", "ts": 1,
      "data": {"fromAgent": "ruda", "toAgent": "main",
               "replyPreview": "E2E 테스트와 회귀 검증을 완료했습니다"}},
     ("conversation.main", "main", "main", "qa_validation", ["e2e", "회귀", "검증"], 0.95,
      "rule")),
    ({"type": "a2a.send", "agentId": "eden", "ts": 1,
      "data": {"fromAgent": "eden", "toAgent": "seum", "message": "please review docs"}},
     ("delegation.subagent", "unknown", "unknown", "docs_knowledge", ["doc", "docs"], 0.71,
      "rule")),
    ({"type": "plan.submitted", "agentId": "eden", "ts": 1, "data": {}},
     ("orchestration.task", "unknown", "unknown", "planning_decision", ["plan"], 0.63, "rule")),
    ({"type": "milestone.sync_failed", "agentId": "eden", "ts": 1, "data": {"taskId": "task_1"}},
     ("system.observability", "unknown", "unknown", "infra_ops", [], 0.2, "fallback")),
    ({"type": "custom.thing", "ts": 1, "data": {}},
     ("system.observability", "unknown", "unknown", "infra_ops", [], 0.2, "fallback")),
    ({"type": "a2a.send", "agentId": "eden", "ts": 1,
      "data": {"fromAgent": "eden", "toAgent": "seum", "sourceSessionKey": "agent:eden:main",
               "targetSessionKey": "agent:seum:main", "message": "deploy the fix"}},
     ("conversation.main", "main", "main", "infra_ops", ["deploy"], 0.71, "rule")),
    ({"type": " a2a.complete ", "ts": 9},
     ("delegation.subagent", "unknown", "unknown", "engineering_build", [], 0.2, "fallback")),
    ({"type": "a2a.send", "agentId": "ruda", "ts": 1,
      "data": {"fromAgent": "ruda", "toAgent": "eden", "depth": 0}},
     ("delegation.subagent", "main", "subagent", "engineering_build", [], 0.2, "fallback")),
]


@pytest.mark.parametrize(("event", "expected"), TABLE, ids=[str(e["type"]) for e, _ in TABLE])
def test_verified_table_of_section_3(enrich: Any, event: dict[str, Any],
                                     expected: tuple[Any, ...]) -> None:
    out = enrich(event)
    assert summary(out) == expected
    assert summary({**out["data"], "eventRole": out["data"]["eventRole"]}) == expected


def test_manual_category_row_of_the_table(enrich: Any) -> None:
    out = enrich({"type": "a2a.send", "agentId": "ruda", "ts": 1, "data": {
        "collabCategory": "legal_compliance",
        "collabSubTags": [" a ", "", 3, "b", "c", "d", "e", "f"], "collabIntent": " hi "}})
    assert out["collabCategory"] == "legal_compliance"
    assert out["collabSubTags"] == ["a", "b", "c", "d", "e"]
    assert out["categoryConfidence"] == 1 and out["categorySource"] == "manual"
    assert out["data"]["collabIntent"] == "hi"
    assert "collabIntent" not in out  # never added at top level


def test_untrimmed_type_is_accepted_and_trimmed(enrich: Any) -> None:
    out = enrich({"type": " a2a.complete ", "ts": 9})
    assert out["type"] == "a2a.complete"
    assert list(out) == ["type", "ts", "data", "eventRole", "fromSessionType", "toSessionType",
                         "collabCategory", "collabSubTags", "categoryConfidence",
                         "categorySource"]


@pytest.mark.parametrize("value", [[1, 2], {"type": ""}, {"type": "  "}, {"type": 3}, None,
                                   "a2a.send", 17, {}, {"data": {"type": "a2a.send"}}])
def test_rejected_values(value: Any) -> None:
    enricher = make()
    assert enricher.enrich(value) is None
    reason = "not_object" if type(value) is not dict else "no_type"
    assert enricher.rejected == Counter({reason: 1})


# ------------------------------------------------------------------ the old monitor's tests


def test_8_1_spawn_to_worker_is_delegation(enrich: Any) -> None:
    mains = frozenset({"eden", "seum", "worker-quick", "main", "ruda"})
    out = ok(make(mains).enrich({"type": "a2a.spawn", "agentId": "ruda", "ts": 1, "data": {
        "fromAgent": "ruda", "toAgent": "worker-quick",
        "targetSessionKey": "agent:worker-quick:subagent:abc"}}))
    assert out["eventRole"] == out["data"]["eventRole"] == "delegation.subagent"
    assert (out["fromSessionType"], out["toSessionType"]) == ("main", "subagent")
    assert (out["data"]["fromSessionType"], out["data"]["toSessionType"]) == ("main", "subagent")


def test_8_1_main_conversation_is_engineering(enrich: Any) -> None:
    out = enrich({"type": "a2a.send", "agentId": "ruda", "ts": 1, "data": {
        "fromAgent": "ruda", "toAgent": "main", "message": "코드 구현 진행 상황 공유"}})
    assert (out["eventRole"], out["collabCategory"]) == ("conversation.main", "engineering_build")


def test_8_1_task_update_falls_back_to_planning(enrich: Any) -> None:
    out = enrich({"type": "task.updated", "agentId": "ruda", "ts": 1,
                  "data": {"taskId": "task_123"}})
    assert (out["eventRole"], out["collabCategory"], out["categorySource"]) == (
        "orchestration.task", "planning_decision", "fallback")


def test_8_1_reply_preview_is_qa_by_rule(enrich: Any) -> None:
    out = enrich({"type": "a2a.response", "agentId": "main", "ts": 1, "data": {
        "fromAgent": "ruda", "toAgent": "main",
        "replyPreview": "E2E 테스트와 회귀 검증을 완료했습니다"}})
    assert (out["collabCategory"], out["categorySource"]) == ("qa_validation", "rule")


# ------------------------------------------------------------------ keyword scoring and quirks


def category_of(enrich: Any, text: str, etype: str = "a2a.send") -> tuple[Any, ...]:
    out = enrich({"type": etype, "ts": 1, "data": {"message": text}})
    return out["collabCategory"], out["collabSubTags"], out["categoryConfidence"]


@pytest.mark.parametrize(("text", "expected"), [
    ("k8s qa", ("infra_ops", ["k8s"], 0.58)),                       # s=1 g=0, tie: canonical
    ("qa", ("qa_validation", ["qa"], 0.63)),                        # s=1 g=1
    ("deploy qa", ("infra_ops", ["deploy"], 0.71)),                 # s=2 g=1
    ("deploy", ("infra_ops", ["deploy"], 0.76)),                    # s=2 g=2
    ("deploy incident verify", ("infra_ops", ["deploy", "incident"], 0.92)),  # s=4 g=2
    ("deploy incident k8s verify testing",
     ("infra_ops", ["deploy", "k8s", "incident"], 0.90)),           # s=5 g=0, tie
    ("deploy incident docker", ("infra_ops", ["deploy", "docker", "incident"], 0.95)),  # cap
])
def test_confidence_formula_examples(enrich: Any, text: str, expected: tuple[Any, ...]) -> None:
    assert category_of(enrich, text) == expected


@pytest.mark.parametrize(("text", "category", "tags"), [
    ("update the metrics", "customer_community", ["cs"]),     # cs in metrics
    ("it stops here", "infra_ops", ["ops"]),                  # ops in stops
    ("add a prefix", "engineering_build", ["fix"]),           # fix in prefix
    ("an explanation", "planning_decision", ["plan"]),        # plan in explanation
    ("android app", "biz_strategy", ["roi"]),                 # roi in android
    ("use docker", "infra_ops", ["docker"]),                  # docker (2) beats doc (1)
    ("read the documentation", "docs_knowledge", ["doc", "documentation"]),
])
def test_substring_quirks_are_kept(enrich: Any, text: str, category: str,
                                   tags: list[str]) -> None:
    assert category_of(enrich, text)[:2] == (category, tags)


def test_doc_inside_docker_counts_for_docs(enrich: Any) -> None:
    # docker: infra 2, doc: docs 1 -> gap 1
    assert category_of(enrich, "docker") == ("infra_ops", ["docker"], 0.71)


def test_e2e_inside_hex_ids_counts(enrich: Any) -> None:
    out = enrich({"type": "task.updated", "ts": 1,
                  "data": {"workSessionId": "ws_8c2e2e10-1111-4222-8333-444455556666"}})
    assert (out["collabCategory"], out["collabSubTags"]) == ("qa_validation", ["e2e"])


def test_plan_event_type_is_planning_by_rule(enrich: Any) -> None:
    assert category_of(enrich, "", "plan.approved")[:2] == ("planning_decision", ["plan"])


def test_each_keyword_counts_once(enrich: Any) -> None:
    assert category_of(enrich, "qa qa qa QA") == ("qa_validation", ["qa"], 0.63)


def test_sub_tags_follow_keyword_list_order_and_spelling(enrich: Any) -> None:
    out = category_of(enrich, "VERIFY the Test of E2E; validation")
    assert out[:2] == ("qa_validation", ["test", "validation", "verify"])


def test_haystack_fields_and_only_those(enrich: Any) -> None:
    fields = ["label", "message", "replyPreview", "description", "summary", "reason", "title",
              "taskId", "workSessionId", "collabIntent"]
    for field in fields:
        out = enrich({"type": "x.y", "ts": 1, "data": {field: "deploy"}})
        assert out["collabCategory"] == "infra_ops", field
    out = enrich({"type": "x.y", "ts": 1, "data": {"note": "deploy", "agentId": "deploy"},
                  "message": "deploy"})
    assert out["categorySource"] == "fallback"


def test_keywords_do_not_span_fields(enrich: Any) -> None:
    out = enrich({"type": "x.y", "ts": 1, "data": {"label": "root", "message": "cause"}})
    assert out["categorySource"] == "fallback"
    out = enrich({"type": "x.y", "ts": 1, "data": {"label": "ROOT CAUSE found"}})
    assert out["collabSubTags"] == ["root cause"]


def test_collab_intent_is_in_haystack_and_kept_trimmed(enrich: Any) -> None:
    out = enrich({"type": "x.y", "ts": 1, "data": {"collabIntent": "  wiki  "}})
    assert out["collabCategory"] == "docs_knowledge"
    assert out["data"]["collabIntent"] == "wiki"


# ------------------------------------------------------------------ shape details


def test_existing_keys_keep_their_place_and_new_ones_append(enrich: Any) -> None:
    out = enrich({"eventRole": "stale", "type": "custom.x", "collabCategory": "old",
                  "extra": [1], "data": {"collabIntent": " go ", "categorySource": "x",
                                         "z": 1}})
    assert list(out) == ["eventRole", "type", "collabCategory", "extra", "data",
                         "fromSessionType", "toSessionType", "collabSubTags",
                         "categoryConfidence", "categorySource"]
    assert list(out["data"]) == ["collabIntent", "categorySource", "z", "eventRole",
                                 "fromSessionType", "toSessionType", "collabCategory",
                                 "collabSubTags", "categoryConfidence", "categoryVersion"]
    assert out["extra"] == [1] and out["data"]["z"] == 1


def test_absent_intent_removes_the_original_key(enrich: Any) -> None:
    out = enrich({"type": "custom.x", "data": {"collabIntent": "   ", "k": 1}})
    assert "collabIntent" not in out["data"]
    assert next(iter(out["data"])) == "k"


def test_non_object_data_is_replaced_in_place(enrich: Any) -> None:
    out = enrich({"type": "custom.x", "data": [1, 2], "ts": 3})
    assert list(out)[:3] == ["type", "data", "ts"]
    assert out["data"]["eventRole"] == "system.observability"
    assert "0" not in out["data"]


def test_category_version_is_kept_trimmed(enrich: Any) -> None:
    out = enrich({"type": "custom.x", "data": {"categoryVersion": " v7 "}})
    assert out["data"]["categoryVersion"] == "v7"
    assert "categoryVersion" not in out


def test_input_is_not_mutated(enrich: Any) -> None:
    event = {"type": " a2a.send ", "data": {"message": "deploy", "collabIntent": " x "}}
    before = json.dumps(event)
    enrich(event)
    assert json.dumps(event) == before


def test_invalid_explicit_category_is_classified(enrich: Any) -> None:
    out = enrich({"type": "a2a.send", "data": {"collabCategory": "Legal_Compliance",
                                               "message": "deploy"}})
    assert (out["collabCategory"], out["categorySource"]) == ("infra_ops", "rule")
    out = enrich({"type": "a2a.send", "data": {"collabCategory": " legal_compliance "}})
    assert (out["collabCategory"], out["categorySource"]) == ("legal_compliance", "manual")
    assert out["collabSubTags"] == []


# ------------------------------------------------------------------ session types / roles

MAINS = frozenset({"main", "ruda", "eden"})


@pytest.mark.parametrize(("key", "expected"), [
    (None, "unknown"), ("agent:eden:main", "main"), ("AGENT:Eden:MAIN", "main"),
    ("agent:eden:subagent:1", "subagent"), ("agent:eden:SUBAGENT:1", "unknown"),
    ("agent:a:b:main", "unknown"), ("agent:eden:main:x", "unknown"), ("agent::main", "unknown"),
    ("agent:eden:ma\u0130n", "unknown"),  # JS /i without u folds ASCII letters only
    ("xagent:eden:main", "unknown"), ("agent:eden:a2a:conv", "unknown"),
])
def test_key_type(key: str | None, expected: str) -> None:
    assert key_type(key) == expected


def types_of(data: dict[str, Any], etype: str = "a2a.send", agent: str | None = None
             ) -> tuple[str, str, bool]:
    event: dict[str, Any] = {"type": etype, "data": data}
    if agent is not None:
        event["agentId"] = agent
    return session_types(etype, data, *resolve_agents(event, data), MAINS)


def test_explicit_session_types_need_both_sides() -> None:
    assert types_of({"fromSessionType": "subagent", "toSessionType": "main"})[:2] == (
        "subagent", "main")
    # one valid value alone is ignored: both derived
    assert types_of({"fromSessionType": "subagent", "toSessionType": "boss",
                     "fromAgent": "eden", "toAgent": "ruda"})[:2] == ("main", "main")


def test_session_keys_and_their_precedence() -> None:
    assert types_of({"sourceSessionKey": "agent:x:subagent:1",
                     "requesterSessionKey": "agent:x:main",
                     "targetSessionKey": "agent:y:main"})[:2] == ("subagent", "main")
    assert types_of({"requesterSessionKey": "agent:x:main", "sessionKey": "agent:x:subagent:"
                     })[:2] == ("main", "unknown")
    assert types_of({"sessionKey": "agent:x:subagent:2"})[:2] == ("subagent", "unknown")


def test_spawn_types_are_forced() -> None:
    assert types_of({"sourceSessionKey": "agent:x:subagent:1"}, "a2a.spawn_result")[:2] == (
        "main", "subagent")


def test_agent_ids_and_hints() -> None:
    assert types_of({}, agent="Eden ")[:2] == ("main", "unknown")       # agentId, lower+trim
    assert types_of({"senderAgentId": "zed", "targetAgentId": "EDEN"})[:2] == ("unknown", "main")
    # hint: the non-main side of a pair with a main agent is a subagent
    assert types_of({"fromAgent": "zed", "toAgent": "ruda", "hop": 0}) == (
        "subagent", "main", True)
    assert types_of({"fromAgent": "zed", "toAgent": "ruda",
                     "parentConversationId": " p "}) == ("subagent", "main", True)
    assert types_of({"fromAgent": "zed", "toAgent": "ruda", "depth": True}) == (
        "unknown", "main", False)                                        # booleans: no number
    assert types_of({"fromAgent": "zed", "toAgent": "yon", "depth": 1}) == (
        "unknown", "unknown", True)


@pytest.mark.parametrize(("etype", "data", "types", "expected"), [
    ("task.started", {"eventRole": "conversation.main"}, ("main", "main"), "conversation.main"),
    ("task.started", {"eventRole": "bogus"}, ("main", "main"), "orchestration.task"),
    ("continuation.sent", {}, ("main", "main"), "orchestration.task"),
    ("unblock.requested", {}, ("main", "main"), "orchestration.task"),
    ("zombie.abandoned", {}, ("main", "main"), "orchestration.task"),
    ("resume_reminder.sent", {}, ("main", "main"), "orchestration.task"),
    ("backlog.auto_picked", {}, ("main", "main"), "orchestration.task"),
    ("Task.started", {}, ("main", "main"), "system.observability"),
    ("milestone.sync_failed", {}, ("main", "main"), "system.observability"),
    ("milestone.other", {}, ("main", "main"), "system.observability"),
    ("a2a.send", {}, ("main", "main"), "conversation.main"),
    ("a2a.send", {}, ("main", "unknown"), "delegation.subagent"),
    ("a2a.send", {}, ("subagent", "main"), "delegation.subagent"),
    ("a2a.spawn", {}, ("main", "main"), "delegation.subagent"),
])
def test_event_role_rules(etype: str, data: dict[str, Any], types: tuple[str, str],
                          expected: str) -> None:
    assert event_role(etype, data, *types, False) == expected


def test_hint_makes_a2a_delegation() -> None:
    assert event_role("a2a.send", {}, "main", "main", True) == "delegation.subagent"


def test_main_agent_set_is_read_per_event() -> None:
    mains = {"value": DEFAULT_MAIN_AGENTS}
    host = PluginHost(load_entry_points=False)
    host.start()
    enricher = Enricher(host, host.vocabulary(), lambda: mains["value"])
    event = {"type": "a2a.send", "data": {"fromAgent": "eden", "toAgent": "ruda"}}
    assert ok(enricher.enrich(event))["fromSessionType"] == "unknown"
    mains["value"] = frozenset({"eden"})
    assert ok(enricher.enrich(event))["fromSessionType"] == "main"


def test_without_classifiers_everything_falls_back() -> None:
    host = PluginHost(load_entry_points=False)
    host.start()
    out = ok(Enricher(host, host.vocabulary(), lambda: DEFAULT_MAIN_AGENTS).enrich(
        {"type": "a2a.send", "data": {"message": "deploy"}}))
    assert (out["collabCategory"], out["categorySource"]) == ("engineering_build", "fallback")


def test_enricher_needs_a_started_host() -> None:
    with pytest.raises(RuntimeError, match="start"):
        Enricher(PluginHost(load_entry_points=False), BUILTIN_VOCABULARY,
                 lambda: DEFAULT_MAIN_AGENTS)


# ------------------------------------------------------------------ recorded upstream answers


@pytest.mark.parametrize("corpus", ["past", "future"])
def test_every_event_the_old_monitor_served_is_reproduced(tmp_path: Path, corpus: str) -> None:
    """Enrich the parity log; each enriched event in the recorded responses must be
    among ours, byte for byte (so key order too), and the category counts must agree."""
    src = PARITY / f"dev-{corpus}"
    host = PluginHost(allow=["keywords"])  # the built-in through its entry point, nothing else
    host.start()
    enricher = Enricher(host, host.vocabulary(), MainAgents(src / "openclaw.json").current)
    ours = []
    for line in (src / "coordination-events.ndjson").read_bytes().split(b"\n"):
        parsed = parse_line(line)
        if parsed.reason is None:
            out = enricher.enrich(parsed.value)
            if out is not None:
                ours.append(out)
    with tarfile.open(src / "upstream-responses.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    latest = json.loads((tmp_path / "GET_api_events__limit=250.json").read_text())
    assert latest["total"] == len(ours)
    assert latest["categoryCounts"] == dict(Counter(e["collabCategory"] for e in ours))
    assert [dumps(e) for e in latest["events"]] == [dumps(e) for e in ours[-250:]]
    known = {dumps(e) for e in ours}
    seen = 0
    for path in tmp_path.glob("*.json"):
        text = path.read_text()
        if not text.startswith(("{", "[")):  # empty bodies, plain-text errors
            continue
        stack = [json.loads(text)]
        while stack:
            item = stack.pop()
            if isinstance(item, dict) and "categorySource" in item and "data" in item:
                seen += 1
                assert dumps(item) in known, (path.name, item)
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    assert seen > 10_000
    assert enricher.rejected["internal_error"] == 0


def test_enrich_event_matches_event_of_enrich_on_a_generated_log() -> None:
    """Every line of a realistic generated log (with junk): the fused record equals
    `Event(0, enrich(value))` field for field, and rejections are counted alike."""
    from coordd.core.event import Event
    from coordd.synth.gen import lines

    fused_enricher, plain_enricher = make(), make()
    fields = ("seq", "ts", "type", "agent_id", "role", "category", "sub_tags", "ws_id",
              "thread", "conversation_id", "from_agent", "to_agent", "terminal", "json")
    seen = 0
    for raw in lines(3000, seed=11, junk=0.05):
        parsed = parse_line(raw.rstrip(b"\n"))
        if parsed.reason is not None:
            continue
        fused = fused_enricher.enrich_event(parsed.value, 7)
        enriched = plain_enricher.enrich(parsed.value)
        assert (fused is None) == (enriched is None)
        if enriched is None:
            continue
        ref = Event(7, enriched)
        assert [getattr(fused, f) for f in fields] == [getattr(ref, f) for f in fields]
        seen += 1
    assert seen > 2500
    assert fused_enricher.rejected == plain_enricher.rejected


def test_a_plugin_category_is_the_event_record_category() -> None:
    """A declared category is the record's category (filters, sessions and stats read it);
    a category outside the vocabulary is taken as engineering_build, as before."""
    from coordd import Classification, hookimpl
    from coordd.core.event import Event
    from coordd.plugins import keywords

    class Billing:
        @hookimpl
        def coordd_categories(self) -> list[str]:
            return ["billing"]

        @hookimpl
        def coordd_classify_event(self, data: Any) -> Classification | None:
            return Classification("billing") if "invoice" in str(data.get("message")) else None

    host = PluginHost(load_entry_points=False,
                      extra=[("keywords", keywords), ("billing", Billing())], budget=1e9)
    host.start()
    enricher = Enricher(host, host.vocabulary(), lambda: DEFAULT_MAIN_AGENTS)
    assert enricher.categories.extra == ("billing",)
    value = {"type": "a2a.send", "ts": 1, "data": {"message": "the invoice"}}
    fused = enricher.enrich_event(value, 3)
    enriched = enricher.enrich(value)
    assert fused is not None and enriched is not None
    assert fused.category == Event(3, enriched, categories=enricher.categories).category \
        == "billing"
    assert Event(3, enriched).category == "engineering_build"  # the built-in ten only
