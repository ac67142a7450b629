"""The plugin host: one `test_hook_<name>` per hook, precedence, isolation, loading."""

from __future__ import annotations

import itertools
import logging
import sys
import textwrap
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from coordd import Classification, hookimpl
from coordd.core.enrich import Enricher
from coordd.core.vocabulary import CATEGORIES
from coordd.plugins import keywords
from coordd.plugins.host import PluginHost, allow_list_from_env
from coordd.service.mainagents import DEFAULT_MAIN_AGENTS

try:
    import coordd_rules
except ImportError:  # not pip-installed: use the source tree of the example distribution
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins/coordd-rules/src"))
    import coordd_rules

DEPLOY = {"type": "a2a.send", "ts": 1, "data": {"message": "deploy it"}}


def host_with(*plugins: object, start: bool = True, **kwargs: Any) -> PluginHost:
    host = PluginHost(load_entry_points=False,
                      extra=[("keywords", keywords), *plugins], **kwargs)
    if start:
        host.start()
    return host


class Strict:
    """An Enricher for events that must be accepted."""

    def __init__(self, host: PluginHost) -> None:
        self.inner = Enricher(host, host.vocabulary(), lambda: DEFAULT_MAIN_AGENTS)

    def enrich(self, value: Any) -> dict[str, Any]:
        out = self.inner.enrich(value)
        assert out is not None, value
        return out


def enricher(host: PluginHost) -> Strict:
    return Strict(host)


