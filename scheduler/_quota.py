"""Airtime quotas per locality: sessions per day, minutes per session, days per week.

A *session* is what a listener hears as one broadcast: occurrences on a cluster that follow
each other with gaps of at most ``session_gap`` (a morning slot of relay + bulletin + notice
is one session). Limits are checked per cluster and reported per locality.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from ._programme import ItemKind
from ._recurrence import zone
from ._rules import Occurrence, ScheduleRule, expand

QuotaRule = Literal["sessions_per_day", "minutes_per_session", "days_per_week"]
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Quota:
    max_sessions_per_day: int | None = None
    max_minutes_per_session: float | None = None
    max_days_per_week: int | None = None
    count_relays: bool = True  # relayed programmes count as airtime (e.g. rural: 45 min incl.)


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    locality: str
    rule: QuotaRule
    first: str  # the first day / week / session start that breaks it
    value: float
    limit: float
    times: int  # how many days / weeks / sessions break it in the checked period
    clusters: tuple[str, ...]

    def describe(self) -> str:
        what = {
            "sessions_per_day": f"{self.value:g} sessions on {self.first} "
            f"(max {self.limit:g} a day)",
            "minutes_per_session": f"a {self.value:g}-minute session at {self.first} "
            f"(max {self.limit:g} minutes)",
            "days_per_week": f"broadcasts on {self.value:g} days in week {self.first} "
            f"(max {self.limit:g} days a week)",
        }[self.rule]
        more = f" and {self.times - 1} more" if self.times > 1 else ""
        return f"locality {self.locality!r}: {what}{more} on {', '.join(self.clusters)}"


@dataclass(frozen=True, slots=True)
class _Session:
    start: datetime
    minutes: float
    has_new: bool


def check_quotas(
    new: ScheduleRule,
    existing: Iterable[ScheduleRule],
    *,
    localities: Mapping[str, str],
    quotas: Mapping[str, Quota],
    window_start: datetime,
    window_end: datetime,
    session_gap: timedelta = timedelta(minutes=5),
    exempt: frozenset[str] = frozenset({"emergency", "bulletin"}),
) -> list[QuotaViolation]:
    """Limits ``new`` would break on its clusters in ``[window_start, window_end)``.

    Breaches that exist without ``new`` are not its fault and are not reported.
    ``localities`` maps cluster id -> locality name; clusters of unlisted localities are free.
    """
    if new.priority in exempt:
        return []
    others = [r for r in existing if r.id != new.id and r.priority not in exempt]
    groups: dict[tuple[str, frozenset[int]], list[str]] = defaultdict(list)
    for cluster in sorted(new.clusters):
        locality = localities.get(cluster, "")
        if locality in quotas:
            # Clusters heard with the same schedules have the same airtime: check once.
            signature = frozenset(r.id for r in others if cluster in r.clusters)
            groups[(locality, signature)].append(cluster)
    rules = {r.id: r for r in others}
    found: list[QuotaViolation] = []
    for (locality, signature), clusters in groups.items():
        occ = expand([new, *(rules[i] for i in signature)], window_start, window_end)
        quota = quotas[locality]
        sessions = _sessions(occ, new.id, session_gap, quota.count_relays)
        before = _sessions([o for o in occ if o.rule is not new], new.id, session_gap, True)
        tz = new.recurrence.timezone
        found += _check(sessions, before, quota, locality, tuple(clusters), tz)
    return found


def _sessions(
    occ: list[Occurrence], new_id: int, gap: timedelta, count_relays: bool
) -> list[_Session]:
    sessions: list[_Session] = []
    bucket: list[Occurrence] = []
    end: datetime | None = None
    for o in occ:
        if end is not None and o.start - end > gap:
            sessions.append(_summarise(bucket, new_id, count_relays))
            bucket = []
        bucket.append(o)
        end = o.end if end is None or bucket[0] is o else max(end, o.end)
    if bucket:
        sessions.append(_summarise(bucket, new_id, count_relays))
    return sessions


def _summarise(bucket: list[Occurrence], new_id: int, count_relays: bool) -> _Session:
    counted: list[tuple[datetime, datetime]] = []
    for o in bucket:
        at = o.start
        for item in o.rule.programme.items:
            if count_relays or item.kind != ItemKind.RELAY:
                counted.append((at, at + item.duration))
            at += item.duration
    return _Session(
        bucket[0].start,
        _union(counted) / timedelta(minutes=1),
        any(o.rule.id == new_id for o in bucket),
    )


def _union(spans: list[tuple[datetime, datetime]]) -> timedelta:
    """Length of a union of intervals: overlapping airtime counts once."""
    total, end = _ZERO, None
    for a, b in sorted(spans):
        if end is None or a >= end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def _check(
    sessions: list[_Session],
    before: list[_Session],
    quota: Quota,
    locality: str,
    clusters: tuple[str, ...],
    tz: str,
) -> list[QuotaViolation]:
    """``before``: the sessions without the new schedule, so old breaches are not blamed on it."""
    found = []

    def add(rule: QuotaRule, breaches: list[tuple[str, float]], limit: float) -> None:
        if breaches:
            first, value = breaches[0]
            found.append(
                QuotaViolation(locality, rule, first, value, limit, len(breaches), clusters)
            )

    local = zone(tz)
    days = [s.start.astimezone(local).date() for s in sessions]
    days_before = [s.start.astimezone(local).date() for s in before]
    if quota.max_minutes_per_session is not None:
        limit = quota.max_minutes_per_session
        breaches = [
            (s.start.astimezone(local).isoformat(timespec="minutes"), round(s.minutes, 1))
            for s in sessions
            if s.has_new and s.minutes > limit + 1e-9
        ]
        add("minutes_per_session", breaches, limit)
    if quota.max_sessions_per_day is not None:
        limit_n = quota.max_sessions_per_day
        add("sessions_per_day", _per_day(days, days_before, limit_n), limit_n)
    if quota.max_days_per_week is not None:
        limit_n = quota.max_days_per_week
        add("days_per_week", _per_week(days, days_before, limit_n), limit_n)
    return found


def _per_day(days: list[date], before: list[date], limit: int) -> list[tuple[str, float]]:
    total, old = Counter(days), Counter(before)
    return [(d.isoformat(), n) for d, n in sorted(total.items()) if n > limit and n > old[d]]


def _per_week(days: list[date], before: list[date], limit: int) -> list[tuple[str, float]]:
    total, old = _weeks(days), _weeks(before)
    return [
        (f"{y}-W{w:02d}", len(ds))
        for (y, w), ds in sorted(total.items())
        if len(ds) > limit and len(ds) > len(old.get((y, w), ()))
    ]


def _weeks(days: list[date]) -> dict[tuple[int, int], set[date]]:
    weeks: dict[tuple[int, int], set[date]] = defaultdict(set)
    for d in days:
        iso = d.isocalendar()
        weeks[(iso.year, iso.week)].add(d)
    return weeks
