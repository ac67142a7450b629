"""Agent-to-agent flows of the synthetic log generator, with the payloads the gateway
writes for `a2a.*` events.

Pure (no I/O). `A2AFlows` holds the plumbing every session flow uses (budget, clock,
conversation-id routes, the shared context block) and the two A2A flows: a
`sessions_send` conversation (send → retries → reply → ping-pong turns → complete, or
the `no_reply` / `blocked` / orchestrator-failure outcomes) and a subagent spawn
(spawn + send → spawn_result → announce response + complete). `coordd.synth.flows`
builds the task lifecycle on top of it.
"""

from __future__ import annotations

import json
import random
from typing import Any, Final

from coordd.synth.text import THEMES, Slots, Vocabulary, js_slice, pick

__all__ = ["A2AFlows", "Planned"]

#: One planned event: cumulative fixed ms, cumulative idle units, type, agentId, data.
Planned = tuple[float, float, str, str, dict[str, Any]]

_INTENTS: Final = ("notification", "question", "request", "collaboration", "escalation",
                   "result_report")
_TERMINATIONS: Final = ("aborted", "empty_reply", "turn_timeout", "agent_error", "explicit_skip",
                        "repetition_detected", "minimal_content", "conclusion_detected")
_RETRY: Final = (("transient", "ECONNRESET", "connection reset by peer"),
                 ("transient", "timeout", "agent.wait chunk timed out"),
                 ("permanent", "EAGENT", "target agent rejected the run"),
                 ("unknown", "E_UNKNOWN", "unexpected gateway response"))
_PAYLOAD_TYPES: Final = ("task_delegation", "status_report", "question", "answer")
_SPAWN_ERRORS: Final = ("spawn depth exceeded", "gateway timeout", "max children reached",
                        "agent not allowed")
_LABELS: Final = ("triage", "docs-sync", "research", "qa-run", "impl", "deploy-check")
_STATUS_LABELS: Final = ("[completed]", "[failed]", "[timeout]")
_NO_REPLY: Final = "[outcome] no_reply: 메시지가 전달되었으나 응답을 수신하지 못했습니다 "
_BLOCKED: Final = ("[outcome] blocked: 동시 A2A 흐름 한도 초과 "
                   "(max concurrent flows reached, try again later)")
_FAILURES: Final = ("agent run failed: context overflow", "job expired before start",
                    "target session not found")


def lognormal_ms(rng: random.Random, median_ms: float) -> float:
    """A positive delay around `median_ms`, long-tailed like real reply times."""
    return median_ms * rng.lognormvariate(0.0, 0.8)


