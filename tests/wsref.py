"""Test helpers: enriched-event builders and a from-scratch work-session builder.

`reference_sessions` transcribes the old monitor's work-session algorithm literally (sort
by TS stably, walk, create on first event, update rules, summaries, stable sorts) over
plain dicts. It shares nothing with `coordd.core.sessions` but the per-event helpers from
`coordd.core.event`, so the incremental views can be checked against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from coordd.core.event import Event, agents_of, is_terminal, thread_key
from coordd.core.jsvalues import O, S, event_time
from coordd.core.vocabulary import CATEGORIES, ROLES

__all__ = ["enriched", "ev", "reference_sessions", "session_status"]

NOW = 1_771_329_600_000


def enriched(
    etype: str,
    ts: float,
    ws: str | None = "ws_1",
    *,
    agent: str | None = None,
    role: str | None = None,
    category: str = "engineering_build",
    tags: Iterable[str] = (),
    **data: Any,
) -> dict[str, Any]:
    """An enriched event (the old monitor's shape, enriched fields given explicitly)."""
    d: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
    if ws is not None:
        d["workSessionId"] = ws
    out: dict[str, Any] = {"type": etype}
    if agent is not None:
        out["agentId"] = agent
    out["ts"] = ts
    out["data"] = d
    if role is not None:
        out["eventRole"] = role
    out["collabCategory"] = category
    out["collabSubTags"] = list(tags)
    return out


def ev(seq: int, etype: str, ts: float, ws: str | None = "ws_1", **kw: Any) -> Event:
    """`Event(seq, enriched(...))`."""
    return Event(seq, enriched(etype, ts, ws, **kw))


def session_status(last: float, latest: Mapping[str, Any], now_ms: float) -> str:
    """The old monitor's status rule, with task.completed / task.cancelled terminal
    (event.is_terminal)."""
    if now_ms - last > 86_400_000:
        return "ARCHIVED"
    return "QUIET" if is_terminal(latest) else "ACTIVE"


def _role(e: Mapping[str, Any], data: Mapping[str, Any]) -> str | None:
    for r in (e.get("eventRole"), data.get("eventRole")):
        if r in ROLES:
            return r  # type: ignore[no-any-return]
    return None


def _category(e: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    for c in (e.get("collabCategory"), data.get("collabCategory")):
        if c in CATEGORIES:
            return c  # type: ignore[no-any-return]
    return "engineering_build"


def _tags(e: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    for t in (e.get("collabSubTags"), data.get("collabSubTags")):
        if isinstance(t, list):
            return [x for x in (S(v) for v in t) if x is not None][:5]
    return []


def reference_sessions(
    events: Iterable[Event | Mapping[str, Any]],
    *,
    now_ms: float = NOW,
    roles: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Work-session summaries of `events` (given in log order), as JSON values."""
    dicts = [orjson.loads(e.json) if isinstance(e, Event) else dict(e) for e in events]
    role_f = {r for r in roles or () if r in ROLES} or None
    type_f = {t for t in (S(x) for x in types or ()) if t is not None} or None
    overrides = overrides or {}
    walk = sorted(dicts, key=event_time)  # stable: equal times keep log order
    sessions: dict[str, dict[str, Any]] = {}
    for e in walk:
        data = O(e.get("data"))
        if type_f is not None and e.get("type") not in type_f:
            continue
        role = _role(e, data)
        if role_f is not None and role not in role_f:
            continue
        ws = S(data.get("workSessionId"))
        if ws is None:
            continue
        t = event_time(e)
        cat, tags = _category(e, data), _tags(e, data)
        s = sessions.get(ws)
        if s is None:
            s = sessions[ws] = {"start": t, "last": t, "count": 0, "cat": cat, "tags": list(tags),
                                "latest": e, "roles": dict.fromkeys(ROLES, 0), "threads": {}}
        s["start"] = min(s["start"], t)
        s["last"] = max(s["last"], t)
        s["count"] += 1
        if event_time(s["latest"]) <= t:
            s["latest"] = e
        if s["cat"] == "engineering_build" and cat != "engineering_build":
            s["cat"] = cat
        if not s["tags"] and tags:
            s["tags"] = list(tags)
        if role is not None:
            s["roles"][role] += 1
        key = thread_key(e, data, t)
        th = s["threads"].get(key)
        if th is None:
            src, dst = agents_of(e, data)
            th = s["threads"][key] = {"id": key, "conv": S(data.get("conversationId")),
                                      "from": src, "to": dst, "start": t, "last": t, "count": 0,
                                      "cat": cat, "tags": list(tags), "events": []}
        th["start"] = min(th["start"], t)
        th["last"] = max(th["last"], t)
        th["count"] += 1
        if th["conv"] is None:
            th["conv"] = S(data.get("conversationId"))
        if th["cat"] == "engineering_build" and cat != "engineering_build":
            th["cat"] = cat
        if not th["tags"] and tags:
            th["tags"] = list(tags)
        th["events"].append(e)
    out = []
    for ws, s in sessions.items():
        threads = sorted(s["threads"].values(), key=lambda th: -th["last"])
        summary_threads = []
        for th in threads:
            d: dict[str, Any] = {"id": th["id"]}
            if th["conv"] is not None:
                d["conversationId"] = th["conv"]
            d.update({"fromAgent": th["from"], "toAgent": th["to"], "startTime": th["start"],
                      "lastTime": th["last"], "eventCount": th["count"],
                      "collabCategory": th["cat"], "collabSubTags": th["tags"],
                      "events": th["events"]})
            summary_threads.append(d)
        ov = overrides.get(ws)
        out.append({
            "id": "ws:" + ws,
            "workSessionId": ws,
            "status": session_status(s["last"], s["latest"], now_ms),
            "startTime": s["start"],
            "lastTime": s["last"],
            "durationMs": max(0, s["last"] - s["start"]),
            "threadCount": len(threads),
            "eventCount": s["count"],
            "collabCategory": ov or s["cat"],
            "collabSubTags": s["tags"],
            "categorySource": "manual_override" if ov else "event",
            "roleCounts": s["roles"],
            "threads": summary_threads,
        })
    out.sort(key=lambda x: -x["lastTime"])  # stable: first-seen order on ties
    return out
