"""coordd-rules: settings validation, matching, and behaviour inside a real coordd host."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

try:
    import coordd_rules
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import coordd_rules

from coordd import Classification
from coordd.testing import enricher_with, make_event


def configured(settings: Mapping[str, Any]) -> coordd_rules.RulesPlugin:
    plugin = coordd_rules.RulesPlugin()
    plugin.coordd_startup(settings)
    return plugin


def classify(plugin: coordd_rules.RulesPlugin, message: str, etype: str = "a2a.send",
             **data: Any) -> Classification | None:
    answer: Classification | None = plugin.coordd_classify_event(
        {"type": etype}, {"message": message, **data})
    return answer


def test_defaults_classify_security_out_of_the_box() -> None:
    plugin = configured({})
    assert plugin.coordd_categories() == ["security"]
    got = classify(plugin, "Patch CVE-2024-1234 and the XSS vulnerability")
    assert got == Classification("security", ("cve-2024-1234", "vulnerability", "xss"), 0.85,
                                 "rules", "rules-v1")
    assert classify(plugin, "write the docs") is None


def test_most_matching_patterns_win_and_ties_go_to_the_first_declared() -> None:
    plugin = configured({"categories": {
        "alpha": {"patterns": ["red"]},
        "beta": {"patterns": ["red", "blue"]},
        "gamma": {"patterns": ["green"]},
    }})
    assert classify(plugin, "red blue").category == "beta"  # type: ignore[union-attr]
    assert classify(plugin, "red").category == "alpha"  # type: ignore[union-attr]
    assert classify(plugin, "green red").category == "alpha"  # type: ignore[union-attr]


def test_types_fields_source_version_and_confidence() -> None:
    plugin = configured({
        "fields": ["title"], "source": "ops-rules", "version": "r2",
        "categories": {"oncall": {"patterns": ["pager"], "types": ["a2a.*"],
                                  "confidence": 1}}})
    assert classify(plugin, "pager") is None  # message is not a configured field
    got = classify(plugin, "", title="Pager duty")
    assert got == Classification("oncall", ("pager",), 1.0, "ops-rules", "r2")
    assert classify(plugin, "", etype="task.started", title="pager") is None


def test_sub_tags_are_distinct_and_at_most_five() -> None:
    plugin = configured({"categories": {"c": {"patterns": [
        "a", "b", "c", "d", "e", "f", "A"]}}})
    got = classify(plugin, "a b c d e f")
    assert got is not None and got.sub_tags == ("a", "b", "c", "d", "e")


@pytest.mark.parametrize(("settings", "message"), [
    ({"colour": 1}, "[plugins.rules] colour: unknown key"),
    ({"fields": "message"}, "[plugins.rules] fields: expected a list"),
    ({"source": "manual"}, "[plugins.rules] source: 'manual' is reserved"),
    ({"version": ""}, "[plugins.rules] version: expected a non-empty string"),
    ({"categories": []}, "[plugins.rules] categories: expected a table"),
    ({"categories": {"a b": {"patterns": ["x"]}}}, "[plugins.rules.categories.a b]"),
    ({"categories": {"x": {"patterns": ["("]}}}, "'(' is not a valid regular expression"),
    ({"categories": {"x": {"patterns": []}}}, None),
    ({"categories": {"x": {}}}, "[plugins.rules.categories.x] patterns: expected a list"),
    ({"categories": {"x": {"patterns": ["y"], "confidence": 2}}}, "confidence"),
    ({"categories": {"x": {"patterns": ["y"], "confidence": True}}}, "confidence"),
    ({"categories": {"x": {"patterns": ["y"], "weight": 2}}}, "x] weight: unknown key"),
])
def test_bad_settings_name_the_key(settings: dict[str, Any], message: str | None) -> None:
    if message is None:  # an empty pattern list is legal: the category never matches
        assert classify(configured(settings), "y") is None
        return
    with pytest.raises(ValueError) as info:
        configured(settings)
    assert message in str(info.value)


def test_inside_a_coordd_host_rules_beat_the_builtin_keywords() -> None:
    enricher = enricher_with(("rules", coordd_rules.RulesPlugin()), settings={"rules": {
        "categories": {"security": {"patterns": [r"\bcve-\d+"]}}}})
    assert "security" in enricher.categories
    out = enricher.enrich(make_event("a2a.send", {"message": "deploy fix for CVE-7"}))
    assert (out["collabCategory"], out["categorySource"]) == ("security", "rules")
    out = enricher.enrich(make_event("a2a.send", {"message": "deploy"}))
    assert (out["collabCategory"], out["categorySource"]) == ("infra_ops", "rule")
