"""coordd.testing: the plugin authors' helpers answer as coordd does and raise on the
failures coordd survives in production."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from coordd import Classification, hookimpl
from coordd.testing import EVENT_TS, PluginFailure, classify, enricher_with, make_event


class Acme:
    """Declares `security`; answers it for CVEs, something invalid for `bad`, raises for
    `boom`, and reads its `threshold` setting at start-up."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    @hookimpl
    def coordd_startup(self, settings: Mapping[str, Any]) -> None:
        if settings.get("threshold", 1) < 0:
            raise ValueError("threshold must not be negative")

    @hookimpl
    def coordd_categories(self) -> list[str]:
        return ["security"]

    @hookimpl
    def coordd_classify_event(self, data: Mapping[str, Any], role: str,
                              from_session_type: str, to_session_type: str
                              ) -> Classification | None:
        self.asked.append((role, from_session_type, to_session_type))
        text = str(data.get("message", "")).lower()
        if "boom" in text:
            raise RuntimeError("boom")
        if "bad" in text:
            return Classification("no_such_category")
        if "cve-" in text:
            return Classification("security", ("cve",), 0.9)
        return None


def test_make_event_is_a_raw_log_event() -> None:
    assert make_event() == {"type": "a2a.send", "ts": EVENT_TS, "data": {}}
    assert make_event("task.started", {"n": 1}, ts=None, agentId="ruda") == {
        "type": "task.started", "agentId": "ruda", "data": {"n": 1}}


def test_classify_gives_the_checked_answer_with_the_source_defaulted() -> None:
    acme = Acme()
    event = make_event("a2a.send", {"message": "CVE-1", "fromAgent": "ruda", "toAgent": "x"})
    assert classify(("acme", acme), event) == Classification("security", ("cve",), 0.9, "acme")
    assert acme.asked == [("delegation.subagent", "main", "unknown")]
    assert classify(("acme", acme), make_event(data={"message": "lunch"})) is None
    # The main agents decide the session types the hook is given.
    classify(("acme", acme), event, main_agents=["RUDA", "x"])
    assert acme.asked[-1] == ("conversation.main", "main", "main")


def test_a_plugin_is_named_after_its_class_without_a_name() -> None:
    assert classify(Acme(), make_event(data={"message": "cve-2"})).source == "Acme"  # type: ignore[union-attr]


@pytest.mark.parametrize(("message", "failure"), [
    ("boom", "plugin 'acme': classification raised: RuntimeError('boom')"),
    ("bad", "plugin 'acme': classification invalid: unknown category 'no_such_category'"),
])
def test_a_failing_answer_raises(message: str, failure: str) -> None:
    with pytest.raises(PluginFailure) as info:
        classify(("acme", Acme()), make_event(data={"message": message}))
    assert str(info.value) == failure
    enricher = enricher_with(("acme", Acme()))
    with pytest.raises(PluginFailure) as info:
        enricher.enrich(make_event(data={"message": message}))
    assert str(info.value) == failure


def test_a_slow_answer_raises_only_with_a_budget() -> None:
    assert classify(("acme", Acme()), make_event(data={"message": "cve-1"})) is not None
    with pytest.raises(PluginFailure, match="classification slow"):
        classify(("acme", Acme()), make_event(data={"message": "cve-1"}), budget=-1.0)


def test_enricher_with_asks_the_plugin_before_the_builtin_keywords() -> None:
    enricher = enricher_with(("acme", Acme()), settings={"acme": {"threshold": 3}})
    assert enricher.categories[-1] == "security" and len(enricher.categories) == 11
    out = enricher.enrich(make_event(data={"message": "deploy the CVE-1 fix"}))
    assert (out["collabCategory"], out["categorySource"], out["collabSubTags"]) == (
        "security", "acme", ["cve"])
    out = enricher.enrich(make_event(data={"message": "deploy"}))
    assert (out["collabCategory"], out["categorySource"]) == ("infra_ops", "rule")


@pytest.mark.parametrize(("settings", "failure"), [
    ({"acme": {"threshold": -1}}, "coordd_startup raised ValueError('threshold must not"),
    ({"acmee": {}}, "plugin 'acmee': named in [plugins.<name>] settings but not installed"),
])
def test_a_plugin_that_cannot_start_as_configured_raises(settings: Any, failure: str) -> None:
    with pytest.raises(PluginFailure, match=re.escape(failure)):
        enricher_with(("acme", Acme()), settings=settings)


def test_not_an_event_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not an event"):
        enricher_with().enrich({"data": {}})
    with pytest.raises(ValueError, match="not an event"):
        classify(("acme", Acme()), {"type": "  "})
