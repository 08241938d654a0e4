"""Pure scheduling logic: functions of (schedules, now). No I/O, no clock reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

ScheduleStatus = Literal["pending", "dispatched", "done", "missed", "cancelled"]


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What the planner needs to know of a one-off schedule."""

    id: int
    start_at: datetime
    status: ScheduleStatus = "pending"

    def __post_init__(self) -> None:
        if self.start_at.tzinfo is None:
            raise ValueError(f"schedule {self.id}: start_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Firing:
    """Send the play command for ``schedule_id`` at ``fire_at`` for a start at ``start_at``."""

    schedule_id: int
    fire_at: datetime
    start_at: datetime
    late: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    later: list[Firing] = field(default_factory=list)  # fire at their time
    now: list[Firing] = field(default_factory=list)  # fire immediately
    missed: list[int] = field(default_factory=list)  # too late: record, never play


def plan(
    schedules: list[ScheduleSpec],
    now: datetime,
    *,
    lead: timedelta,
    misfire_grace: timedelta,
) -> Plan:
    """Decide, for each pending schedule, when its play command goes out.

    A schedule fires ``lead`` before its start so clusters can fetch the audio and start
    together. If the station was down at that moment it still fires while the start is ahead;
    after the start it starts late (a fresh start ``lead`` from now) within ``misfire_grace``,
    else it is missed.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = Plan()
    for spec in schedules:
        if spec.status != "pending":
            continue
        fire_at = spec.start_at - lead
        if now < fire_at:
            result.later.append(Firing(spec.id, fire_at, spec.start_at))
        elif now <= spec.start_at:
            result.now.append(Firing(spec.id, now, spec.start_at))
        elif now - spec.start_at <= misfire_grace:
            result.now.append(Firing(spec.id, now, now + lead, late=True))
        else:
            result.missed.append(spec.id)
    return result


def session_id_for(schedule_id: int, start_at: datetime) -> str:
    """Deterministic, so a re-dispatch after a crash reuses ids and nothing plays twice."""
    return f"s{schedule_id}-{int(start_at.timestamp())}"


def play_command_id(session_id: str, cluster_id: str) -> str:
    return f"{session_id}.{cluster_id}.play"


def skew_ms(start_at: datetime, started_at: datetime, clock_offset_ms: int | None) -> int:
    """Start error of a cluster, corrected by the offset it reports for its own clock."""
    true_start = started_at - timedelta(milliseconds=clock_offset_ms or 0)
    return round((true_start - start_at).total_seconds() * 1000)
