"""The priority ladder: named levels, higher numbers win. Configurable per station."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# emergency > upstream priority bulletin > live > scheduled > relay > idle
DEFAULT_LEVELS: Mapping[str, int] = {
    "emergency": 100,
    "bulletin": 80,
    "live": 60,
    "scheduled": 40,
    "relay": 20,
    "idle": 0,
}

# The bound of ``rank`` on the wire (``devices.protocol.RANK_LIMIT``; a test keeps them equal).
RANK_LIMIT = 1_000_000


def on_air_rank(rank: int) -> int:
    """The ``rank`` a cluster is sent for the operator's ``rank`` among schedules of one level.

    The operator's lower rank goes first; a cluster lets the higher ``(priority, rank)`` win,
    like priority (docs/protocol.md), so the sign flips. The preemption rules compare the same
    pair (``Session.key``): what the timeline shows is what a cluster does, link up or down.
    """
    return max(-RANK_LIMIT, min(RANK_LIMIT, -rank))


@dataclass(frozen=True, slots=True)
class PriorityLadder:
    """``newest_wins``: levels where a newcomer of the same level replaces the one on air
    (emergencies: an old emergency must never hold the horns, e.g. a forgotten open mic)."""

    levels: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    newest_wins: frozenset[str] = frozenset({"emergency"})

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("the priority ladder needs at least one level")
        unknown = self.newest_wins - set(self.levels)
        if unknown:
            raise ValueError(f"newest_wins names unknown level(s): {', '.join(sorted(unknown))}")

    def level(self, name: str) -> int:
        try:
            return self.levels[name]
        except KeyError:
            known = ", ".join(self.names())
            raise ValueError(f"unknown priority {name!r}: use one of {known}") from None

    def names(self) -> list[str]:
        """Highest first."""
        return sorted(self.levels, key=lambda n: -self.levels[n])

    def replaces_same_level(self, name: str) -> bool:
        return name in self.newest_wins
