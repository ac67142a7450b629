"""The built-in keyword classifier (the old monitor's keyword scoring, source `rule`).

Registered through the `coordd` entry-point group like any third-party plugin, and
`trylast`, so an installed classifier that answers wins over it.

Faithful to the old monitor, quirks included: a keyword hits when it occurs anywhere
as a substring of the lower-cased haystack (`cs` in `docs`, `doc` in `docker`, `plan`
in `plan.submitted`, `e2e` inside hex ids), each keyword counts once however often it
occurs, a hit weighs 2 when the keyword is longer than 4 characters else 1, ties keep
canonical category order, and the sub-tags are the first 3 hits of the winner in
keyword-list order.

The scan is one Aho-Corasick pass per haystack field (no per-keyword search). Upstream
joins the fields with "\\n" before searching; no keyword contains "\\n", so a match
can never span two fields, and the union of per-field hits is exactly the hits of the
joined haystack. Scanning per field lets results be cached per string (event types,
task and work-session ids and repeated messages recur constantly in real logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import ahocorasick

from coordd.core.vocabulary import CATEGORIES
from coordd.hookspecs import Classification, hookimpl

__all__ = [
    "HAYSTACK_FIELDS",
    "KEYWORDS",
    "classification_for_mask",
    "clear_caches",
    "coordd_classify_event",
]

#: Keyword lists per category, in canonical category order and list order (the old
#: monitor's).
KEYWORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "engineering_build": ("implement", "implementation", "build", "feature", "refactor",
                          "bugfix", "fix", "코드", "구현", "개발", "리팩토링", "버그"),
    "infra_ops": ("deploy", "deployment", "infra", "infrastructure", "docker", "k8s", "ops",
                  "incident", "운영", "인프라", "배포", "장애", "서버"),
    "qa_validation": ("test", "testing", "qa", "validation", "verify", "e2e", "회귀", "검증",
                      "테스트", "품질"),
    "planning_decision": ("plan", "planning", "decision", "design", "architecture", "scope",
                          "우선순위", "설계", "기획", "의사결정", "정책"),
    "research_analysis": ("research", "analysis", "investigate", "compare", "benchmark",
                          "root cause", "분석", "조사", "리서치", "원인", "비교"),
    "docs_knowledge": ("doc", "docs", "documentation", "guide", "readme", "wiki", "문서",
                       "가이드", "정리", "기록"),
    "growth_marketing": ("campaign", "marketing", "growth", "experiment", "copy", "funnel",
                         "마케팅", "성장", "캠페인", "전환"),
    "customer_community": ("customer", "community", "support", "ticket", "feedback", "cs",
                           "고객", "커뮤니티", "문의", "피드백"),
    "legal_compliance": ("legal", "compliance", "policy", "terms", "regulation", "contract",
                         "법무", "컴플라이언스", "약관", "규정", "계약"),
    "biz_strategy": ("kpi", "revenue", "strategy", "business", "roadmap", "roi", "비즈니스",
                     "전략", "지표", "매출"),
}
assert tuple(KEYWORDS) == CATEGORIES  # the tie order is the canonical order

#: `data` fields that join `type` in the haystack, in upstream order.
HAYSTACK_FIELDS: Final = ("label", "message", "replyPreview", "description", "summary",
                          "reason", "title", "taskId", "workSessionId", "collabIntent")

# Keyword number i (in category order, then list order) is bit i of a hit mask.
_KW_TEXT: list[str] = []
_KW_CATEGORY: list[int] = []
_KW_WEIGHT: list[int] = []
for _cat_index, _words in enumerate(KEYWORDS.values()):
    for _word in _words:
        _KW_TEXT.append(_word)
        _KW_CATEGORY.append(_cat_index)
        # UTF-16 length in JS; every keyword is in the BMP, so len() agrees.
        _KW_WEIGHT.append(2 if len(_word) > 4 else 1)


def _build_automaton() -> Any:
    bits: dict[str, int] = {}
    for index, word in enumerate(_KW_TEXT):
        key = word.lower()
        bits[key] = bits.get(key, 0) | (1 << index)
    automaton = ahocorasick.Automaton()
    for key, bit in bits.items():
        automaton.add_word(key, bit)
    automaton.make_automaton()
    return automaton


_AUTOMATON: Final = _build_automaton()

# Per-string scan results. Bounded: a string is cached only when short (ids, types,
# previews), and the table is dropped wholesale when full (cheaper than LRU upkeep;
# the hot strings come back within a few events).
_TEXT_CACHE_MAX: Final = 32_768
_TEXT_CACHE_MAX_LEN: Final = 256
_text_cache: dict[str, int] = {}


def _scan(text: str) -> int:
    """Hit mask of one string: one Aho-Corasick pass over it, remembered when short."""
    mask = 0
    for _end, bit in _AUTOMATON.iter(text.lower()):
        mask |= bit
    if len(text) <= _TEXT_CACHE_MAX_LEN:
        if len(_text_cache) >= _TEXT_CACHE_MAX:
            _text_cache.clear()
        _text_cache[text] = mask
    return mask


_FIELD_SET: Final = frozenset(HAYSTACK_FIELDS)


def clear_caches() -> None:
    """Forget remembered scan and scoring results (benchmarks start cold with it)."""
    _text_cache.clear()
    _result_cache.clear()


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _score(mask: int) -> Classification | None:
    if not mask:
        return None
    hits = _bits(mask)  # ascending = category order, then keyword-list order
    scores = [0] * len(CATEGORIES)
    for index in hits:
        scores[_KW_CATEGORY[index]] += _KW_WEIGHT[index]
    ranked = sorted(range(len(CATEGORIES)), key=lambda c: -scores[c])  # stable: ties keep order
    top, second = ranked[0], ranked[1]
    s = scores[top]
    gap = s - scores[second]
    # min(0.95, 0.50 + 0.08 s + 0.05 g) rounded to 2 decimals, in exact integer hundredths.
    confidence = min(95, 50 + 8 * s + 5 * gap) / 100
    tags = tuple(_KW_TEXT[i] for i in hits if _KW_CATEGORY[i] == top)[:3]
    return Classification(category=CATEGORIES[top], sub_tags=tags, confidence=confidence,
                          source="rule", version=None)


_result_cache: dict[int, Classification | None] = {}
_RESULT_CACHE_MAX: Final = 8_192


def classification_for_mask(mask: int) -> Classification | None:
    """The `rule` classification of a hit mask, or None when nothing hit (cached)."""
    try:
        return _result_cache[mask]
    except KeyError:
        pass
    result = _score(mask)
    if len(_result_cache) >= _RESULT_CACHE_MAX:
        _result_cache.clear()
    _result_cache[mask] = result
    return result


@hookimpl(trylast=True)
def coordd_classify_event(
    event: Mapping[str, Any], data: Mapping[str, Any]
) -> Classification | None:
    """Score the keyword table against the event's haystack."""
    # The hot path, in one frame: the hit mask is the OR of the (cached) masks of the
    # type and of each haystack field present; its classification is cached too.
    cached = _text_cache.get
    mask = 0
    etype = event.get("type")
    if etype.__class__ is str:
        hit = cached(etype)
        mask = _scan(etype) if hit is None else hit
    for key in _FIELD_SET.intersection(data):
        value = data[key]
        if value.__class__ is str:
            hit = cached(value)
            mask |= _scan(value) if hit is None else hit
    try:
        return _result_cache[mask]
    except KeyError:
        return classification_for_mask(mask)
