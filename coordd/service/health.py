"""The daemon's health: the component checks `/api/health` reports (and, through it,
`coordd --check`).

`log` (the tailer: following, or waiting for the file), `pipeline` (caught up, or still
reading the history), `state` (the checkpoint), `openclaw` (the main agents' source),
then the MongoDB tier's (`follower`, `mongo-queries`, `mongo`). The daemon is healthy
while no check fails; warnings are reported but keep it answering 200.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordd.core.health import Check, grouped
from coordd.service.mainagents import MainAgents
from coordd.tail.pipeline import Pipeline
from coordd.tail.tailer import Tailer

if TYPE_CHECKING:
    from coordd.mongo.tier import MongoTier

__all__ = ["daemon_checks", "health_answer"]


def daemon_checks(*, tailer: Tailer | None, pipeline: Pipeline | None, events: int,
                  state_dir: Path, main_agents: MainAgents,
                  mongo: MongoTier | None) -> list[Check]:
    """Every component's check, in the order `/api/health` lists them; `events` is how
    many events the store holds."""
    checks: list[Check] = []
    if tailer is not None:
        st = tailer.statistics()
        if st.waiting_for:
            checks.append(Check("log", "warn", f"waiting for the log {st.waiting_for}: {st.path}"))
        else:
            checks.append(Check("log", "pass", f"following {st.path} ({st.mode})",
                                {"lagBytes": st.lag_bytes, "offset": st.offset}))
    if pipeline is not None:
        ps = pipeline.statistics()
        checks.append(Check("pipeline", "pass" if ps.caught_up else "warn",
                            "caught up" if ps.caught_up else "reading history",
                            {"events": events, "lastSeq": ps.last_seq, "epoch": ps.epoch,
                             "rejected": ps.rejected, "repaired": ps.repaired}))
        if ps.checkpoint_error:
            checks.append(Check("state", "warn",
                                f"checkpoint not written: {ps.checkpoint_error}"))
        else:
            checks.append(Check("state", "pass", f"checkpoint in {state_dir}"))
    status, message = main_agents.status()
    checks.append(Check("openclaw", status, message))
    if mongo is not None:
        checks += mongo.health()
    return checks


def health_answer(checks: list[Check]) -> tuple[bool, dict[str, list[dict[str, Any]]]]:
    """What `/api/health` serves: (no check failed, the checks by component)."""
    return all(c.status != "fail" for c in checks), grouped(checks)