class Answer:
    """A classifier that answers a fixed classification (or None) and records its calls."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    @hookimpl
    def coordd_classify_event(self, event: Mapping[str, Any], data: Mapping[str, Any],
                              role: str, from_session_type: str, to_session_type: str,
                              settings: Mapping[str, Any]) -> Any:
        self.calls.append({"event": event, "data": data, "role": role,
                           "from": from_session_type, "to": to_session_type,
                           "settings": settings})
        return self.answer


class Raises:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def coordd_classify_event(self) -> Classification:
        self.calls += 1
        raise ZeroDivisionError("boom")


SECURITY = Classification("biz_strategy", ("x",), 0.5, "mine", "m1")


# ------------------------------------------------------------------ one test per hook


def test_hook_coordd_startup() -> None:
    order: list[str] = []

    class Plug:
        @hookimpl
        def coordd_startup(self, settings: Mapping[str, Any]) -> None:
            order.append(f"startup {dict(settings)}")
            with pytest.raises(TypeError):
                settings["x"] = 1  # type: ignore[index]  # settings are read-only

        @hookimpl
        def coordd_categories(self) -> list[str]:
            order.append("categories")
            return []

    class Other:
        @hookimpl
        def coordd_startup(self, settings: Mapping[str, Any]) -> None:
            order.append(f"other {dict(settings)}")

    host = host_with(("plug", Plug()), ("other", Other()), start=False,
                     settings={"plug": {"threshold": 3}, "other": {"k": "v"}})
    assert order == []  # nothing runs before start()
    host.start()
    host.start()  # idempotent
    assert order == ["startup {'threshold': 3}", "categories", "other {'k': 'v'}"]


def test_hook_coordd_startup_failure_drops_only_that_plugin(
        caplog: pytest.LogCaptureFixture) -> None:
    class Bad:
        @hookimpl
        def coordd_startup(self, settings: Mapping[str, Any]) -> None:
            raise ValueError("[plugins.bad] level: expected a number")

        @hookimpl
        def coordd_classify_event(self) -> Classification:
            return SECURITY

    with caplog.at_level(logging.ERROR, logger="coordd.plugins.host"):
        host = host_with(("bad", Bad()))
    assert ("bad", "fail") in [(n, s) for n, s, _ in host.status()]
    assert "expected a number" in dict((n, m) for n, _, m in host.status())["bad"]
    assert "[plugins.bad] level" in caplog.text
    row = next(r for r in host.describe() if r["name"] == "bad")
    assert row["enabled"] is False and row["hooks"] == []
    assert enricher(host).enrich(dict(DEPLOY))["collabCategory"] == "infra_ops"


def test_hook_coordd_categories() -> None:
    class Plug:
        @hookimpl
        def coordd_categories(self, settings: Mapping[str, Any]) -> list[Any]:
            return [*settings["names"], "infra_ops", "", " padded ", 7]

        @hookimpl
        def coordd_classify_event(self, data: Mapping[str, Any]) -> Classification | None:
            if data.get("message") == "vuln":
                return Classification("security", ("cve",), 0.9, "sec")
            return None

    host = host_with(("sec", Plug()), settings={"sec": {"names": ["security", "finance"]}})
    assert host.categories() == (*CATEGORIES, "security", "finance")
    assert "security" in host.vocabulary() and "padded" not in host.vocabulary()
    # What each plugin declared (valid names, built-in ones included), for `coordd plugins`.
    assert next(p for p in host.describe() if p["name"] == "sec")["categories"] == [
        "security", "finance", "infra_ops"]
    warn = dict((n, (s, m)) for n, s, m in host.status())["sec"]
    assert warn[0] == "warn" and "invalid category name ''" in warn[1]
    e = enricher(host)
    out = e.enrich({"type": "a2a.send", "data": {"message": "vuln"}})
    assert (out["collabCategory"], out["categorySource"]) == ("security", "sec")
    # an explicit category a plugin introduced is accepted as manual
    out = e.enrich({"type": "a2a.send", "data": {"collabCategory": "finance"}})
    assert (out["collabCategory"], out["categorySource"]) == ("finance", "manual")


def test_undeclared_categories_are_invalid() -> None:
    host = host_with(("p", Answer(Classification("security", (), 0.9, "x"))))
    out = enricher(host).enrich(dict(DEPLOY))
    assert (out["collabCategory"], out["categorySource"]) == ("infra_ops", "rule")
    assert host.statistics().plugins["p"].errors == {"invalid": 1}


def test_hook_coordd_classify_event() -> None:
    plug = Answer(SECURITY)
    host = host_with(("mine", plug), settings={"mine": {"level": 2}})
    event = {"type": " a2a.spawn ", "agentId": "ruda", "ts": 1,
             "data": {"fromAgent": "ruda", "toAgent": "eden", "message": "deploy"}}
    out = enricher(host).enrich(event)
    assert (out["collabCategory"], out["collabSubTags"], out["categoryConfidence"],
            out["categorySource"], out["data"]["categoryVersion"]) == (
        "biz_strategy", ["x"], 0.5, "mine", "m1")
    (call,) = plug.calls
    assert call["event"]["type"] == " a2a.spawn "  # the event as read
    assert call["data"]["message"] == "deploy"
    assert (call["role"], call["from"], call["to"]) == ("delegation.subagent", "main",
                                                        "subagent")
    assert dict(call["settings"]) == {"level": 2}
    with pytest.raises(TypeError):
        call["event"]["type"] = "x"  # read-only views
    with pytest.raises(TypeError):
        call["data"]["message"] = "x"


def test_classifier_may_take_any_subset_of_arguments() -> None:
    seen: list[Any] = []

    class Minimal:
        @hookimpl
        def coordd_classify_event(self, role: str) -> None:
            seen.append(role)

    class WithDefault:
        @hookimpl
        def coordd_classify_event(self, event: Mapping[str, Any],
                                  settings: Mapping[str, Any] | None = None) -> None:
            seen.append(dict(settings or {}))

    host = host_with(("min", Minimal()), ("dflt", WithDefault()), settings={"dflt": {"a": 1}})
    enricher(host).enrich(dict(DEPLOY))
    assert seen == [{"a": 1}, "delegation.subagent"]


# ------------------------------------------------------------------ precedence


def test_an_answering_plugin_beats_keywords_and_a_declining_one_does_not() -> None:
    declines = Answer(None)
    host = host_with(("no", declines))
    out = enricher(host).enrich(dict(DEPLOY))
    assert (out["collabCategory"], out["categorySource"]) == ("infra_ops", "rule")
    assert len(declines.calls) == 1
    host = host_with(("yes", Answer(SECURITY)))
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "mine"


def test_keywords_are_trylast_even_when_registered_last() -> None:
    host = PluginHost(load_entry_points=False,
                      extra=[("yes", Answer(SECURITY)), ("keywords", keywords)])
    host.start()
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "mine"


def test_pluggy_order_tryfirst_then_latest_registered() -> None:
    class First:
        @hookimpl(tryfirst=True)
        def coordd_classify_event(self) -> Classification:
            return Classification("qa_validation", (), 0.4, "first")

    host = host_with(("first", First()), ("b", Answer(SECURITY)))
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "first"
    host = host_with(("a", Answer(Classification("qa_validation", (), 0.4, "a"))),
                     ("b", Answer(SECURITY)))
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "mine"  # b: registered last


def test_explicit_category_wins_and_no_classifier_is_asked() -> None:
    plug = Answer(SECURITY)
    out = enricher(host_with(("mine", plug))).enrich(
        {"type": "a2a.send", "data": {"collabCategory": "docs_knowledge", "message": "deploy"}})
    assert (out["collabCategory"], out["categorySource"]) == ("docs_knowledge", "manual")
    assert plug.calls == []


def test_source_defaults_to_the_plugin_name_and_version_to_the_event() -> None:
    host = host_with(("namer", Answer(Classification("qa_validation", ["t"], 1.0))))
    out = enricher(host).enrich({"type": "x", "data": {"categoryVersion": "v9"}})
    assert (out["categorySource"], out["data"]["categoryVersion"]) == ("namer", "v9")
    assert out["categoryConfidence"] == 1 and type(out["categoryConfidence"]) is int
    assert out["collabSubTags"] == ["t"]


# ------------------------------------------------------------------ isolation


def _events(n: int) -> list[dict[str, Any]]:
    words = ["deploy", "docs", "plan", "qa", "roadmap", "hello", "코드 구현", ""]
    types_ = ["a2a.send", "task.updated", "custom.x", "a2a.response"]
    return [{"type": t, "agentId": "ruda", "ts": i,
             "data": {"fromAgent": "ruda", "toAgent": "eden", "message": w}}
            for i, (t, w) in enumerate(zip(itertools.cycle(types_), itertools.islice(
                itertools.cycle(words), n), strict=False))]


def test_a_plugin_raising_on_every_event_leaves_builtin_categories(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    raiser = Raises()
    host = host_with(("raiser", raiser), clock=lambda: now[0], log_interval=60)
    baseline = enricher(host_with())
    e = enricher(host)
    events = _events(40)
    with caplog.at_level(logging.WARNING, logger="coordd.plugins.host"):
        outs = [e.enrich(ev) for ev in events]
        assert outs == [baseline.enrich(ev) for ev in events]
        assert raiser.calls == 40
        logged = [r for r in caplog.records if "raiser" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None  # rate-limited
        now[0] += 61
        e.enrich(events[0])
    last = [r for r in caplog.records if "raiser" in r.getMessage()][-1]
    assert "(39 more like this since the last message)" in last.getMessage()
    stats = host.statistics().plugins["raiser"]
    assert (stats.calls, stats.answers, dict(stats.errors)) == (41, 0, {"raised": 41})
    level, message = dict((n, (s, m)) for n, s, m in host.status())["raiser"]
    assert level == "warn" and "raised 41" in message


def test_a_plugin_mutating_the_event_is_stopped() -> None:
    class Mutator:
        @hookimpl
        def coordd_classify_event(self, event: Any, data: Any) -> None:
            data["message"] = "hacked"

    host = host_with(("mut", Mutator()))
    data = {"message": "deploy"}
    out = enricher(host).enrich({"type": "a2a.send", "data": data})
    assert data["message"] == "deploy" and out["collabCategory"] == "infra_ops"
    assert host.statistics().plugins["mut"].errors == {"raised": 1}


@pytest.mark.parametrize("answer", [
    {"category": "infra_ops"},
    "qa_validation",
    Classification("nope", (), 0.5, "x"),
    Classification("qa_validation", ("a",) * 6, 0.5, "x"),
    Classification("qa_validation", ("a", ""), 0.5, "x"),
    Classification("qa_validation", ("a", 3), 0.5, "x"),  # type: ignore[arg-type]
    Classification("qa_validation", "abc", 0.5, "x"),
    Classification("qa_validation", (), 1.01, "x"),
    Classification("qa_validation", (), -0.1, "x"),
    Classification("qa_validation", (), float("nan"), "x"),
    Classification("qa_validation", (), True, "x"),
    Classification("qa_validation", (), "0.5", "x"),  # type: ignore[arg-type]
    Classification("qa_validation", (), 0.5, "manual"),
    Classification("qa_validation", (), 0.5, "fallback"),
    Classification("qa_validation", (), 0.5, ""),
    Classification("qa_validation", (), 0.5, "x", ""),
])
def test_invalid_answers_are_discarded_and_counted(answer: Any) -> None:
    host = host_with(("bad", Answer(answer)))
    out = enricher(host).enrich(dict(DEPLOY))
    assert (out["collabCategory"], out["categorySource"]) == ("infra_ops", "rule")
    assert host.statistics().plugins["bad"].errors == {"invalid": 1}


def test_a_failing_plugin_lets_the_next_classifier_answer() -> None:
    host = host_with(("second", Answer(SECURITY)), ("first", Raises()))
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "mine"


class Slow:
    """Takes `cost` seconds of the fake clock per call."""

    def __init__(self, now: list[float], cost: float) -> None:
        self.now, self.cost, self.calls = now, cost, 0

    @hookimpl
    def coordd_classify_event(self) -> Classification:
        self.calls += 1
        self.now[0] += self.cost
        return SECURITY


def test_slow_answers_are_discarded_then_the_plugin_is_suspended_and_resumed(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    slow = Slow(now, 0.5)
    host = host_with(("slow", slow), clock=lambda: now[0], budget=0.1, slow_limit=3,
                     cooldown=30.0)
    e = enricher(host)
    with caplog.at_level(logging.WARNING, logger="coordd.plugins.host"):
        for _ in range(3):
            assert e.enrich(dict(DEPLOY))["categorySource"] == "rule"
    assert "suspended for 30 s" in caplog.text
    stats = host.statistics().plugins["slow"]
    assert (stats.suspended, stats.suspensions, dict(stats.errors)) == (True, 1, {"slow": 3})
    assert ("slow", "warn") in [(n, s) for n, s, _ in host.status()]
    for _ in range(5):  # suspended: not called at all
        assert e.enrich(dict(DEPLOY))["categorySource"] == "rule"
    assert slow.calls == 3
    now[0] += 30.0
    slow.cost = 0.01  # it recovered
    assert e.enrich(dict(DEPLOY))["categorySource"] == "mine"
    stats = host.statistics().plugins["slow"]
    assert (stats.suspended, stats.calls, stats.answers) == (False, 4, 1)


def test_a_fast_call_resets_the_slow_streak() -> None:
    now = [0.0]
    slow = Slow(now, 0.5)
    host = host_with(("slow", slow), clock=lambda: now[0], budget=0.1, slow_limit=2)
    e = enricher(host)
    for cost in (0.5, 0.01, 0.5, 0.01, 0.5):
        slow.cost = cost
        e.enrich(dict(DEPLOY))
    assert host.statistics().plugins["slow"].suspended is False


def test_the_builtin_is_never_timed_out() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 5.0  # every reading is five seconds later: every call looks slow
        return now[0]

    host = PluginHost(allow=["keywords"], clock=clock, budget=0.1, slow_limit=1)
    host.start()
    e = enricher(host)
    for _ in range(3):
        assert e.enrich(dict(DEPLOY))["categorySource"] == "rule"
    assert host.statistics().plugins["keywords"].errors == {}


def test_classify_needs_start() -> None:
    host = host_with(start=False)
    with pytest.raises(RuntimeError, match="start"):
        host.classify({}, {}, "x", "main", "main")


def test_wrappers_of_classify_are_ignored_with_a_warning() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def coordd_classify_event(self) -> Any:
            return (yield)

    host = host_with(("wrap", Wrapper()))
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "rule"
    level, message = dict((n, (s, m)) for n, s, m in host.status())["wrap"]
    assert level == "warn" and "wrappers" in message


# ------------------------------------------------------------------ loading


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install fake distributions (metadata + entry points) on a temporary sys.path entry."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made: list[str] = []

    def install(dist: str, version: str, entry_points: dict[str, str],
                modules: dict[str, str]) -> None:
        info = root / f"{dist}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\n"
                                       f"Version: {version}\n")
        (info / "entry_points.txt").write_text(
            "[coordd]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
        for name, source in modules.items():
            (root / f"{name}.py").write_text(textwrap.dedent(source))
            made.append(name)

    yield install
    for name in made:
        sys.modules.pop(name, None)


PLUGIN_SOURCE = """
    from coordd import Classification, hookimpl
    IMPORTED = True

    @hookimpl
    def coordd_classify_event(data):
        if data.get("message") == "vuln":
            return Classification("qa_validation", ("vuln",), 0.9, "{name}")
