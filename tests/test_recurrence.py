"""Recurrence: pure expansion of schedule rules into occurrences, DST-safe, in local time."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import (
    ItemKind,
    ProgrammeItemSpec,
    ProgrammeSpec,
    Recurrence,
    ScheduleRule,
    expand,
    local_at,
    occurrences,
    parse_weekdays,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NY = ZoneInfo("America/New_York")
TEN_MIN = ProgrammeSpec(
    1, "Bản tin", (ProgrammeItemSpec(ItemKind.MEDIA, timedelta(minutes=10), 1),)
)


def _rule(recurrence: Recurrence, rule_id: int = 1) -> ScheduleRule:
    return ScheduleRule(rule_id, TEN_MIN, recurrence, frozenset({"C01"}))


def _local(starts: list[datetime], tz: ZoneInfo = HCM) -> list[str]:
    return [s.astimezone(tz).strftime("%a %Y-%m-%d %H:%M") for s in starts]


def test_daily_in_station_time_zone() -> None:
    rule = _rule(Recurrence("daily", time_of_day=time(5, 30)))
    window = datetime(2026, 3, 2, tzinfo=HCM), datetime(2026, 3, 5, tzinfo=HCM)
    found = occurrences(rule, *window)
    assert _local([o.start for o in found]) == [
        "Mon 2026-03-02 05:30",
        "Tue 2026-03-03 05:30",
        "Wed 2026-03-04 05:30",
    ]
    assert found[0].start.tzinfo is UTC  # exact arithmetic; shown in local time
    assert found[0].end - found[0].start == timedelta(minutes=10)


def test_window_given_in_utc_finds_local_evening_of_previous_utc_day() -> None:
    # 06:00 local on 3 March is 23:00 UTC on 2 March.
    rule = _rule(Recurrence("daily", time_of_day=time(6, 0)))
    found = occurrences(
        rule, datetime(2026, 3, 2, 22, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    )
    assert _local([o.start for o in found]) == ["Tue 2026-03-03 06:00"]


def test_weekdays_validity_and_exception_dates() -> None:
    rule = _rule(
        Recurrence(
            "weekly",
            time_of_day=time(17, 0),
            weekdays=parse_weekdays("mon,wed,fri"),
            valid_from=date(2026, 3, 4),
            valid_to=date(2026, 3, 16),
            exceptions=frozenset({date(2026, 3, 9)}),  # a holiday
        )
    )
    found = occurrences(rule, datetime(2026, 3, 1, tzinfo=HCM), datetime(2026, 4, 1, tzinfo=HCM))
    assert _local([o.start for o in found]) == [
        "Wed 2026-03-04 17:00",
        "Fri 2026-03-06 17:00",
        "Wed 2026-03-11 17:00",
        "Fri 2026-03-13 17:00",
        "Mon 2026-03-16 17:00",
    ]


def test_monthly_skips_months_without_the_day() -> None:
    rule = _rule(Recurrence("monthly", time_of_day=time(7, 0), day_of_month=31))
    found = occurrences(rule, datetime(2026, 1, 1, tzinfo=HCM), datetime(2026, 6, 1, tzinfo=HCM))
    assert [o.start.date() for o in found] == [
        date(2026, 1, 31),
        date(2026, 3, 31),
        date(2026, 5, 31),
    ]


def test_once_inside_and_outside_the_window() -> None:
    at = datetime(2026, 3, 2, 6, 0, tzinfo=HCM)
    rule = _rule(Recurrence("once", at=at))
    assert [o.start for o in occurrences(rule, at, at + timedelta(hours=1))] == [at]
    assert occurrences(rule, at + timedelta(seconds=1), at + timedelta(hours=1)) == []


def test_dst_gap_and_overlap_play_exactly_once() -> None:
    # New York: clocks jump 02:00 -> 03:00 on 8 March 2026 and fall back on 1 November 2026.
    gap = local_at(date(2026, 3, 8), time(2, 30), NY)
    assert gap.astimezone(NY).strftime("%H:%M") == "03:30"
    rule = _rule(Recurrence("daily", time_of_day=time(1, 30), timezone="America/New_York"))
    nov = occurrences(rule, datetime(2026, 10, 31, tzinfo=NY), datetime(2026, 11, 3, tzinfo=NY))
    assert len(nov) == 3  # 1 November 01:30 happens twice on the wall clock; aired once
    gaps = [b.start - a.start for a, b in itertools.pairwise(nov)]
    assert gaps == [timedelta(hours=24), timedelta(hours=25)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "once", "at": datetime(2026, 3, 2, 6)}, "timezone-aware"),
        ({"kind": "daily"}, "time of day"),
        ({"kind": "weekly", "time_of_day": time(6)}, "at least one weekday"),
        ({"kind": "monthly", "time_of_day": time(6), "day_of_month": 32}, "day of month"),
        ({"kind": "daily", "time_of_day": time(6), "timezone": "Mars/Olympus"}, "time zone"),
        (
            {
                "kind": "daily",
                "time_of_day": time(6),
                "valid_from": date(2026, 3, 2),
                "valid_to": date(2026, 3, 1),
            },
            "before valid from",
        ),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recurrence(**kwargs)  # type: ignore[arg-type]


def test_parse_weekdays() -> None:
    assert parse_weekdays("mon-fri") == frozenset(range(5))
    assert parse_weekdays("Sat, sun") == frozenset({5, 6})
    with pytest.raises(ValueError, match="weekday"):
        parse_weekdays("moon")
    with pytest.raises(ValueError, match="forward"):
        parse_weekdays("fri-mon")


@settings(max_examples=60, deadline=None, database=None)
@given(
    days=st.frozensets(st.integers(0, 6), min_size=1),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    offset_h=st.integers(0, 24 * 14),
    span_h=st.integers(1, 24 * 10),
    tz=st.sampled_from(["Asia/Ho_Chi_Minh", "America/New_York", "Europe/Berlin", "UTC"]),
)
def test_weekly_matches_brute_force_and_splits_cleanly(
    days: frozenset[int], hour: int, minute: int, offset_h: int, span_h: int, tz: str
) -> None:
    """Every occurrence is on a chosen weekday at the wall time (or just after a DST jump),
    none is missed, and splitting the window changes nothing."""
    zone = ZoneInfo(tz)
    rule = _rule(Recurrence("weekly", time_of_day=time(hour, minute), weekdays=days, timezone=tz))
    start = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=offset_h)
    end = start + timedelta(hours=span_h)
    found = [o.start for o in occurrences(rule, start, end)]
    expected = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        at = local_at(day, time(hour, minute), zone).astimezone(UTC)
        if day.weekday() in days and start <= at < end:
            expected.append(at)
        day += timedelta(days=1)
    assert found == expected
    middle = start + (end - start) / 2
    halves = occurrences(rule, start, middle) + occurrences(rule, middle, end)
    assert [o.start for o in halves] == found


def test_expand_orders_many_schedules() -> None:
    rules = [_rule(Recurrence("daily", time_of_day=time(6 - i, 0)), rule_id=i) for i in range(3)]
    found = expand(rules, datetime(2026, 3, 2, tzinfo=HCM), datetime(2026, 3, 3, tzinfo=HCM))
    assert [o.rule.id for o in found] == [2, 1, 0]
    assert found[0].session_id == f"s2-{int(found[0].start.timestamp())}"
