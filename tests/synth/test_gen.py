"""The synthetic log generator: shape, mix, determinism, junk, files, CLI."""

from __future__ import annotations

import collections
import itertools
import random
import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordd.core.event import parse_line
from coordd.core.jsvalues import event_time
from coordd.synth import gen
from coordd.synth.engine import stream
from coordd.synth.gen import AGENTS, JUNK_KINDS, generate, lines, main, write_log
from coordd.synth.text import NEUTRAL, QUIRKS, js_slice, uuid4

N = 20_000
SEED = 11

#: Every type the gateway emits (at HEAD or before `ff17f50eb`).
EMITTED_TYPES = {
    "task.started", "task.updated", "task.completed", "task.cancelled", "task.approved",
    "task.blocked", "task.resumed", "task.backlog_added", "task.backlog_picked",
    "continuation.sent", "continuation.backoff", "unblock.requested", "zombie.abandoned",
    "backlog.auto_picked", "milestone.sync_failed", "a2a.auto_route", "a2a.complete",
    "a2a.send", "a2a.response", "a2a.retry", "a2a.spawn", "a2a.spawn_result",
}
#: Declared-only or undeclared types that older real logs nevertheless contain.
LEGACY_TYPES = {"plan.submitted", "plan.approved", "plan.rejected", "continuation.complete",
                "continuation.completed", "resume_reminder.sent"}

#: The keyword classifier's table (test data: what the messages must exercise).
KEYWORDS = {
    "engineering_build": ["implement", "implementation", "build", "feature", "refactor",
                          "bugfix", "fix", "코드", "구현", "개발", "리팩토링", "버그"],
    "infra_ops": ["deploy", "deployment", "infra", "infrastructure", "docker", "k8s", "ops",
                  "incident", "운영", "인프라", "배포", "장애", "서버"],
    "qa_validation": ["test", "testing", "qa", "validation", "verify", "e2e", "회귀", "검증",
                      "테스트", "품질"],
    "planning_decision": ["plan", "planning", "decision", "design", "architecture", "scope",
                          "우선순위", "설계", "기획", "의사결정", "정책"],
    "research_analysis": ["research", "analysis", "investigate", "compare", "benchmark",
                          "root cause", "분석", "조사", "리서치", "원인", "비교"],
    "docs_knowledge": ["doc", "docs", "documentation", "guide", "readme", "wiki", "문서",
                       "가이드", "정리", "기록"],
    "growth_marketing": ["campaign", "marketing", "growth", "experiment", "copy", "funnel",
                         "마케팅", "성장", "캠페인", "전환"],
    "customer_community": ["customer", "community", "support", "ticket", "feedback", "cs",
                           "고객", "커뮤니티", "문의", "피드백"],
    "legal_compliance": ["legal", "compliance", "policy", "terms", "regulation", "contract",
                         "법무", "컴플라이언스", "약관", "규정", "계약"],
    "biz_strategy": ["kpi", "revenue", "strategy", "business", "roadmap", "roi", "비즈니스",
                     "전략", "지표", "매출"],
}
ALL_KEYWORDS = [k for words in KEYWORDS.values() for k in words]
HANGUL = re.compile(r"[\uac00-\ud7a3]")
TIME_KEYS = ("ts", "timestamp", "timestampMs")


@pytest.fixture(scope="module")
def sample() -> list[bytes]:
    return list(lines(N, seed=SEED))


