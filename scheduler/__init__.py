"""Scheduling: pure planning functions and the dispatcher that turns plans into commands.

Imports ``devices`` (to send) and nothing from ``station``; the station provides the
``ScheduleRepository`` that reads and writes the database. Everything but the dispatcher is
pure: functions of (schedules, now) on aware datetimes.
"""

from ._conflicts import Conflict, find_conflicts
from ._dispatcher import (
    CodecsFor,
    Dispatcher,
    ItemRef,
    RenditionRef,
    ScheduleRepository,
    SessionPlan,
)
from ._plan import Firing, Plan, ScheduleSpec, plan, play_command_id, session_id_for, skew_ms
from ._preempt import (
    Action,
    ClusterState,
    Decision,
    Playing,
    Position,
    Session,
    Waiting,
    admit,
    advance,
    arbitrate,
    finish,
    rejoin,
)
from ._priority import DEFAULT_LEVELS, PriorityLadder
from ._programme import ItemKind, ProgrammeItemSpec, ProgrammeSpec
from ._quota import Quota, QuotaViolation, check_quotas
from ._recurrence import WEEKDAYS, Recurrence, RecurrenceKind, local_at, parse_weekdays
from ._rules import Occurrence, ScheduleRule, expand, occurrences
from ._timeline import ClusterTimeline, Slot, session_for, timeline

__all__ = [
    "DEFAULT_LEVELS",
    "WEEKDAYS",
    "Action",
    "ClusterState",
    "ClusterTimeline",
    "CodecsFor",
    "Conflict",
    "Decision",
    "Dispatcher",
    "Firing",
    "ItemKind",
    "ItemRef",
    "Occurrence",
    "Plan",
    "Playing",
    "Position",
    "PriorityLadder",
    "ProgrammeItemSpec",
    "ProgrammeSpec",
    "Quota",
    "QuotaViolation",
    "Recurrence",
    "RecurrenceKind",
    "RenditionRef",
    "ScheduleRepository",
    "ScheduleRule",
    "ScheduleSpec",
    "Session",
    "SessionPlan",
    "Slot",
    "Waiting",
    "admit",
    "advance",
    "arbitrate",
    "check_quotas",
    "expand",
    "find_conflicts",
    "finish",
    "local_at",
    "occurrences",
    "parse_weekdays",
    "plan",
    "play_command_id",
    "rejoin",
    "session_for",
    "session_id_for",
    "skew_ms",
    "timeline",
]
