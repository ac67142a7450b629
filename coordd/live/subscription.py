"""Server-side `/ws` subscriptions: which events and notices one client wants.

`/ws?session=<id,…>&type=<t,…>&agent=<a,…>&role=<r,…>` narrows the stream: an event is
sent when it matches every parameter given (its work session is one of `session`, its type
one of `type`, one of its agents — `agentId`, `fromAgent`, `toAgent` — one of `agent`, its
`eventRole` one of `role`); within a parameter the values are alternatives. A notice
(`work_session_status`, `attention`) is sent when its work session is one of `session` and
one of its agents (an attention item's `fromAgent` / `toAgent`) one of `agent`, for the
parameters given (a status change names no agent: `agent` does not hold it back); `type`
and `role` narrow events only. No parameter: everything, as before.

Values are comma-separated and may repeat the parameter (`session=a&session=b`); each
parameter holds at most `MAX_VALUES` values of at most `MAX_VALUE_CHARS` characters, and
`notices=0` turns the notices off for a client that wants only events. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from coordd.core.event import Event

__all__ = ["MAX_VALUES", "MAX_VALUE_CHARS", "PARAMETERS", "Subscription", "parse_subscription"]

#: Values per parameter (after splitting on commas).
MAX_VALUES: Final = 100
MAX_VALUE_CHARS: Final = 256
PARAMETERS: Final = ("session", "type", "agent", "role")


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one client asked for; None for a parameter not given (anything matches)."""

    sessions: frozenset[str] | None = None
    types: frozenset[str] | None = None
    agents: frozenset[str] | None = None
    roles: frozenset[str] | None = None
    notices: bool = True

    @property
    def narrows_events(self) -> bool:
        return any(v is not None for v in (self.sessions, self.types, self.agents, self.roles))

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for equal subscriptions (clients sharing a filtered batch)."""
        return (self.sessions, self.types, self.agents, self.roles)

    def wants(self, ev: Event) -> bool:
        if self.sessions is not None and ev.ws_id not in self.sessions:
            return False
        if self.types is not None and ev.type not in self.types:
            return False
        if self.roles is not None and ev.role not in self.roles:
            return False
        return self.agents is None or not self.agents.isdisjoint(
            (ev.agent_id, ev.from_agent, ev.to_agent))

    def select(self, events: Sequence[Event]) -> list[Event]:
        return [ev for ev in events if self.wants(ev)]

    def wants_notice(self, ws_id: str | None, agents: Iterable[str | None] | None) -> bool:
        """`agents` None: a notice about no agent in particular (a status change)."""
        if not self.notices:
            return False
        if self.sessions is not None and ws_id not in self.sessions:
            return False
        return self.agents is None or agents is None or not self.agents.isdisjoint(agents)


EVERYTHING: Final = Subscription()


def parse_subscription(args: Mapping[str, Sequence[str]]) -> Subscription | str:
    """The subscription of a `/ws` query (each name with all its values, in order); a
    message saying what is wrong (for a 400) when a parameter is malformed."""
    lists: dict[str, frozenset[str] | None] = {}
    for name in PARAMETERS:
        raw = args.get(name)
        if raw is None:
            lists[name] = None
            continue
        values = [v.strip() for item in raw for v in item.split(",")]
        values = [v for v in values if v]
        if not values:
            return f"{name}= is empty: give one or more comma-separated values, or leave it out"
        if len(values) > MAX_VALUES:
            return (f"{name}= lists {len(values)} values; at most {MAX_VALUES} are allowed "
                    "(open several connections, or subscribe to everything and filter)")
        long = next((v for v in values if len(v) > MAX_VALUE_CHARS), None)
        if long is not None:
            return f"{name}= value {long[:40]!r}… is over {MAX_VALUE_CHARS} characters"
        lists[name] = frozenset(values)
    notices_raw = args.get("notices")
    notices = True
    if notices_raw is not None:
        flag = notices_raw[-1].strip().lower()
        if flag not in ("0", "1", "true", "false"):
            return f"notices={notices_raw[-1]!r}: use notices=0 (events only) or notices=1"
        notices = flag in ("1", "true")
    return Subscription(lists["session"], lists["type"], lists["agent"], lists["role"],
                        notices)
