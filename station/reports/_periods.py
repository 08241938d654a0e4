"""Report periods: any [from, to] in the station time zone, and the seed's presets.

The seed (item 8) asks for the half-year "to 30/5" (due 15/6) and the full year "to 30/11" (due
15/12). It names no start; loaxa starts both at 1/12 of the previous year, so two full-year
reports tile the calendar without gap or overlap and the half-year is a prefix of the year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

__all__ = ["Period", "parse_period", "period_between"]

_PRESET = re.compile(r"^(\d{4})(H1|Y)$")


@dataclass(frozen=True)
class Period:
    """Days ``first`` .. ``last`` (both included) in the station's time zone."""

    label: str
    first: date
    last: date
    due: date | None = None

    def bounds(self, tz: tzinfo) -> tuple[datetime, datetime]:
        """[start, end) as aware datetimes: local midnight of ``first`` and of ``last`` + 1."""
        start = datetime.combine(self.first, time(0), tz)
        end = datetime.combine(self.last + timedelta(days=1), time(0), tz)
        return start, end


def parse_period(text: str) -> Period:
    """``2024H1`` = 2023-12-01 .. 2024-05-30 (due 2024-06-15); ``2024Y`` = .. 2024-11-30."""
    match = _PRESET.match(text.strip().upper())
    if match is None:
        raise ValueError(f"unknown period {text!r}: use e.g. 2024H1 or 2024Y")
    year = int(match.group(1))
    first = date(year - 1, 12, 1)
    if match.group(2) == "H1":
        return Period(f"{year}H1", first, date(year, 5, 30), date(year, 6, 15))
    return Period(f"{year}Y", first, date(year, 11, 30), date(year, 12, 15))


def period_between(first: date, last: date) -> Period:
    if last < first:
        raise ValueError("the period ends before it starts")
    return Period(f"{first.isoformat()}..{last.isoformat()}", first, last)
