"""coordd-rules: a classifier whose categories and patterns come from coordd's TOML.

An operator adds or refines categories without writing code::

    [plugins.rules]
    source = "rules"          # written as categorySource (default "rules")
    version = "rules-v1"      # written as categoryVersion (default "rules-v1")

    [plugins.rules.categories.security]
    patterns = ['\\bcve-\\d{4}-\\d+', 'vulnerab', '보안']
    confidence = 0.9          # default 0.8
    types = ["a2a.*"]         # optional: only events whose type matches a glob

Each pattern is a case-insensitive regular expression searched in the event's text:
its type, then the data fields `fields` names (by default those the built-in keyword
classifier reads), one per line. The category with the most matching patterns wins;
ties go to the category declared first; nothing matching means no answer, and the
next classifier (ultimately coordd's built-in keywords) decides. Sub-tags are the
matched texts, lower-cased, first five distinct.

Without a `categories` table the plugin uses `DEFAULT_CATEGORIES` (one `security`
category), so installing it changes classification out of the box.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from coordd import Classification, hookimpl

__all__ = ["DEFAULT_CATEGORIES", "DEFAULT_FIELDS", "RulesPlugin", "plugin"]

__version__ = "0.1.0"

DEFAULT_FIELDS: Final = ("label", "message", "replyPreview", "description", "summary",
                         "reason", "title", "taskId", "workSessionId", "collabIntent")
DEFAULT_CATEGORIES: Final[Mapping[str, Mapping[str, Any]]] = {
    "security": {
        "patterns": [r"\bcve-\d{4}-\d+", r"\bvulnerab\w*", r"\bsecurity\b", r"\bsecrets?\s+leak",
                     r"\bxss\b", r"\bcsrf\b", "보안", "취약점"],
        "confidence": 0.85,
    },
}
_TOP_KEYS: Final = frozenset({"fields", "source", "version", "categories"})
_CATEGORY_KEYS: Final = frozenset({"patterns", "confidence", "types"})
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_TAGS: Final = 5


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    patterns: tuple[re.Pattern[str], ...]
    confidence: float
    types: tuple[str, ...]

    def applies_to(self, etype: str) -> bool:
        return not self.types or any(fnmatch.fnmatchcase(etype, t) for t in self.types)


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _compile(settings: Mapping[str, Any]) -> tuple[tuple[_Rule, ...], tuple[str, ...], str, str]:
    """Validate `[plugins.rules]`; every message names the table and key at fault."""
    unknown = sorted(set(settings) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"[plugins.rules] {unknown[0]}: unknown key "
                         f"(known: {', '.join(sorted(_TOP_KEYS))})")
    fields = _strings("[plugins.rules] fields", settings.get("fields", list(DEFAULT_FIELDS)))
    source = settings.get("source", "rules")
    version = settings.get("version", "rules-v1")
    for key, value in (("source", source), ("version", version)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"[plugins.rules] {key}: expected a non-empty string, got {value!r}")
    if source in ("manual", "fallback"):
        raise ValueError(f"[plugins.rules] source: {source!r} is reserved by coordd")
    categories = settings.get("categories", DEFAULT_CATEGORIES)
    if not isinstance(categories, Mapping):
        raise ValueError("[plugins.rules] categories: expected a table of categories")
    rules = []
    for name, table in categories.items():
        where = f"[plugins.rules.categories.{name}]"
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"{where}: a category name is letters, digits, '_', '.', '-'")
        if not isinstance(table, Mapping):
            raise ValueError(f"{where}: expected a table")
        unknown = sorted(set(table) - _CATEGORY_KEYS)
        if unknown:
            raise ValueError(f"{where} {unknown[0]}: unknown key "
                             f"(known: {', '.join(sorted(_CATEGORY_KEYS))})")
        patterns = []
        for text in _strings(f"{where} patterns", table.get("patterns")):
            try:
                patterns.append(re.compile(text, re.IGNORECASE))
            except re.error as exc:
                raise ValueError(f"{where} patterns: {text!r} is not a valid regular "
                                 f"expression ({exc})") from exc
        confidence = table.get("confidence", 0.8)
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) \
                or not 0 <= confidence <= 1:
            raise ValueError(f"{where} confidence: expected a number in [0, 1], "
                             f"got {confidence!r}")
        types = _strings(f"{where} types", table.get("types", []))
        rules.append(_Rule(name, tuple(patterns), float(confidence), types))
    return tuple(rules), fields, source, version


class RulesPlugin:
    """The plugin object coordd registers (one per coordd process via `plugin`)."""

    __version__ = __version__

    def __init__(self) -> None:
        """Unconfigured until coordd calls `coordd_startup`."""
        self._rules: tuple[_Rule, ...] = ()
        self._fields: tuple[str, ...] = DEFAULT_FIELDS
        self._source = "rules"
        self._version = "rules-v1"

    @hookimpl
    def coordd_startup(self, settings: Mapping[str, Any]) -> None:
        """Compile `[plugins.rules]`; raises ValueError naming the bad key."""
        self._rules, self._fields, self._source, self._version = _compile(settings)

    @hookimpl
    def coordd_categories(self) -> list[str]:
        """Every configured category name (coordd ignores the built-in ones)."""
        return [rule.category for rule in self._rules]

    @hookimpl
    def coordd_classify_event(
        self, event: Mapping[str, Any], data: Mapping[str, Any]
    ) -> Classification | None:
        """The configured category with the most matching patterns, or None."""
        if not self._rules:
            return None
        etype = event.get("type")
        etype = etype.strip() if isinstance(etype, str) else ""
        parts = [etype]
        parts.extend(v for v in (data.get(f) for f in self._fields) if isinstance(v, str))
        text = "\n".join(parts)
        best: tuple[int, _Rule, list[str]] | None = None
        for rule in self._rules:
            if not rule.applies_to(etype):
                continue
            hits = 0
            tags: list[str] = []
            for pattern in rule.patterns:
                match = pattern.search(text)
                if match is None:
                    continue
                hits += 1
                tag = match.group(0).strip().lower()
                if tag and tag not in tags and len(tags) < _MAX_TAGS:
                    tags.append(tag)
            if hits and (best is None or hits > best[0]):
                best = (hits, rule, tags)
        if best is None:
            return None
        _, rule, tags = best
        return Classification(category=rule.category, sub_tags=tuple(tags),
                              confidence=rule.confidence, source=self._source,
                              version=self._version)


#: What the `coordd` entry point `rules` loads.
plugin = RulesPlugin()
