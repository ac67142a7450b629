"""The vocabularies every layer shares: event roles, collaboration categories, statuses.

Pure constants and one immutable value type; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ARCHIVE_AFTER_MS",
    "BUILTIN_VOCABULARY",
    "CATEGORIES",
    "DEFAULT_CATEGORY",
    "ROLES",
    "ROLE_SET",
    "STATUSES",
    "CategoryVocabulary",
]

ROLES: Final = (
    "conversation.main",
    "delegation.subagent",
    "orchestration.task",
    "system.observability",
)
ROLE_SET: Final = frozenset(ROLES)

#: Canonical order: it breaks ties in the keyword classifier (the first category wins).
CATEGORIES: Final = (
    "engineering_build",
    "infra_ops",
    "qa_validation",
    "planning_decision",
    "research_analysis",
    "docs_knowledge",
    "growth_marketing",
    "customer_community",
    "legal_compliance",
    "biz_strategy",
)
DEFAULT_CATEGORY: Final = "engineering_build"


@dataclass(frozen=True, slots=True, init=False)
class CategoryVocabulary:
    """The valid collaboration categories: the ten built-in ones in canonical order, then
    those the enabled plugins declare (`coordd_categories`), in the order declared.

    Built once at start from the plugin host and handed to everything that validates,
    filters, counts or lists categories (events, sessions, filters, overrides, stats,
    OpenAPI), so that they all agree. Immutable; `in` is a set lookup.
    """

    names: tuple[str, ...]
    members: frozenset[str]

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = list(CATEGORIES)
        for name in extra:
            if name not in names:
                names.append(name)
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "members", frozenset(names))

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def extra(self) -> tuple[str, ...]:
        """The plugin-declared categories."""
        return self.names[len(CATEGORIES):]

    def listing(self) -> str:
        """The valid names, comma-separated, for error messages."""
        return ", ".join(self.names)

    def ordered(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Counts in vocabulary order (any other name after them), zero counts dropped."""
        out = {c: counts[c] for c in self.names if counts.get(c)}
        out.update((c, n) for c, n in counts.items() if n and c not in out)
        return out


#: The built-in ten alone (no plugin declared anything).
BUILTIN_VOCABULARY: Final = CategoryVocabulary()

STATUSES: Final = ("ACTIVE", "QUIET", "ARCHIVED")

#: A work session whose last event is older than this is ARCHIVED.
ARCHIVE_AFTER_MS: Final = 86_400_000
