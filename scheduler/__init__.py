"""Scheduling: pure planning functions and the dispatcher that turns plans into commands.

Imports ``devices`` (to send) and nothing from ``station``; the station provides the
``ScheduleRepository`` that reads and writes the database.
"""

from ._dispatcher import Dispatcher, ItemRef, ScheduleRepository, SessionPlan
from ._plan import Firing, Plan, ScheduleSpec, plan, play_command_id, session_id_for, skew_ms

__all__ = [
    "Dispatcher",
    "Firing",
    "ItemRef",
    "Plan",
    "ScheduleRepository",
    "ScheduleSpec",
    "SessionPlan",
    "plan",
    "play_command_id",
    "session_id_for",
    "skew_ms",
]
