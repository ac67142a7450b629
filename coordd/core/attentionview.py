"""`GET /api/attention`: the tracker's items, filtered, as the route answers them.

Parameters (each validated; anything malformed is a 400 saying how to fix it):

* `state`: `open` (default) or `closed` (the recently closed items the tracker keeps);
* `since`: ISO-8601 or epoch ms; open items that opened at or after it, closed items that
  closed at or after it;
* `kind`: CSV/repeated, each one of `awaiting_reply`, `failed`, `silent_session`;
* `agent`: CSV/repeated; items whose `fromAgent` or `toAgent` is one of them;
* `workSessionId`: CSV/repeated; items of those sessions;
* `limit`: at most this many items (default 500).

The answer: `{"items": [...], "count": <items>, "total": <matches>, "state", "open":
{<kind>: <open items>} (every kind), "now": <ms>}`, items newest first (open: by when the
condition began; closed: most recently closed first). Pure: no I/O.
"""

from __future__ import annotations

from typing import Final

from coordd.core.attention import KINDS, Attention, AttentionItem
from coordd.core.jsvalues import dumps
from coordd.core.params import Params, csv_param, instant_param, limit_param, text_param
from coordd.core.queries import Response, error
from coordd.errors import BadRequest

__all__ = ["DEFAULT_LIMIT", "STATES", "attention_answer"]

DEFAULT_LIMIT: Final = 500
STATES: Final = ("open", "closed")


def attention_answer(att: Attention, params: Params, now_ms: float) -> Response:
    """The route's status and body."""
    try:
        state = text_param(params, "state") or "open"
        if state not in STATES:
            raise BadRequest(f"invalid state {state!r}: expected open or closed")
        kinds = set(csv_param(params, "kind"))
        unknown = sorted(kinds.difference(KINDS))
        if unknown:
            raise BadRequest(f"invalid kind {unknown[0]!r}: expected one of {', '.join(KINDS)}")
        agents = set(csv_param(params, "agent"))
        sessions = set(csv_param(params, "workSessionId"))
        since = instant_param(params, "since")
        limit = limit_param(params, DEFAULT_LIMIT)
    except BadRequest as exc:
        return error(400, str(exc))
    items = att.open_items() if state == "open" else att.closed_items()

    def wanted(item: AttentionItem) -> bool:
        if kinds and item.kind not in kinds:
            return False
        if sessions and item.work_session_id not in sessions:
            return False
        if agents and item.from_agent not in agents and item.to_agent not in agents:
            return False
        if since is not None:
            at = item.opened_at if state == "open" else item.closed_at
            return at is not None and at >= since
        return True

    matched = [item for item in items if wanted(item)]
    page = matched[:limit]
    return 200, dumps({
        "items": [item.as_json(now_ms) for item in page], "count": len(page),
        "total": len(matched), "state": state, "open": att.statistics(), "now": int(now_ms),
    })
