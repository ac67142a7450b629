"""Test helpers: the lean (`view=summary`) answer derived from the full one, written from the
contract only (it shares nothing with `coordd.core.summaries` but `S`), so that the lean
answers of the memory and MongoDB backends and of the daemon can be checked against the full
answers they must agree with."""

from __future__ import annotations

from typing import Any

from coordd.core.jsvalues import O, S

__all__ = ["PREVIEW", "lean_of", "summarise_sessions"]

#: The documented bound of `lastMessagePreview`, in characters.
PREVIEW = 160


def _last(events: list[dict[str, Any]], key: str) -> str | None:
    for e in reversed(events):
        v = S(O(e.get("data")).get(key))
        if v is not None:
            return v
    return None


def _thread(th: dict[str, Any]) -> dict[str, Any]:
    evs = th["events"]
    message = _last(evs, "message")
    if message is not None and len(message) > PREVIEW:
        message = message[:PREVIEW - 1] + "…"
    return {"id": th["id"], "fromAgent": th["fromAgent"], "toAgent": th["toAgent"],
            "eventCount": len(evs), "startTime": th["startTime"], "lastTime": th["lastTime"],
            "lastEventType": evs[-1]["type"], "lastOutcome": _last(evs, "outcome"),
            "lastMessagePreview": message}


def summarise_sessions(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Full session summaries with their threads summarised (key order kept)."""
    return [{k: ([_thread(t) for t in v] if k == "threads" else v) for k, v in s.items()}
            for s in sessions]


def lean_of(full: dict[str, Any]) -> dict[str, Any]:
    """The `view=summary` answer a full work-session list answer stands for."""
    return {k: (summarise_sessions(v) if k == "sessions" else v) for k, v in full.items()}
