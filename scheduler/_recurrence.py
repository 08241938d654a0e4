"""When a schedule airs: once, daily, on chosen weekdays or monthly, in its own time zone.

Pure and fast: expanding a rule over a window walks the local dates of that window only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

RecurrenceKind = Literal["once", "daily", "weekly", "monthly"]
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """A cached ZoneInfo; ValueError (not ZoneInfoNotFoundError) for a bad name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def local_at(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``day`` at wall-clock ``at`` in ``tz``, DST-safe.

    An ambiguous time (clocks go back) is its first occurrence, so it airs once; a time that
    does not exist (clocks jump forward) airs just after the jump, never not at all.
    """
    naive = datetime.combine(day, at)
    local = naive.replace(tzinfo=tz)
    back = local.astimezone(UTC).astimezone(tz)
    return back if back.replace(tzinfo=None) != naive else local


@lru_cache(maxsize=8192)
def _utc_at(day: date, at: time, tz: ZoneInfo) -> datetime:
    # Thousands of schedules share a handful of times of day: convert each (day, time) once.
    return local_at(day, at, tz).astimezone(UTC)


def parse_weekdays(text: str) -> frozenset[int]:
    """``"mon,wed"`` or ``"mon-fri"`` -> {0, 2} / {0..4} (Monday = 0)."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"bad weekday {part!r}: use mon,tue,... or a range like mon-fri")
        lo, hi = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if hi < lo:
            raise ValueError(f"bad weekday range {part!r}: it must go forward (mon-fri)")
        days.update(range(lo, hi + 1))
    return frozenset(days)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """``valid_from``/``valid_to`` are inclusive local dates; ``exceptions`` are skipped dates."""

    kind: RecurrenceKind
    at: datetime | None = None  # kind "once"
    time_of_day: time | None = None  # recurring kinds, wall clock in ``timezone``
    weekdays: frozenset[int] = frozenset()  # kind "weekly", Monday = 0
    day_of_month: int | None = None  # kind "monthly"; months without that day are skipped
    valid_from: date | None = None
    valid_to: date | None = None
    exceptions: frozenset[date] = frozenset()
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.kind == "once":
            if self.at is None or self.at.tzinfo is None:
                raise ValueError("a one-off schedule needs a timezone-aware start time")
            return
        if self.time_of_day is None:
            raise ValueError(f"a {self.kind} schedule needs a time of day")
        if self.kind == "weekly" and not self.weekdays <= frozenset(range(7)):
            raise ValueError("weekdays must be 0 (Monday) to 6 (Sunday)")
        if self.kind == "weekly" and not self.weekdays:
            raise ValueError("a weekly schedule needs at least one weekday")
        if self.kind == "monthly" and not (self.day_of_month and 1 <= self.day_of_month <= 31):
            raise ValueError("a monthly schedule needs a day of month from 1 to 31")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError(f"valid to {self.valid_to} is before valid from {self.valid_from}")

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def starts(self, window_start: datetime, window_end: datetime) -> list[datetime]:
        """Start times in ``[window_start, window_end)``, in order, in UTC.

        UTC, because Python compares and subtracts two datetimes of the same ``tzinfo`` by
        wall clock, which is wrong across a DST change.
        """
        if window_start.tzinfo is None or window_end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.kind == "once":
            assert self.at is not None
            at = self.at.astimezone(UTC)
            ok = window_start <= at < window_end and self._valid(self.at.astimezone(self.tz).date())
            return [at] if ok else []
        assert self.time_of_day is not None
        tz = self.tz
        result = []
        for day in self._days(window_start.astimezone(tz).date(), window_end.astimezone(tz).date()):
            start = _utc_at(day, self.time_of_day, tz)
            if window_start <= start < window_end:
                result.append(start)
        return result

    def _days(self, first: date, last: date) -> list[date]:
        # A day early: a late-evening local time may map into the window from the day before.
        first = max(first - _ONE_DAY, self.valid_from or date.min)
        last = min(last, self.valid_to or date.max)
        if self.kind == "monthly":
            return [d for d in _month_days(first, last, self.day_of_month or 1) if self._valid(d)]
        days = []
        day = first
        while day <= last:
            if self._matches(day):
                days.append(day)
            day += _ONE_DAY
        return days

    def _matches(self, day: date) -> bool:
        if self.kind == "weekly" and day.weekday() not in self.weekdays:
            return False
        return day not in self.exceptions

    def _valid(self, day: date) -> bool:
        if self.valid_from and day < self.valid_from:
            return False
        if self.valid_to and day > self.valid_to:
            return False
        return day not in self.exceptions


def _month_days(first: date, last: date, dom: int) -> list[date]:
    days = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        try:
            day = date(year, month, dom)
        except ValueError:  # e.g. the 31st in April: no broadcast that month
            day = None
        if day is not None and first <= day <= last:
            days.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return days