@pytest.fixture(scope="module")
def events(sample: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in sample:
        result = parse_line(line.rstrip(b"\n"))
        assert result.reason is None, line
        out.append(result.value)
    return out


# ---------------------------------------------------------------------------- shape


def test_deterministic_per_seed() -> None:
    assert list(lines(3000, seed=5)) == list(lines(3000, seed=5))
    assert list(lines(3000, seed=5)) != list(lines(3000, seed=6))


def test_generate_yields_exactly_what_lines_writes(sample: list[bytes],
                                                   events: list[dict[str, Any]]) -> None:
    assert list(generate(N, seed=SEED)) == events


@pytest.mark.parametrize("n", [0, 1, 2, 3, 29, 31, 1000])
def test_exact_count(n: int) -> None:
    assert sum(1 for _ in generate(n, seed=1)) == n


def test_every_line_is_a_writer_shaped_event(sample: list[bytes],
                                             events: list[dict[str, Any]]) -> None:
    for line, event in zip(sample, events, strict=True):
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        keys = list(event)
        assert keys[:2] == ["type", "agentId"] and keys[3] == "data" and len(keys) == 4
        assert keys[2] in TIME_KEYS
        assert isinstance(event["type"], str) and event["type"]
        assert event["agentId"] in AGENTS or event["agentId"] == "main"
        assert isinstance(event["data"], dict)


def test_serialisation_is_compact_with_raw_non_ascii(sample: list[bytes]) -> None:
    joined = b"".join(sample)
    assert b'": ' not in joined and b'", "' not in joined
    assert "캠페인".encode() in joined  # raw UTF-8, never \\u escapes for Hangul
    assert b"\\uc" not in joined


def test_type_mix_covers_the_catalogue(events: list[dict[str, Any]]) -> None:
    mix = collections.Counter(e["type"] for e in events)
    assert EMITTED_TYPES <= set(mix), EMITTED_TYPES - set(mix)
    assert LEGACY_TYPES <= set(mix), LEGACY_TYPES - set(mix)
    share = {t: c / N for t, c in mix.items()}
    # The reference logs: a2a.response 27 %, a2a.send 19 %, task.updated 13 %, ...
    assert 0.18 < share["a2a.response"] < 0.32
    assert 0.14 < share["a2a.send"] < 0.25
    assert 0.09 < share["task.updated"] < 0.18
    assert 0.09 < share["a2a.complete"] < 0.18
    assert 0.04 < share["a2a.spawn"] == share["a2a.spawn_result"] < 0.10
    assert 0.02 < share["task.started"] < 0.05


def test_most_events_belong_to_a_work_session(events: list[dict[str, Any]]) -> None:
    without = [e for e in events if "workSessionId" not in e["data"]]
    assert 0.04 < len(without) / N < 0.10
    assert all(e["data"]["workSessionId"].startswith("ws_")
               for e in events if "workSessionId" in e["data"])
    # The runner and Discord events never know the work session.
    for etype in ("continuation.sent", "continuation.backoff", "unblock.requested",
                  "zombie.abandoned", "backlog.auto_picked", "a2a.auto_route"):
        assert all("workSessionId" not in e["data"] for e in events if e["type"] == etype)


def test_average_line_length_is_realistic(sample: list[bytes]) -> None:
    average = sum(map(len, sample)) / len(sample)
    assert 380 <= average <= 600


def test_timestamps_within_range_and_mostly_increasing() -> None:
    start, end = 1_700_000_000_000, 1_700_000_000_000 + 6 * 3_600_000
    times = [event_time(e) for e in generate(N, seed=3, start_ms=start, end_ms=end)]
    assert all(start <= t <= end for t in times)
    inversions = sum(1 for a, b in itertools.pairwise(times) if b < a)
    assert 0 < inversions < N * 0.01  # a multi-writer log: a few, not many
    assert times[0] - start < 3_600_000 and end - times[-1] < 3_600_000


def test_default_span_grows_with_n() -> None:
    times = [event_time(e) for e in generate(3000, seed=2)]
    assert gen.DEFAULT_START_MS <= min(times)
    assert max(times) <= gen.DEFAULT_START_MS + 3000 * gen.MS_PER_EVENT


def test_legacy_shapes_appear(sample: list[bytes], events: list[dict[str, Any]]) -> None:
    time_keys = collections.Counter(list(e)[2] for e in events)
    assert time_keys["timestamp"] > N * 0.005 and time_keys["timestampMs"] > N * 0.001
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"])
               for e in events if "timestamp" in e)
    assert any("collabCategory" in e["data"] for e in events)
    assert any(e["type"] == "a2a.send" and "eventRole" not in e["data"] for e in events)
    assert any(e["data"].get("eventRole") == "orchestration.task" for e in events)
    assert any(e["data"].get("toSessionType") == "unknown" for e in events)
    assert any(e["type"] == "task.completed" and "status" in e["data"] for e in events)
    route = next(e for e in events if e["type"] == "a2a.auto_route")
    assert {"senderAgentId", "targetAgentId", "channelId"} <= set(route["data"])
    # A reply preview cut through an emoji (JS slice) leaves a lone surrogate escape.
    assert any(b"\\ud83" in line for line in sample)


