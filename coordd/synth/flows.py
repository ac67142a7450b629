"""Work-session lifecycles for the synthetic log generator.

Pure (no I/O). `SessionBuilder.build()` plans the events of one work session — a task
lifecycle with its conversations, spawns, blocks and continuation-runner events — as
`(fixed_ms, elastic, type, agentId, data)` tuples: `fixed_ms` is the cumulative time that
is part of a flow (a reply takes seconds), `elastic` the cumulative idle time between flows
in abstract units, which `coordd.synth.gen` stretches so the session lasts as long as it was
allotted. Each builder emits exactly its budget of events.

Payload keys and their order follow the gateway's writer; a share of the flows use the older
shapes real logs contain (no emitter-side role tagging, extra session keys, `status` on
`task.completed`, `plan.*` events, explicit `collabCategory`).
"""

from __future__ import annotations

from typing import Any, Final

from coordd.synth.a2a import A2AFlows, Planned, lognormal_ms
from coordd.synth.text import js_slice, pick

__all__ = ["Planned", "SessionBuilder"]

_BLOCK_REASONS: Final = ("blocked on upstream fix", "배포 권한 필요", "waiting for legal review",
                         "needs design decision", "API 키 발급 대기")
_CANCEL_REASONS: Final = ("superseded by another task", "requirements changed", "중복 작업")
_BACKOFF_REASONS: Final = ("context_overflow", "timeout", "rate_limit", "unknown")
_PRIORITIES: Final = ("low", "medium", "medium", "high", "high", "urgent")

# Flow weights per block choice; tuned so the type mix matches the reference logs.
_BLOCKS: Final = (("conversation", 2.3), ("spawn", 2.0), ("update", 3.6), ("continuation", 0.32),
                  ("plan", 0.25), ("blocked", 0.14), ("backlog", 0.11), ("auto_route", 0.12),
                  ("zombie", 0.05), ("milestone", 0.04))
_BLOCK_NAMES: Final = tuple(name for name, _ in _BLOCKS)
_BLOCK_CUM: Final = tuple(sum(w for _, w in _BLOCKS[: i + 1]) for i in range(len(_BLOCKS)))


