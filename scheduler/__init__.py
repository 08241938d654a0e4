"""Scheduling: pure planning functions and the dispatcher that turns plans into commands.

Imports ``devices`` (to send) and nothing from ``station``; the station provides the
``ScheduleRepository`` that reads and writes the database. Everything but the dispatcher is
pure: functions of (schedules, now) on aware datetimes.
"""

from ._conflicts import Conflict, find_conflicts
from ._dispatcher import Dispatcher, ScheduleRepository
from ._due import OccurrenceFiring, OccurrencePlan, OccurrenceSpec, plan_occurrences
from ._emergency import (
    EmergencyPlan,
    EmergencyRepository,
    EmergencyRunner,
    EmergencyWork,
    Resumption,
    bridge_targets,
    session_length,
)
from ._forward import Forwarder
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
from ._session import (
    RESUME_BASE,
    BridgePower,
    CodecsFor,
    ItemRef,
    Part,
    RenditionRef,
    Segment,
    SessionPlan,
    SilencePart,
    StreamPart,
    UrlFor,
    base_session_id,
    resume_id,
    segment_id,
    segments,
)
from ._streams import StreamRoute, StreamRouter
from ._timeline import ClusterTimeline, Slot, session_for, timeline

__all__ = [
    "DEFAULT_LEVELS",
    "RESUME_BASE",
    "WEEKDAYS",
    "Action",
    "BridgePower",
    "ClusterState",
    "ClusterTimeline",
    "CodecsFor",
    "Conflict",
    "Decision",
    "Dispatcher",
    "EmergencyPlan",
    "EmergencyRepository",
    "EmergencyRunner",
    "EmergencyWork",
    "Firing",
    "Forwarder",
    "ItemKind",
    "ItemRef",
    "Occurrence",
    "OccurrenceFiring",
    "OccurrencePlan",
    "OccurrenceSpec",
    "Part",
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
    "Resumption",
    "ScheduleRepository",
    "ScheduleRule",
    "ScheduleSpec",
    "Segment",
    "Session",
    "SessionPlan",
    "SilencePart",
    "Slot",
    "StreamPart",
    "StreamRoute",
    "StreamRouter",
    "UrlFor",
    "Waiting",
    "admit",
    "advance",
    "arbitrate",
    "base_session_id",
    "bridge_targets",
    "check_quotas",
    "expand",
    "find_conflicts",
    "finish",
    "local_at",
    "occurrences",
    "parse_weekdays",
    "plan",
    "plan_occurrences",
    "play_command_id",
    "rejoin",
    "resume_id",
    "segment_id",
    "segments",
    "session_for",
    "session_id_for",
    "session_length",
    "skew_ms",
    "timeline",
]
