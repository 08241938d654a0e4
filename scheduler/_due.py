"""When each occurrence of a recurring schedule fires. Pure: a function of (occurrences, now)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ._plan import session_id_for


@dataclass(frozen=True, slots=True)
class OccurrenceSpec:
    """One not-yet-dispatched occurrence of an ``active`` schedule."""

    schedule_id: int
    occurrence: datetime  # nominal start; names the session
    misfire_grace: timedelta = timedelta(0)  # 0: skip when late

    def __post_init__(self) -> None:
        if self.occurrence.tzinfo is None:
            raise ValueError(f"schedule {self.schedule_id}: occurrence must be timezone-aware")

    @property
    def session_id(self) -> str:
        return session_id_for(self.schedule_id, self.occurrence)


@dataclass(frozen=True, slots=True)
class OccurrenceFiring:
    """Send the commands of ``spec`` at ``fire_at`` for a start at ``start_at``."""

    spec: OccurrenceSpec
    fire_at: datetime
    start_at: datetime
    late: bool = False


@dataclass(frozen=True, slots=True)
class OccurrencePlan:
    later: list[OccurrenceFiring] = field(default_factory=list)
    now: list[OccurrenceFiring] = field(default_factory=list)
    missed: list[OccurrenceSpec] = field(default_factory=list)  # record, never play


def plan_occurrences(
    specs: list[OccurrenceSpec], now: datetime, *, lead: timedelta
) -> OccurrencePlan:
    """Like ``plan`` for one-offs, with each occurrence's own misfire grace.

    Fires ``lead`` ahead; still fires while the start is ahead; after the start it starts late
    (``lead`` from now) within its grace, else it is missed (skipped and recorded).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = OccurrencePlan()
    for spec in sorted(specs, key=lambda s: (s.occurrence, s.schedule_id)):
        fire_at = spec.occurrence - lead
        if now < fire_at:
            result.later.append(OccurrenceFiring(spec, fire_at, spec.occurrence))
        elif now <= spec.occurrence:
            result.now.append(OccurrenceFiring(spec, now, spec.occurrence))
        elif now - spec.occurrence <= spec.misfire_grace:
            result.now.append(OccurrenceFiring(spec, now, now + lead, late=True))
        else:
            result.missed.append(spec)
    return result
