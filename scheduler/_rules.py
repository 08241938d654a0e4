"""Schedule rules (programme + targets + recurrence + priority) and their occurrences."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._plan import session_id_for
from ._programme import ProgrammeSpec
from ._recurrence import Recurrence


@dataclass(frozen=True, slots=True)
class ScheduleRule:
    """One schedule, with its targets already resolved to cluster ids.

    ``rank`` orders schedules of the same priority that the operator accepted as overlapping:
    the lower rank goes first. ``misfire_grace`` is how late it may still start (0 = skip).
    """

    id: int
    programme: ProgrammeSpec
    recurrence: Recurrence
    clusters: frozenset[str]
    priority: str = "scheduled"
    rank: int = 0
    misfire_grace: timedelta = timedelta(0)
    volume: int | None = None

    def __post_init__(self) -> None:
        if self.misfire_grace < timedelta(0):
            raise ValueError("misfire grace must not be negative")
        if self.volume is not None and not 0 <= self.volume <= 100:
            raise ValueError("volume must be 0-100")


@dataclass(frozen=True, slots=True)
class Occurrence:
    rule: ScheduleRule
    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + self.rule.programme.duration

    @property
    def window_end(self) -> datetime:
        """Last moment it may still start (if queued) or resume (if preempted)."""
        return self.end + self.rule.misfire_grace

    @property
    def session_id(self) -> str:
        return session_id_for(self.rule.id, self.start)


def occurrences(
    schedule: ScheduleRule, window_start: datetime, window_end: datetime
) -> list[Occurrence]:
    """Occurrences of ``schedule`` starting in ``[window_start, window_end)``, in order."""
    return [Occurrence(schedule, s) for s in schedule.recurrence.starts(window_start, window_end)]


def expand(
    schedules: Iterable[ScheduleRule], window_start: datetime, window_end: datetime
) -> list[Occurrence]:
    """Occurrences of many schedules, ordered by start time then schedule id."""
    found = [o for s in schedules for o in occurrences(s, window_start, window_end)]
    found.sort(key=lambda o: (o.start, o.rule.id))
    return found