class A2AFlows:
    """Session plumbing plus the A2A flows; see the module docstring."""

    def __init__(self, rng: random.Random, vocab: Vocabulary, budget: int) -> None:
        self.rng = rng
        self.vocab = vocab
        self.left = budget
        self.out: list[Planned] = []
        self.fixed = 0.0
        self.elastic = 0.0
        self.slots = slots = Slots()
        self.ws = slots.ws()
        self.task = slots.task()
        self.owner = pick(rng, slots.main)
        others = [a for a in slots.main if a != self.owner]
        self.peers: tuple[str, ...] = tuple(rng.sample(others, 1 + int(rng.random() * 3)))
        #: Who acts in this session, the owner twice as often as each peer.
        self.actors = (self.owner, self.owner, *self.peers)
        self.workers = slots.workers
        self.theme = pick(rng, THEMES)
        self.theme2 = pick(rng, THEMES)
        self.progress = 0
        self.routes: dict[tuple[str, str], str] = {}
        self.legacy = rng.random() < 0.2  # an older writer: no emitter-side role tagging

    # ------------------------------------------------------------------ plumbing

    def _emit(self, etype: str, agent: str, data: dict[str, Any], fixed_ms: float = 0.0,
              idle: float = 0.0) -> None:
        self.fixed += fixed_ms
        self.elastic += idle
        self.out.append((self.fixed, self.elastic, etype, agent, data))
        self.left -= 1

    def _msg(self, long_share: float = 0.12) -> str:
        theme = self.theme if self.rng.random() < 0.75 else self.theme2
        return self.vocab.message(self.rng, theme, long_share)

    def _idle(self) -> float:
        return self.rng.expovariate(1.0)

    def _conv_id(self, a: str, b: str) -> str:
        # The writer reuses one conversation id per (work session, agent pair) route.
        key = (a, b) if a < b else (b, a)
        conv = self.routes.get(key)
        if conv is None:
            conv = self.routes[key] = self.slots.uuid()
        return conv

    def _shared(self, with_ws: bool = True) -> dict[str, Any]:
        if not with_ws:
            return {}
        shared: dict[str, Any] = {"taskId": self.task, "workSessionId": self.ws}
        r = self.rng.random()
        if r < 0.15:
            shared["parentConversationId"] = self.slots.uuid()
            shared["depth"] = 1
            shared["hop"] = 1 + int(self.rng.random() * 2)
        elif r < 0.25:
            shared["topicId"] = self.slots.snowflake()
        return shared

    def _collab(self, data: dict[str, Any]) -> dict[str, Any]:
        # Now and then an emitter tags the category itself (classifier source `manual`).
        if self.rng.random() < 0.01:
            data["collabCategory"] = self.theme
            data["collabSubTags"] = [self.theme.split("_")[0]]
            data["collabIntent"] = pick(self.rng, _INTENTS)
        return data

    def _block_update(self, room: int) -> None:
        self.progress += 1
        data: dict[str, Any] = {"taskId": self.task, "progressCount": self.progress,
                                "workSessionId": self.ws}
        if self.rng.random() < 0.005:
            data["eventRole"] = "orchestration.task"  # explicit role, honoured as is
        self._emit("task.updated", pick(self.rng, self.actors), data,
                   idle=self._idle())

    # ------------------------------------------------------------------ sessions_send

    def _block_conversation(self, room: int) -> None:
        if room < 2:
            return self._block_update(room)
        rng = self.rng
        requester = pick(rng, self.actors)
        target = pick(rng, [a for a in (self.owner, *self.peers) if a != requester]
                            or [pick(rng, self.workers)])
        with_ws = rng.random() >= 0.06  # sent outside any task context
        conv = self._conv_id(requester, target) if with_ws else self.slots.uuid()
        shared = self._shared(with_ws)
        r = rng.random()
        if r < 0.7:
            tkey, to_type = f"agent:{target}:main", "main"
        elif r < 0.95:
            # Cross-agent keys classify as unknown; the emitter still says conversation.main.
            tkey, to_type = f"agent:{target}:a2a:{conv}", "unknown"
        else:
            tkey, to_type = f"agent:{target}:subagent:{self.slots.uuid()}", "subagent"
        role = "delegation.subagent" if to_type == "subagent" else "conversation.main"
        flow = _Conversation(self, requester, target, conv, tkey, to_type, role, shared)
        r = rng.random()
        if room == 2 or r < 0.03:
            flow.failed()
        elif r < 0.09:
            flow.no_reply(room)
        elif r < 0.12:
            flow.blocked()
        else:
            flow.normal(room)
        return None

    # ------------------------------------------------------------------ sessions_spawn

    def _block_spawn(self, room: int) -> None:
        if room < 3:
            return self._block_conversation(room)
        rng = self.rng
        requester = pick(rng, self.actors)
        if rng.random() < 0.85:
            child = pick(rng, self.workers)
        else:
            child = pick(rng, (requester, *self.peers))  # an agent spawning a helper of its own
        base: dict[str, Any] = {
            "fromAgent": requester, "toAgent": child,
            "targetSessionKey": f"agent:{child}:subagent:{self.slots.uuid()}",
        }
        text = js_slice(self._msg(0.3), 200)
        parent = None
        if self.routes and rng.random() < 0.1:
            parent = pick(rng, list(self.routes.values()))  # spawned from inside a conversation
        conv = parent or self.slots.uuid()
        ctx: dict[str, Any] = {"conversationId": conv}
        if parent:
            ctx["parentConversationId"] = parent
        if rng.random() < 0.95:
            ctx["taskId"] = self.task
        ctx["workSessionId"] = self.ws
        ctx["depth"] = 2 if parent else 1
        ctx["hop"] = int(rng.random() * 3)
        label = pick(rng, _LABELS) if rng.random() < 0.8 else None
        spawn = {**base, "message": text, "replyPreview": text, **ctx}
        send = dict(spawn)
        if label:
            spawn["label"] = label
        self._emit("a2a.spawn", requester, spawn, idle=self._idle())
        self._emit("a2a.send", requester, send)  # same millisecond as the spawn
        run_id = self.slots.uuid()
        result = {**base, **ctx}
        if rng.random() < 0.1:
            error = pick(rng, _SPAWN_ERRORS)
            result.update(status="error", error=error,
                          replyPreview=js_slice("spawn failed: " + error, 200))
            if rng.random() < 0.5:
                result["runId"] = run_id
            self._emit("a2a.spawn_result", requester, result, fixed_ms=lognormal_ms(rng, 300))
            return None
        result.update(runId=run_id, status="accepted")
        if label:
            result["label"] = label
        result["replyPreview"] = "spawn accepted · run " + run_id
        self._emit("a2a.spawn_result", requester, result, fixed_ms=lognormal_ms(rng, 300))
        if room < 5 or rng.random() < 0.12:
            return None  # the child never announced (still running, or lost)
        reply = self._msg(0.3) if rng.random() < 0.9 else pick(rng, _STATUS_LABELS)
        announce = {"fromAgent": child, "toAgent": requester, "turn": 1, "maxTurns": 1,
                    "replyPreview": js_slice(reply, 200),
                    "targetSessionKey": f"agent:{requester}:main", **ctx, "runId": run_id}
        self._emit("a2a.response", child, announce, idle=self._idle())
        done = {"fromAgent": child, "toAgent": requester, "announced": rng.random() < 0.95,
                "totalTurns": 1, "targetSessionKey": f"agent:{requester}:main", **ctx,
                "runId": run_id}
        self._emit("a2a.complete", child, done, fixed_ms=lognormal_ms(rng, 200))
        return None


