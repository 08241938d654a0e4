"""One entry for the CLI, the API and the push: a report by kind and period text."""

from __future__ import annotations

from datetime import date, tzinfo

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ._activity import activity_report
from ._inventory import inventory_report
from ._model import Report
from ._periods import Period, parse_period, period_between

__all__ = ["KINDS", "build_report", "choose_period"]

Sessions = async_sessionmaker[AsyncSession]
KINDS = ("activity", "inventory")


def choose_period(preset: str | None, first: date | None, last: date | None) -> Period:
    """A preset (``2024H1``) or both dates; ValueError otherwise."""
    if preset:
        if first or last:
            raise ValueError("give either a period or --from/--to, not both")
        return parse_period(preset)
    if first is None or last is None:
        raise ValueError("give a period (e.g. 2024H1) or both --from and --to")
    return period_between(first, last)


async def build_report(
    sessions: Sessions, kind: str, period: Period, tz: tzinfo, *, on_time_ms: int = 500
) -> Report:
    if kind == "activity":
        return await activity_report(sessions, period, tz, on_time_ms=on_time_ms)
    if kind == "inventory":
        return await inventory_report(sessions, period, tz)
    raise ValueError(f"unknown report {kind!r}: one of {', '.join(KINDS)}")