class SessionBuilder(A2AFlows):
    """Plans one work session of exactly `budget` events."""

    # ------------------------------------------------------------------ the session

    def build(self) -> list[Planned]:
        """The whole session, exactly `budget` events, in causal order."""
        rng = self.rng
        approval = rng.random() < 0.25
        self._emit("task.started", self.owner,
                   {"taskId": self.task, "priority": pick(rng, _PRIORITIES),
                    "requiresApproval": approval, "workSessionId": self.ws})
        reserve = 1 if self.left > 0 else 0
        if approval and self.left > reserve:
            self._emit("task.approved", self.owner, {"taskId": self.task, "workSessionId": self.ws},
                       idle=self._idle() * 0.5)
        while self.left > reserve:
            room = self.left - reserve
            draw = rng.random() * _BLOCK_CUM[-1]
            index = 0
            while _BLOCK_CUM[index] < draw:
                index += 1
            getattr(self, "_block_" + _BLOCK_NAMES[index])(room)
        if self.left:
            self._close()
        return self.out

    def _close(self) -> None:
        rng = self.rng
        r = rng.random()
        data: dict[str, Any] = {"taskId": self.task}
        if r < 0.84:
            data["workSessionId"] = self.ws
            if rng.random() < 0.15:
                data["status"] = "completed"  # older task tools wrote a status
            self._emit("task.completed", self.owner, data, idle=self._idle())
        elif r < 0.93:
            data["reason"] = pick(rng, _CANCEL_REASONS)
            data["workSessionId"] = self.ws
            if rng.random() < 0.25:
                data["status"] = "cancelled"
            self._emit("task.cancelled", self.owner, data, idle=self._idle())
        elif r < 0.97:
            kind = "continuation.complete" if rng.random() < 0.5 else "continuation.completed"
            self._emit(kind, self.owner, {"taskId": self.task, "workSessionId": self.ws},
                       idle=self._idle())
        else:
            self._block_update(1)  # still running when the log ends

    # ------------------------------------------------------------------ task-side blocks

    def _block_continuation(self, room: int) -> None:
        # The continuation runner never knows the work session (its events carry no
        # `workSessionId`).
        rng = self.rng
        self._emit("continuation.sent", self.owner, {"taskId": self.task}, idle=self._idle())
        failures = 0
        while self.left and room > 1 and rng.random() < 0.35:
            room -= 1
            failures += 1
            self._emit("continuation.backoff", self.owner,
                       {"taskId": self.task, "reason": pick(rng, _BACKOFF_REASONS),
                        "consecutiveFailures": failures,
                        "backoffMs": min(60_000, 5_000 * 2 ** failures)},
                       fixed_ms=lognormal_ms(rng, 30_000))

    def _block_blocked(self, room: int) -> None:
        if room < 3:
            return self._block_update(room)
        rng = self.rng
        helpers = rng.sample((*self.peers, "main"), min(2, len(self.peers) + 1))
        self._emit("task.blocked", self.owner,
                   {"taskId": self.task, "reason": pick(rng, _BLOCK_REASONS),
                    "unblockedBy": helpers, "workSessionId": self.ws}, idle=self._idle())
        room -= 1
        requests = 1
        while room > 1:
            self._emit("unblock.requested", self.owner,
                       {"taskId": self.task, "targetAgentId": helpers[0], "requestCount": requests},
                       idle=self._idle() * 0.5)
            room -= 1
            requests += 1
            if rng.random() < 0.8:
                break
        if room > 1 and rng.random() < 0.1:
            kind = "resume_reminder.sent" if rng.random() < 0.7 else "unblock.failed"
            self._emit(kind, self.owner, {"taskId": self.task, "targetAgentId": helpers[0]},
                       idle=self._idle() * 0.3)
        self._emit("task.resumed", self.owner, {"taskId": self.task, "workSessionId": self.ws},
                   idle=self._idle())
        return None

    def _block_backlog(self, room: int) -> None:
        if room < 2:
            return self._block_update(room)
        rng = self.rng
        item = self.slots.task()
        assignee = pick(rng, (*self.peers, "main"))
        self._emit("task.backlog_added", self.owner,
                   {"taskId": item, "assignee": assignee, "isCrossAgent": assignee != self.owner,
                    "workSessionId": self.ws}, idle=self._idle())
        if rng.random() < 0.35:
            self._emit("backlog.auto_picked", assignee, {"taskId": item}, idle=self._idle())
        else:
            self._emit("task.backlog_picked", assignee, {"taskId": item, "workSessionId": self.ws},
                       idle=self._idle())
        return None

    def _block_plan(self, room: int) -> None:
        # plan.* are declared but no longer emitted at HEAD; older logs have them.
        if room < 2:
            return self._block_update(room)
        rng = self.rng
        plan = self.slots.plan()
        self._emit("plan.submitted", self.owner,
                   {"planId": plan, "taskId": self.task, "workSessionId": self.ws,
                    "title": self._msg(0.05), "summary": self._msg(0.05)}, idle=self._idle())
        if rng.random() < 0.85:
            self._emit("plan.approved", self.owner,
                       {"planId": plan, "taskId": self.task, "workSessionId": self.ws,
                        "approvedBy": pick(rng, ("main", "ruda", *self.peers))}, idle=self._idle())
        else:
            self._emit("plan.rejected", pick(self.rng, self.peers),
                       {"planId": plan, "taskId": self.task, "workSessionId": self.ws,
                        "reason": self._msg(0.0)}, idle=self._idle())
        return None

    def _block_zombie(self, room: int) -> None:
        rng = self.rng
        self._emit("zombie.abandoned", pick(rng, self.slots.main),
                   {"taskId": self.task, "ageHours": 25 + int(rng.random() * 72),
                    "reassignCount": int(rng.random() * 4),
                    "action": pick(rng, ("moved_to_backlog", "escalated"))}, idle=self._idle())

    def _block_milestone(self, room: int) -> None:
        self._emit("milestone.sync_failed", self.owner,
                   {"taskId": self.task, "milestoneId": self.slots.milestone(),
                    "workSessionId": self.ws}, idle=self._idle())

    def _block_auto_route(self, room: int) -> None:
        rng = self.rng
        target = pick(rng, self.peers)
        self._emit("a2a.auto_route", self.owner,
                   {"senderAgentId": self.owner, "targetAgentId": target,
                    "channelId": self.slots.snowflake(), "maxTurns": pick(rng, (3, 5)),
                    "message": js_slice(self._msg(0.1), 200),
                    "conversationId": self._conv_id(self.owner, target)}, idle=self._idle())
