"""The health-check record: one component's check, as `/api/health` and `coordd --check`
report it.

The daemon assembles its checks (`coordd.service.health`, the MongoDB tier's
`MongoTier.health`), the web layer serves them grouped by component
(`{"<component>": [{"status", "output", "observedValue"}]}`), and `coordd --check` reads
them back and adds its own (`coordd.cli.check`), with a hint for the operator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Check", "grouped", "worst"]

#: `pass` < `warn` < `fail`.
RANK: Final = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one component: `status` is `pass`, `warn` or `fail`; `observed` the
    figures it saw (JSON-serialisable, `observedValue`); `hint` what to do about a
    failure (for the operator, in `coordd --check` only)."""

    component: str
    status: str
    output: str
    observed: Any = None
    hint: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "output": self.output}
        if self.observed is not None:
            out["observedValue"] = self.observed
        if self.hint:
            out["hint"] = self.hint
        return out


def grouped(checks: Iterable[Check]) -> dict[str, list[dict[str, Any]]]:
    """The checks as `/api/health` reports them: by component, in order of appearance."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        out.setdefault(c.component, []).append(c.as_json())
    return out


def worst(checks: Iterable[Check]) -> str:
    """The worst status among `checks` (`pass` when there is none)."""
    return max((c.status for c in checks), key=RANK.__getitem__, default="pass")