class _Conversation:
    """One `sessions_send` flow between `requester` and `target`."""

    def __init__(self, s: A2AFlows, requester: str, target: str, conv: str, tkey: str,
                 to_type: str, role: str, shared: dict[str, Any]) -> None:
        self.s = s
        self.rng = s.rng
        self.requester = requester
        self.target = target
        self.conv = conv
        self.tkey = tkey
        self.to_type = to_type
        self.role = role
        self.shared = shared
        self.run_id = s.slots.uuid() if s.rng.random() < 0.95 else "unknown"

    def _types(self, data: dict[str, Any], forward: bool) -> None:
        if not self.s.legacy:
            data["eventRole"] = self.role
            data["fromSessionType"] = "main" if forward else self.to_type
            data["toSessionType"] = self.to_type if forward else "main"

    def _send(self) -> None:
        s, rng = self.s, self.rng
        data: dict[str, Any] = {"fromAgent": self.requester, "toAgent": self.target,
                                "targetSessionKey": self.tkey, "message": s._msg(0.2),
                                "runId": self.run_id, "conversationId": self.conv}
        if s.legacy:
            if rng.random() < 0.3:
                key = "requesterSessionKey" if rng.random() < 0.7 else "sessionKey"
                data[key] = f"agent:{self.requester}:main"
        else:
            data["eventRole"] = self.role
            if rng.random() < 0.08:
                data["payloadType"] = pick(rng, _PAYLOAD_TYPES)
                data["payloadJson"] = json.dumps({"summary": s._msg(0.0)}, ensure_ascii=False,
                                                 separators=(",", ":"))
            data["fromSessionType"] = "main"
            data["toSessionType"] = self.to_type
        data.update(self.shared)
        s._emit("a2a.send", self.requester, s._collab(data), idle=s._idle())

    def _retries(self, count: int) -> None:
        s, rng = self.s, self.rng
        elapsed = 0.0
        for attempt in range(1, count + 1):
            category, code, reason = pick(rng, _RETRY)
            backoff = 2000 * 2 ** (attempt - 1)
            wait = lognormal_ms(rng, 60_000)
            elapsed += wait
            s._emit("a2a.retry", self.target,
                    {"fromAgent": self.requester, "toAgent": self.target, "runId": self.run_id,
                     "attempt": attempt, "maxAttempts": 3, "errorCategory": category,
                     "errorCode": code, "reason": reason, "backoffMs": backoff,
                     "elapsedMs": int(elapsed), "conversationId": self.conv, **self.shared},
                    fixed_ms=wait)

    def _reply(self) -> None:
        s, rng = self.s, self.rng
        text = s._msg(0.2)
        data: dict[str, Any] = {"fromAgent": self.target, "toAgent": self.requester,
                                "message": text, "replyPreview": js_slice(text, 200),
                                "conversationId": self.conv}
        self._types(data, forward=False)
        if s.legacy and rng.random() < 0.2:
            data["sourceSessionKey"] = self.tkey
        data.update(self.shared)
        s._emit("a2a.response", self.target, s._collab(data), fixed_ms=lognormal_ms(rng, 20_000))

    def normal(self, room: int) -> None:
        """Rounds of send → reply (earlier ones fire-and-forget), ping-pong, complete."""
        rng = self.rng
        rounds = pick(rng, (1, 1, 1, 2, 2, 3))
        retries = pick(rng, (0,) * 12 + (1, 2))
        configured = pick(rng, (3, 5, 5))
        intent = pick(rng, _INTENTS)
        effective = 1 + int(rng.random() * configured)
        turns = 1 + int(rng.random() * effective) if rng.random() < 0.6 else 0
        while rounds * 2 + retries + turns + 1 > room:
            if turns:
                turns -= 1
            elif retries:
                retries -= 1
            else:
                rounds -= 1
        for index in range(rounds):
            self._send()
            if index == rounds - 1:
                self._retries(retries)
            self._reply()
        early = turns < effective and rng.random() < 0.6
        reason = pick(rng, _TERMINATIONS) if early else None
        self._ping_pong(turns, effective, intent, reason)
        s = self.s
        data: dict[str, Any] = {"fromAgent": self.requester, "toAgent": self.target,
                                "announced": rng.random() < 0.7, "targetSessionKey": self.tkey,
                                "conversationId": self.conv}
        if not s.legacy:
            self._types(data, forward=True)
            data.update(messageIntent=intent, configuredMaxTurns=configured,
                        effectiveTurns=effective, actualTurns=turns, earlyTermination=early)
            if reason:
                data["terminationReason"] = reason
            data["announceSkipped"] = rng.random() < 0.1
        data.update(self.shared)
        s._emit("a2a.complete", self.requester, data, fixed_ms=lognormal_ms(rng, 800))

    def _ping_pong(self, turns: int, effective: int, intent: str, reason: str | None) -> None:
        s, rng = self.s, self.rng
        for turn in range(1, turns + 1):
            forward = turn % 2 == 1
            speaker, other = ((self.requester, self.target) if forward
                              else (self.target, self.requester))
            text = s._msg(0.25)
            data: dict[str, Any] = {
                "fromAgent": speaker, "toAgent": other, "turn": turn, "maxTurns": effective,
                "message": text, "replyPreview": js_slice(text, 200), "conversationId": self.conv,
            }
            self._types(data, forward)
            if not s.legacy:
                data["messageIntent"] = intent
            if reason and turn == turns:
                data["terminationReason"] = reason
            data.update(self.shared)
            s._emit("a2a.response", speaker, data, fixed_ms=lognormal_ms(rng, 15_000))

    def no_reply(self, room: int) -> None:
        """The target never answered: `[outcome] no_reply`, then an unannounced complete."""
        s, rng = self.s, self.rng
        self._send()
        self._retries(min(room - 3, pick(rng, (0, 0, 1, 2))))
        timeout = rng.random() < 0.7
        wait: dict[str, Any] = {"waitStatus": "timeout"} if timeout else {
            "waitStatus": "error", "waitError": "agent.wait failed"}
        text = _NO_REPLY + ("(대기 시간 60초 초과)" if timeout else "(실행 오류)")
        data: dict[str, Any] = {"fromAgent": self.target, "toAgent": self.requester,
                                "message": text, "replyPreview": js_slice(text, 200),
                                "outcome": "no_reply", **wait, "conversationId": self.conv}
        self._types(data, forward=False)
        data.update(self.shared)
        s._emit("a2a.response", self.target, data, fixed_ms=60_000 + rng.random() * 500)
        done: dict[str, Any] = {"fromAgent": self.requester, "toAgent": self.target,
                                "announced": False, "targetSessionKey": self.tkey,
                                "conversationId": self.conv}
        self._types(done, forward=True)
        done.update(wait)
        done.update(self.shared)
        s._emit("a2a.complete", self.requester, done, fixed_ms=rng.random() * 20)

    def blocked(self) -> None:
        """The concurrency limit was hit: `[outcome] blocked` and a blocked complete."""
        s, rng = self.s, self.rng
        self._send()
        data = {"fromAgent": self.requester, "toAgent": self.target, "message": _BLOCKED,
                "replyPreview": js_slice(_BLOCKED, 200), "outcome": "blocked",
                "conversationId": self.conv, **self.shared}
        s._emit("a2a.response", self.target, data, fixed_ms=rng.random() * 50)
        done = {"fromAgent": self.requester, "toAgent": self.target, "announced": False,
                "targetSessionKey": self.tkey, "conversationId": self.conv,
                "concurrencyBlocked": True, **self.shared}
        s._emit("a2a.complete", self.requester, done, fixed_ms=rng.random() * 20)

    def failed(self) -> None:
        """The A2A job orchestrator gave up on the job (the path still emitted at HEAD)."""
        s, rng = self.s, self.rng
        self._send()
        data: dict[str, Any] = {"fromAgent": self.requester, "toAgent": self.target,
                                "announced": False, "targetSessionKey": self.tkey,
                                "conversationId": self.conv, "outcome": "failed",
                                "error": pick(rng, _FAILURES)}
        for key in ("taskId", "workSessionId"):
            if key in self.shared:
                data[key] = self.shared[key]
        s._emit("a2a.complete", self.requester, data, fixed_ms=lognormal_ms(rng, 90_000))
