"""Pure scheduling logic: no I/O, `now` passed in, aware datetimes only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler import ScheduleSpec, plan, play_command_id, session_id_for, skew_ms

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=HCM)
LEAD = timedelta(seconds=5)
GRACE = timedelta(minutes=5)


def _plan(*specs: ScheduleSpec, now: datetime = NOW):  # type: ignore[no-untyped-def]
    return plan(list(specs), now, lead=LEAD, misfire_grace=GRACE)


def test_future_schedule_fires_lead_before_start() -> None:
    start = NOW + timedelta(minutes=30)
    result = _plan(ScheduleSpec(1, start))
    assert [(f.schedule_id, f.fire_at, f.start_at) for f in result.later] == [
        (1, start - LEAD, start)
    ]
    assert result.now == [] and result.missed == []


def test_inside_lead_fires_now_for_the_original_start() -> None:
    start = NOW + timedelta(seconds=2)
    result = _plan(ScheduleSpec(1, start))
    assert len(result.now) == 1
    assert result.now[0].start_at == start and not result.now[0].late


def test_station_down_at_start_starts_late_within_grace() -> None:
    start = NOW - timedelta(minutes=2)
    firing = _plan(ScheduleSpec(1, start)).now[0]
    assert firing.late
    assert firing.start_at == NOW + LEAD  # a fresh synchronised start


def test_beyond_grace_is_missed_never_played() -> None:
    result = _plan(ScheduleSpec(1, NOW - GRACE - timedelta(seconds=1)))
    assert result.missed == [1] and result.now == [] and result.later == []


def test_only_pending_schedules_are_planned() -> None:
    start = NOW + timedelta(minutes=1)
    result = _plan(ScheduleSpec(1, start, "dispatched"), ScheduleSpec(2, start, "cancelled"))
    assert result.later == [] and result.now == []


def test_naive_datetimes_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ScheduleSpec(1, datetime(2026, 3, 2, 5, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        plan([], datetime(2026, 3, 2, 5, 0), lead=LEAD, misfire_grace=GRACE)


def test_time_zones_compare_as_instants() -> None:
    start_utc = (NOW + timedelta(minutes=10)).astimezone(UTC)
    result = _plan(ScheduleSpec(1, start_utc))
    assert result.later[0].fire_at == NOW + timedelta(minutes=10) - LEAD


def test_ids_are_deterministic_so_redispatch_is_idempotent() -> None:
    start = NOW + timedelta(minutes=10)
    assert session_id_for(7, start) == session_id_for(7, start.astimezone(UTC))
    assert play_command_id(session_id_for(7, start), "C01").endswith(".C01.play")


@pytest.mark.parametrize(
    ("offset_ms", "reported_delay_ms", "expected"),
    [(0, 3, 3), (0, -4, -4), (3000, 3002, 2), (-1500, -1490, 10)],
)
def test_skew_corrects_the_clusters_clock_offset(
    offset_ms: int, reported_delay_ms: int, expected: int
) -> None:
    start = NOW
    started = start + timedelta(milliseconds=reported_delay_ms)
    assert skew_ms(start, started, offset_ms) == expected