def test_sessions_have_task_lifecycles() -> None:
    sessions = 100
    by_ws: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in generate(3000, seed=4, sessions=sessions):
        ws = event["data"].get("workSessionId")
        if ws:
            by_ws[ws].append(event)
    assert len(by_ws) == sessions
    ends = collections.Counter()
    for evs in by_ws.values():
        evs.sort(key=event_time)
        assert evs[0]["type"] == "task.started"
        assert sum(e["type"] == "task.started" for e in evs) == 1
        ends[evs[-1]["type"]] += 1
    assert ends["task.completed"] > sessions * 0.5
    assert ends["task.cancelled"] > 0


def test_a2a_flows_are_consistent(events: list[dict[str, Any]]) -> None:
    by_conv: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        conv = event["data"].get("conversationId")
        if conv:
            by_conv[conv].append(event)
    spawns = [e for e in events if e["type"] == "a2a.spawn"]
    for spawn in spawns:
        flow = by_conv[spawn["data"]["conversationId"]]
        key = spawn["data"]["targetSessionKey"]
        assert re.fullmatch(r"agent:[\w-]+:subagent:[0-9a-f-]{36}", key)
        sends = [e for e in flow if e["type"] == "a2a.send"
                 and e["data"].get("targetSessionKey") == key]
        results = [e for e in flow if e["type"] == "a2a.spawn_result"
                   and e["data"]["targetSessionKey"] == key]
        assert len(sends) == 1 and event_time(sends[0]) == event_time(spawn)
        assert len(results) == 1 and results[0]["data"]["status"] in ("accepted", "error")
    outcomes = collections.Counter(e["data"].get("outcome") for e in events)
    assert outcomes["no_reply"] and outcomes["blocked"] and outcomes["failed"]
    turns = [e for e in events if e["type"] == "a2a.response" and "turn" in e["data"]]
    assert turns and all(1 <= e["data"]["turn"] <= e["data"]["maxTurns"] for e in turns)
    sends = [e for e in events if e["type"] == "a2a.send" and "runId" in e["data"]]
    for send in sends:
        flow = by_conv[send["data"]["conversationId"]]
        assert any(o["type"] in ("a2a.response", "a2a.complete") for o in flow)


def test_messages_exercise_the_keyword_classifier(events: list[dict[str, Any]]) -> None:
    texts = [str(e["data"].get(k, "")).lower() for e in events
             for k in ("message", "replyPreview", "title", "summary", "reason")]
    texts = [t for t in texts if t]
    for category, words in KEYWORDS.items():
        english = [w for w in words if not HANGUL.search(w)]
        korean = [w for w in words if HANGUL.search(w)]
        assert any(w in t for t in texts for w in english), category
        assert any(w in t for t in texts for w in korean), category
    # Some texts hit nothing, so the classifier's fallback runs too.
    assert any(not any(w in t for w in ALL_KEYWORDS) for t in texts)


def test_neutral_phrases_hit_no_keyword_and_quirks_hit_only_by_substring() -> None:
    for phrase in NEUTRAL:
        assert not [w for w in ALL_KEYWORDS if w in phrase.lower()], phrase
    for phrase in QUIRKS:
        hits = [w for w in ALL_KEYWORDS if w in phrase.lower()]
        assert hits and not any(re.search(rf"\b{w}\b", phrase.lower()) for w in hits), phrase


# ---------------------------------------------------------------------------- helpers


def test_uuid4_is_a_valid_deterministic_version_4_uuid() -> None:
    a, b = uuid4(random.Random(1)), uuid4(random.Random(1))
    assert a == b
    parsed = uuid.UUID(a)
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == a


def test_js_slice_counts_utf16_units_and_can_split_an_emoji() -> None:
    assert js_slice("abc", 200) == "abc"
    assert js_slice("가" * 300, 200) == "가" * 200  # BMP: one unit each
    cut = js_slice("a" + "🔥" * 10, 4)  # a, 🔥 (2 units), then half of the next
    assert cut == "a🔥\ud83d"


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n must be"):
        list(generate(-1))
    with pytest.raises(ValueError, match="junk"):
        list(generate(10, junk=1.5))
    with pytest.raises(ValueError, match="before"):
        list(generate(10, start_ms=2000, end_ms=1000))
    with pytest.raises(ValueError, match="sessions"):
        list(generate(10, sessions=0))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**32), data=st.data())