"""


def test_entry_points_are_loaded_with_their_distribution_version(site: Any) -> None:
    site("coordd-fake", "1.2.3", {"fake": "fakeplug_a"},
         {"fakeplug_a": PLUGIN_SOURCE.format(name="fake")})
    host = PluginHost(allow=["keywords", "fake"])
    host.start()
    rows = {r["name"]: r for r in host.describe()}
    assert rows["fake"] == {"name": "fake", "version": "1.2.3",
                            "hooks": ["coordd_classify_event"], "enabled": True,
                            "builtin": False, "origin": "entry point fakeplug_a",
                            "categories": []}
    assert rows["keywords"]["builtin"] is True
    assert rows["keywords"]["origin"] == "entry point coordd.plugins.keywords"
    out = enricher(host).enrich({"type": "a2a.send", "data": {"message": "vuln"}})
    assert out["categorySource"] == "fake"


def test_disabled_and_not_allowed_plugins_are_not_even_imported(site: Any) -> None:
    site("coordd-fake", "1.0", {"fake": "fakeplug_b", "other": "fakeplug_c"},
         {"fakeplug_b": PLUGIN_SOURCE.format(name="fake"),
          "fakeplug_c": PLUGIN_SOURCE.format(name="other")})
    host = PluginHost(disabled=["fake"], allow=["keywords", "fake"])
    host.start()
    assert "fakeplug_b" not in sys.modules and "fakeplug_c" not in sys.modules
    rows = {r["name"]: r for r in host.describe()}
    assert rows["fake"]["enabled"] is False and "disabled" in rows["fake"]["reason"]
    assert rows["other"]["enabled"] is False and "allow-list" in rows["other"]["reason"]
    out = enricher(host).enrich({"type": "a2a.send", "data": {"message": "vuln"}})
    assert out["categorySource"] == "fallback"


def test_a_plugin_that_cannot_be_imported_is_reported(site: Any,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    site("coordd-broken", "0.1", {"broken": "fakeplug_d"},
         {"fakeplug_d": "raise ImportError('needs libfoo')\n"})
    with caplog.at_level(logging.ERROR, logger="coordd.plugins.host"):
        host = PluginHost(allow=["keywords", "broken"])
    host.start()
    level, message = dict((n, (s, m)) for n, s, m in host.status())["broken"]
    assert level == "fail" and "needs libfoo" in message
    assert "needs libfoo" in caplog.text
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "rule"


def test_check_pending_rejects_an_unknown_hook(site: Any) -> None:
    site("coordd-typo", "0.1", {"typo": "fakeplug_e"}, {"fakeplug_e": """
        from coordd import hookimpl

        @hookimpl
        def coordd_clasify_event(event):
            return None
    """})
    host = PluginHost(allow=["keywords", "typo"])
    host.start()
    level, message = dict((n, (s, m)) for n, s, m in host.status())["typo"]
    assert level == "fail" and "coordd_clasify_event" in message
    assert next(r for r in host.describe() if r["name"] == "typo")["hooks"] == []


def test_an_implementation_with_unknown_arguments_is_rejected(site: Any) -> None:
    site("coordd-args", "0.1", {"args": "fakeplug_f"}, {"fakeplug_f": """
        from coordd import hookimpl

        @hookimpl
        def coordd_classify_event(event, colour):
            return None
    """})
    host = PluginHost(allow=["keywords", "args"])
    host.start()
    level, message = dict((n, (s, m)) for n, s, m in host.status())["args"]
    assert level == "fail" and "colour" in message


def test_extras_shadow_entry_points_of_the_same_name() -> None:
    host = PluginHost(allow=["keywords"], extra=[("keywords", Answer(SECURITY))])
    host.start()
    rows = [r for r in host.describe() if r["name"] == "keywords"]
    assert len(rows) == 1 and rows[0]["origin"] == "extra"


def test_status_names_unknown_plugins_and_missing_classifiers() -> None:
    host = PluginHost(load_entry_points=False, disabled=["ghost"], allow=["spectre"],
                      settings={"phantom": {"a": 1}})
    host.start()
    status = host.status()
    assert ("ghost", "warn", "named in [plugins] disabled but not installed") in status
    assert ("spectre", "warn", "named in the allow-list but not installed") in status
    assert ("phantom", "warn", "named in [plugins.<name>] settings but not installed") in status
    assert any(n == "classifiers" and s == "warn" for n, s, _ in status)


def test_statistics_count_calls_answers_and_time() -> None:
    now = [0.0]
    host = host_with(("slowish", Slow(now, 0.05)), clock=lambda: now[0])
    e = enricher(host)
    for _ in range(4):
        e.enrich(dict(DEPLOY))
    stats = host.statistics().plugins
    assert (stats["slowish"].calls, stats["slowish"].answers) == (4, 4)
    assert stats["slowish"].seconds == pytest.approx(0.2)
    assert stats["keywords"].calls == 0  # the chain stopped at the first answer
    with pytest.raises(TypeError):
        stats["x"] = stats["keywords"]  # type: ignore[index]  # a frozen snapshot


def test_plain_module_extras_are_named_after_the_module() -> None:
    module = types.ModuleType("acme.classifier")
    module.coordd_classify_event = hookimpl(lambda: SECURITY)  # type: ignore[attr-defined]
    host = PluginHost(load_entry_points=False, extra=[module])
    host.start()
    assert [r["name"] for r in host.describe()] == ["classifier"]


# ------------------------------------------------------------------ the example distribution


def test_rules_plugin_registered_directly() -> None:
    plugin = coordd_rules.RulesPlugin()
    host = host_with(("rules", plugin), settings={"rules": {"categories": {
        "finance": {"patterns": [r"\binvoice\b", "매출"], "confidence": 0.7},
        "infra_ops": {"patterns": [r"\bkubectl\b"]}}}})
    assert host.categories()[-1:] == ("finance",)
    e = enricher(host)
    out = e.enrich({"type": "a2a.send", "data": {"message": "Send the INVOICE"}})
    assert (out["collabCategory"], out["collabSubTags"], out["categoryConfidence"],
            out["categorySource"], out["data"]["categoryVersion"]) == (
        "finance", ["invoice"], 0.7, "rules", "rules-v1")
    out = e.enrich({"type": "a2a.send", "data": {"message": "kubectl rollout; write docs"}})
    assert (out["collabCategory"], out["categorySource"]) == ("infra_ops", "rules")
    out = e.enrich({"type": "a2a.send", "data": {"message": "write docs"}})
    assert (out["collabCategory"], out["categorySource"]) == ("docs_knowledge", "rule")


def test_rules_plugin_with_bad_settings_fails_alone() -> None:
    host = host_with(("rules", coordd_rules.RulesPlugin()),
                     settings={"rules": {"categories": {"x": {"patterns": ["("]}}}})
    level, message = dict((n, (s, m)) for n, s, m in host.status())["rules"]
    assert level == "fail" and "[plugins.rules.categories.x] patterns" in message
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "rule"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"COORDD_PLUGINS": "keywords, rules ,,"}, ("keywords", "rules")),
    ({"COORDD_PLUGINS": ""}, ()),
])
def test_allow_list_from_env(env: dict[str, str], expected: tuple[str, ...] | None) -> None:
    assert allow_list_from_env(env) == expected


def test_an_empty_allow_list_loads_no_entry_point_plugin() -> None:
    host = PluginHost(allow=allow_list_from_env({"COORDD_PLUGINS": ""}))
    host.start()
    assert all(not r["enabled"] for r in host.describe())
    assert enricher(host).enrich(dict(DEPLOY))["categorySource"] == "fallback"
