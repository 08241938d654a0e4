"""Same-priority schedules that overlap on a cluster: reported so the operator chooses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ._rules import Occurrence, ScheduleRule, occurrences


@dataclass(frozen=True, slots=True)
class Conflict:
    """``schedule_id`` overlaps the new schedule on ``clusters`` during ``overlaps``."""

    schedule_id: int
    rank: int
    clusters: frozenset[str]
    overlaps: tuple[tuple[datetime, datetime], ...]

    def describe(self, *, shown: int = 3) -> str:
        times = ", ".join(
            f"{a.isoformat(timespec='minutes')}-{b:%H:%M}" for a, b in self.overlaps[:shown]
        )
        more = len(self.overlaps) - shown
        extra = f" and {more} more" if more > 0 else ""
        clusters = ", ".join(sorted(self.clusters))
        return f"schedule {self.schedule_id} on {clusters} at {times}{extra}"


def find_conflicts(
    new: ScheduleRule,
    existing: Iterable[ScheduleRule],
    window_start: datetime,
    window_end: datetime,
) -> list[Conflict]:
    """Existing schedules of the same priority as ``new`` overlapping it on a shared cluster."""
    mine = occurrences(new, window_start, window_end)
    if not mine:
        return []
    found = []
    for other in existing:
        if other.id == new.id or other.priority != new.priority:
            continue
        shared = new.clusters & other.clusters
        if not shared:
            continue
        theirs = occurrences(other, window_start - other.programme.duration, window_end)
        overlaps = _overlaps(mine, theirs)
        if overlaps:
            found.append(Conflict(other.id, other.rank, frozenset(shared), tuple(overlaps)))
    return found


def _overlaps(a: list[Occurrence], b: list[Occurrence]) -> list[tuple[datetime, datetime]]:
    """Two sorted interval lists -> their intersections (a sweep, linear in both)."""
    result = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i].start, b[j].start)
        end = min(a[i].end, b[j].end)
        if start < end:
            result.append((start, end))
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return result