def test_property_count_bounds_and_determinism(n: int, seed: int, data: st.DataObject) -> None:
    sessions = data.draw(st.integers(1, max(1, n)))
    start = data.draw(st.integers(0, 2**41))
    span = data.draw(st.integers(0, 10**9))
    kw = {"seed": seed, "sessions": sessions, "start_ms": start, "end_ms": start + span}
    events = list(generate(n, **kw))
    assert len(events) == n
    assert all(start <= event_time(e) <= start + span for e in events)
    assert events == list(generate(n, **kw))


# ---------------------------------------------------------------------------- junk


def test_junk_replaces_about_that_fraction_and_nothing_else(sample: list[bytes]) -> None:
    damaged = list(lines(N, seed=SEED, junk=0.05))
    assert len(damaged) == N
    changed = [i for i, (a, b) in enumerate(zip(sample, damaged, strict=True)) if a != b]
    assert 0.04 * N < len(changed) < 0.06 * N
    for i in changed:
        assert damaged[i].endswith(b"\n")


def _kind(line: bytes) -> str:
    """Which JUNK_KINDS a damaged line is (an independent classification for the test)."""
    raw = line[:-1]
    if raw.startswith(b"\xef\xbb\xbf"):
        return "bom"
    if raw.endswith(b"\r") and raw.strip():
        return "crlf"
    result = parse_line(raw)
    if result.reason == "blank":
        return "blank"
    if result.reason == "non_finite":
        return "non_finite"
    if result.reason is not None:
        return "truncated"
    value = result.value
    if not isinstance(value, dict):
        return "non_object"
    if not isinstance(value.get("type"), str) or not value["type"].strip():
        return "bad_type"
    if not isinstance(value.get("data"), dict):
        return "data_not_object"
    if "\ud83d" in str(value["data"].get("note", "")):
        return "lone_surrogate"
    return "not junk"


def test_every_junk_kind_appears_and_is_recognisable() -> None:
    clean = list(lines(5000, seed=9))
    damaged = list(lines(5000, seed=9, junk=0.2))
    kinds = collections.Counter(_kind(b) for a, b in zip(clean, damaged, strict=True) if a != b)
    assert set(kinds) == set(JUNK_KINDS), kinds
    for a, b in zip(clean, damaged, strict=True):
        if a == b:
            assert parse_line(a[:-1]).reason is None


# ---------------------------------------------------------------------------- files and CLI


def test_write_log_writes_the_lines(tmp_path: Any) -> None:
    path = tmp_path / "logs" / "coordination-events.ndjson"
    size = write_log(path, 5000, seed=3, junk=0.01)
    data = path.read_bytes()
    assert size == len(data)
    assert data == b"".join(lines(5000, seed=3, junk=0.01))
    assert data.count(b"\n") == 5000


def test_main_writes_a_log(tmp_path: Any) -> None:
    path = tmp_path / "out.ndjson"
    assert main(["1200", str(path), "--seed", "4", "--junk", "0.01",
                 "--start", "2026-02-01T00:00:00Z", "--end", "2026-02-02"]) == 0
    data = path.read_bytes()
    assert data == b"".join(lines(1200, seed=4, junk=0.01, start_ms=1_769_904_000_000,
                                  end_ms=1_769_990_400_000))


def test_main_reports_bad_arguments(tmp_path: Any) -> None:
    assert main(["10", str(tmp_path / "x.ndjson"), "--junk", "2"]) == 2
    with pytest.raises(SystemExit):
        main(["10", str(tmp_path / "x.ndjson"), "--start", "yesterday"])


# ---------------------------------------------------------------------------- live stream


def test_stream_is_endless_and_keeps_its_rate() -> None:
    from coordd.synth.engine import render

    rate = 100.0
    items = list(itertools.islice(stream(seed=1, rate=rate), 15_000))
    times = [item[0] for item in items]
    # After the warm-up (sessions start from time 0), the rate settles near `rate`.
    later = [t for t in times if t >= 60_000]
    assert later
    span_s = (later[-1] - later[0]) / 1000
    assert 0.85 * rate < len(later) / span_s < 1.15 * rate
    assert all(parse_line(render(item)[:-1]).reason is None for item in items[:2000])
