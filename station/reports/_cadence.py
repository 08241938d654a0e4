"""Reports pushed upstream on a cadence (config ``upstream.push``), through the durable outbox.

``due_periods(now, tz, cadences, delay, after)`` is pure: the latest *closed* period of each
cadence (a period closes at local midnight after its last day; it is due ``delay`` later, so
late proof of play has settled), and, when ``after`` names the newest period of that cadence
already in the outbox, every closed period between the two, at most ``CATCH_UP_MONTHS`` back.
So a station that was off over several due moments queues each missed period on start, oldest
first. A cadence with nothing in the outbox yet starts at its latest period: a new station does
not back-fill reports for months it did not run.

``push_due_reports`` queues each due report once. The key is period-based,
``report:<kind>:<period>:auto``, and the outbox's unique key index holds it, so a restart or a
double fire never queues a period twice; a period already queued by hand (``loaxa report
push``, key ``report:<kind>:<period>:<hash>``) is not queued again either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.config import ReportPushSection
from station.db import OutboxMessage

from ._build import build_report
from ._periods import Period, parse_period

__all__ = [
    "CADENCES",
    "CATCH_UP_MONTHS",
    "auto_key",
    "due_periods",
    "newest_queued",
    "push_due_reports",
]

log = logging.getLogger(__name__)
Sessions = async_sessionmaker[AsyncSession]
CADENCES = ("daily", "monthly", "half_year", "year")
CATCH_UP_MONTHS = 12  # how far back a station catches up with periods missed while it was off
# A cadence's labels, as SQL LIKE patterns (fixed width, so MAX(key) is the newest period) and
# as the exact form; a ``loaxa report push --from --to`` label matches none of them.
_LABELS = {
    "daily": ("____-__-__", re.compile(r"\d{4}-\d{2}-\d{2}")),
    "monthly": ("____-__", re.compile(r"\d{4}-\d{2}")),
    "half_year": ("____H1", re.compile(r"\d{4}H1")),
    "year": ("____Y", re.compile(r"\d{4}Y")),
}


def _latest_closed(cadence: str, today: date) -> Period:
    """The latest period of ``cadence`` whose last day is before ``today``."""
    if cadence == "daily":
        day = today - timedelta(days=1)
        return Period(day.isoformat(), day, day)
    if cadence == "monthly":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(f"{last:%Y-%m}", last.replace(day=1), last)
    if cadence == "half_year":  # the seed's half-year: data to 30/5
        year = today.year if today > date(today.year, 5, 30) else today.year - 1
        return parse_period(f"{year}H1")
    if cadence == "year":  # the seed's year: data to 30/11
        year = today.year if today > date(today.year, 11, 30) else today.year - 1
        return parse_period(f"{year}Y")
    raise ValueError(f"unknown cadence {cadence!r}: one of {', '.join(CADENCES)}")


def _months_back(day: date, months: int) -> date:
    """The same day ``months`` earlier (the month's last day when it is shorter)."""
    month = day.year * 12 + day.month - 1 - months
    year, month = divmod(month, 12)
    first = date(year, month + 1, 1)
    following = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    return first.replace(day=min(day.day, (following - first).days))


def _closed_since(cadence: str, today: date, after: str | None) -> list[Period]:
    """Closed periods of ``cadence`` newer than the label ``after``, oldest first; only the
    latest when ``after`` is None; never older than ``CATCH_UP_MONTHS`` (the latest always)."""
    latest = _latest_closed(cadence, today)
    found = [latest]
    if after is None:
        return found
    oldest = _months_back(today, CATCH_UP_MONTHS)
    while True:
        # the period before one is the latest closed on its first day
        previous = _latest_closed(cadence, found[-1].first)
        if previous.label <= after or previous.last < oldest:
            return found[::-1]
        found.append(previous)


def due_periods(
    now: datetime,
    tz: tzinfo,
    cadences: Sequence[str],
    delay: timedelta,
    after: Mapping[str, str] | None = None,
) -> list[Period]:
    """The closed periods due by each cadence, once ``delay`` has passed since they closed:
    the latest, and the ones since ``after[cadence]`` (the newest label already queued)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = (now - delay).astimezone(tz).date()
    found: dict[str, Period] = {}
    for cadence in cadences:
        for period in _closed_since(cadence, today, (after or {}).get(cadence)):
            found.setdefault(period.label, period)
    return list(found.values())


def auto_key(kind: str, period: Period) -> str:
    return f"report:{kind}:{period.label}:auto"


async def newest_queued(sessions: Sessions, kind: str, cadences: Sequence[str]) -> dict[str, str]:
    """The newest period label of each cadence with a ``report:<kind>:`` row in the outbox
    (queued by the cadence or by hand, whatever its delivery state)."""
    newest: dict[str, str] = {}
    async with sessions() as db:
        for cadence in dict.fromkeys(cadences):
            if cadence not in _LABELS:
                raise ValueError(f"unknown cadence {cadence!r}: one of {', '.join(CADENCES)}")
            pattern, exact = _LABELS[cadence]
            query = select(func.max(OutboxMessage.key)).where(
                col(OutboxMessage.key).like(f"report:{kind}:{pattern}:%")
            )
            key = (await db.exec(query)).first()
            label = key.split(":")[2] if key else ""
            if exact.fullmatch(label):
                newest[cadence] = label
    return newest


async def _queued(sessions: Sessions, kind: str, period: Period) -> bool:
    prefix = f"report:{kind}:{period.label}:"
    async with sessions() as db:
        query = select(OutboxMessage.id).where(col(OutboxMessage.key).startswith(prefix))
        return (await db.exec(query.limit(1))).first() is not None


async def push_due_reports(
    sessions: Sessions,
    push: ReportPushSection,
    tz: tzinfo,
    now: datetime,
    *,
    on_time_ms: int = 500,
) -> list[str]:
    """Queue every due report not queued yet; returns the keys queued by this call."""
    from station.upstream import enqueue

    queued = []
    delay = timedelta(hours=push.delay_h)
    for kind, cadences in (("activity", push.activity), ("inventory", push.inventory)):
        after = await newest_queued(sessions, kind, cadences)
        for period in due_periods(now, tz, cadences, delay, after):
            if await _queued(sessions, kind, period):
                continue
            report = await build_report(sessions, kind, period, tz, on_time_ms=on_time_ms)
            key = auto_key(kind, period)
            async with sessions() as db:
                added = await enqueue(db, "report", key, report.as_json())
                try:
                    await db.commit()
                except IntegrityError:  # a concurrent run queued it first: that one counts
                    added = False
            if added:
                log.info("report %s queued for upstream", key)
                queued.append(key)
    return queued
