"""Vocabulary of the synthetic log generator: agents, phrases, messages, ids.

Pure (no I/O). The phrases are written so that the built-in keyword classifier has
work to do in both languages: every category has English and Korean phrases that hit its
keywords, a few phrases hit several categories, a few reproduce the substring quirks the
spec lists (`develops` → `ops`, `contest` → `test`, `android` → `roi`, `metrics` → `cs`,
`explanation` → `plan`), and the neutral phrases hit nothing so the fallback path runs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final, TypeVar

_T = TypeVar("_T")

__all__ = [
    "AGENTS",
    "MAIN_AGENTS",
    "SLOT_MAKERS",
    "THEMES",
    "WORKERS",
    "Slots",
    "Vocabulary",
    "hex_id",
    "js_slice",
    "pick",
    "snowflake",
    "uuid4",
]

MAIN_AGENTS: Final = (
    "ruda", "eden", "seum", "dajim", "yunseul", "miri", "onsae", "ieum", "nuri",
    "hangyeol", "grim",
)
WORKERS: Final = ("worker-quick", "worker-deep")
AGENTS: Final = MAIN_AGENTS + WORKERS

#: Category → phrases that hit its keywords (English and Korean).
PHRASES: Final[dict[str, tuple[str, ...]]] = {
    "engineering_build": (
        "implement the retry wrapper for the gateway client",
        "feature branch rebased; fix for the flaky lock is in",
        "bugfix: null check in the A2A job manager",
        "refactor the session builder before the next build",
        "implementation of the parser is done, please look at the code path",
        "코드 구현 진행 상황 공유",
        "개발 브랜치에 구현 머지했습니다",
        "리팩토링 후 버그 수정 완료",
    ),
    "infra_ops": (
        "deploy the gateway to staging after the docker image is rebuilt",
        "incident: ops alert on disk usage, investigating",
        "deployment rollback plan for the infrastructure upgrade",
        "k8s node pool resize for the infra cluster",
        "장애 대응 중입니다. 운영 채널 확인해주세요",
        "서버 배포 일정 공유, 인프라 점검 예정",
    ),
    "qa_validation": (
        "run the e2e test suite and verify the regression is gone",
        "testing the webhook retries, please verify the logs",
        "QA pass on the release candidate, validation pending",
        "E2E 테스트와 회귀 검증을 완료했습니다",
        "테스트 돌려서 검증 부탁합니다",
        "회귀 테스트 결과 공유, 품질 이슈 2건",
    ),
    "planning_decision": (
        "let's plan the next sprint scope and make a decision on the design",
        "architecture decision record for the event bus",
        "planning: scope cut for milestone 3",
        "우선순위 정리하고 설계 방향 의사결정 필요",
        "기획안 검토 후 정책 확정하자",
    ),
    "research_analysis": (
        "root cause analysis of the latency spike",
        "research alternatives and compare latency benchmark numbers",
        "investigate why the queue backs up at night",
        "원인 분석 결과 공유합니다",
        "경쟁사 리서치 및 비교 조사",
    ),
    "docs_knowledge": (
        "update the docs and the README for the new flags",
        "write a guide on the wiki for onboarding",
        "documentation pass on the API reference",
        "회의 내용 문서로 정리해서 기록 남겨주세요",
        "온보딩 가이드 문서 업데이트",
    ),
    "growth_marketing": (
        "marketing campaign copy for the launch",
        "growth experiment on the signup funnel",
        "캠페인 전환율 분석, 마케팅 팀 공유",
        "성장 지표 기반 캠페인 기획",
    ),
    "customer_community": (
        "customer feedback from the support ticket queue",
        "community Q&A answers for this week",
        "CS backlog triage for this week",
        "고객 문의 응대 템플릿 업데이트",
        "커뮤니티 피드백 정리해서 전달",
    ),
    "legal_compliance": (
        "legal review of the contract terms",
        "compliance check against the new regulation",
        "privacy policy update for the EU terms",
        "약관 개정안 법무 검토 요청",
        "컴플라이언스 규정 확인 및 계약서 검토",
    ),
    "biz_strategy": (
        "quarterly KPI review and revenue forecast",
        "ROI estimate for the partnership",
        "business roadmap and pricing strategy",
        "비즈니스 전략 회의 안건",
        "매출 지표 정리해서 전략 보고",
    ),
}
THEMES: Final = tuple(PHRASES)

#: Hit no keyword at all (checked by a test): these drive the fallback category.
NEUTRAL: Final = (
    "see attached summary",
    "handing over",
    "thanks, will look soon",
    "on it",
    "알겠습니다, 진행할게요",
    "잠시만요",
    "네 맞아요",
    "확인했습니다",
)
#: Keyword hits that exist only as substrings of unrelated words (quirks of substring
#: matching).
QUIRKS: Final = (
    "heroic contest develops",
    "explanation of the telescope stops",
    "prefix the android metrics",
)
PREFIXES: Final = (
    "", "", "", "Update: ", "확인 결과: ", "네, ", "Sure — ", "[NOTIFICATION] ", "FYI ",
)
SUFFIXES: Final = (
    "", "", "", " 좋아요 👍", " ✅", " 🚀", " 📝", " 🔥", " 🧪",
    ". 알겠습니다, 진행할게요", ". 잠시만요",
)
BULLET_EMOJI: Final = ("🔥", "✅", "📝", "📌", "🧪", "🚀")


_UUID_CLEAR: Final = ~((0xF << 76) | (0x3 << 62))
_UUID_SET: Final = (4 << 76) | (2 << 62)


def uuid4(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng` (deterministic, unlike `uuid.uuid4`)."""
    bits = (rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET  # version 4, RFC 4122 variant
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def hex_id(rng: random.Random, prefix: str, digits: int) -> str:
    """`prefix` + `digits` lower-case hex digits (task ids: `task_` + 20)."""
    return f"{prefix}{rng.getrandbits(4 * digits):0{digits}x}"


def snowflake(rng: random.Random) -> str:
    """An 18-digit Discord-style id (channels, topics)."""
    return str(rng.randrange(10**17, 10**18))


def js_slice(text: str, limit: int) -> str:
    """`text.slice(0, limit)` as JavaScript does it: `limit` counts UTF-16 code units.

    A cut through an astral character (emoji) leaves its lone high surrogate, which the
    writer then serialises as a `\\ud83d` escape: real logs contain exactly that.
    """
    if len(text) * 2 <= limit:
        return text
    units = text.encode("utf-16-le", "surrogatepass")
    if len(units) <= 2 * limit:
        return text
    return units[: 2 * limit].decode("utf-16-le", "surrogatepass")


class Slots:
    """Placeholders for everything that varies between instances of a session template.

    A session is planned once with placeholder strings (`@@<index>@@`) instead of agent
    names and ids; `kinds[index]` says how an instance draws the real value. Slot 0 is the
    event's time, the next ones the main agents and the workers (an instance maps them to
    a permutation of `MAIN_AGENTS` / `WORKERS`), then one slot per id drawn.
    """

    __slots__ = ("kinds", "main", "workers")

    TIME: Final = 0

    def __init__(self) -> None:
        self.kinds: list[str] = ["time"]
        self.main = tuple(self._new("main") for _ in MAIN_AGENTS)
        self.workers = tuple(self._new("worker") for _ in WORKERS)

    def _new(self, kind: str) -> str:
        self.kinds.append(kind)
        return f"@@{len(self.kinds) - 1}@@"

    def uuid(self) -> str:
        """A conversation / run / subagent-session UUID."""
        return self._new("uuid")

    def ws(self) -> str:
        """A work-session id (`ws_<uuid>`)."""
        return self._new("ws")

    def task(self) -> str:
        """A task id (`task_` + 20 hex digits)."""
        return self._new("task")

    def plan(self) -> str:
        """A plan id (`plan_` + 8 hex digits)."""
        return self._new("plan")

    def milestone(self) -> str:
        """A milestone id (`ms_` + 8 hex digits)."""
        return self._new("milestone")

    def snowflake(self) -> str:
        """A Discord channel or topic id."""
        return self._new("snowflake")


#: How an instance draws the value of each `Slots` kind (agents are handled apart).
SLOT_MAKERS: Final = {
    "uuid": uuid4,
    "ws": lambda rng: "ws_" + uuid4(rng),
    "task": lambda rng: hex_id(rng, "task_", 20),
    "plan": lambda rng: hex_id(rng, "plan_", 8),
    "milestone": lambda rng: hex_id(rng, "ms_", 8),
    "snowflake": snowflake,
}


def pick(rng: random.Random, seq: Sequence[_T]) -> _T:
    """`rng.choice(seq)`, several times cheaper (the generator calls it per event)."""
    return seq[int(rng.random() * len(seq))]


class Vocabulary:
    """Pre-composed messages per theme, drawn once per generator from its seed.

    Composing text per event would dominate the generator's cost; a pool of a few dozen
    variants per theme keeps the texts varied while each event only pays for an index.
    """

    __slots__ = ("long", "short")

    def __init__(self, rng: random.Random, per_theme: int = 48) -> None:
        self.short: dict[str, list[str]] = {}
        self.long: dict[str, list[str]] = {}
        for theme in THEMES:
            self.short[theme] = [self._short(rng, theme) for _ in range(per_theme)]
            self.long[theme] = [self._long(rng, theme) for _ in range(max(8, per_theme // 4))]

    @staticmethod
    def _phrase(rng: random.Random, theme: str) -> str:
        r = rng.random()
        if r < 0.62:
            return rng.choice(PHRASES[theme])
        if r < 0.86:
            return rng.choice(PHRASES[rng.choice(THEMES)])
        if r < 0.95:
            return rng.choice(NEUTRAL)
        return rng.choice(QUIRKS)

    def _short(self, rng: random.Random, theme: str) -> str:
        r = rng.random()
        if r < 0.07:
            return rng.choice(NEUTRAL) + rng.choice(SUFFIXES)  # no keyword: fallback path
        text = rng.choice(PREFIXES) + self._phrase(rng, theme)
        if r < 0.55:
            text += ". " + self._phrase(rng, theme)
        return text + rng.choice(SUFFIXES)

    def _long(self, rng: random.Random, theme: str) -> str:
        parts = [self._short(rng, theme), "", self._phrase(rng, theme)]
        for _ in range(rng.randint(3, 16)):
            if rng.random() < 0.25:
                parts.append("- " + rng.choice(BULLET_EMOJI))
            else:
                parts.append("- " + self._phrase(rng, theme))
        return "\n".join(parts)

    def message(self, rng: random.Random, theme: str, long_share: float = 0.12) -> str:
        """A message about `theme`; `long_share` of them are multi-line reports."""
        if rng.random() < long_share:
            pool = self.long[theme]
        else:
            pool = self.short[theme]
        return pool[int(rng.random() * len(pool))]
