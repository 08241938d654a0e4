"""Reports pushed upstream on a cadence (``upstream.push``): the latest closed period of each
cadence, and every period missed since the last one queued (at most 12 months back), is queued
once, with a period-based key, through restarts and double fires, and delivered to the
simulated provincial server exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select
from test_upstream_outbox import TOKEN, all_sent, settings_for, wait_for

from simulator.provincial import ProvincialServer
from station import _keys as keys
from station._services import Sessions
from station.app import RunningStation, start_station
from station.config import ReportPushSection, Settings
from station.db import OutboxMessage, create_engine_for, session_factory, upgrade_async
from station.reports._cadence import due_periods, newest_queued, push_due_reports
from station.upstream import enqueue

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
SIX_H = timedelta(hours=6)


def labels(
    now: datetime, *cadences: str, delay: timedelta = SIX_H, after: dict[str, str] | None = None
) -> list[str]:
    return [p.label for p in due_periods(now, HCM, cadences, delay, after)]


def test_due_periods_follow_the_calendar() -> None:
    # 1/6 08:00 local: May and the half-year (to 30/5) have closed more than 6 h ago
    june = datetime(2025, 6, 1, 8, 0, tzinfo=HCM)
    assert labels(june, "daily", "monthly", "half_year", "year") == [
        "2025-05-31",
        "2025-05",
        "2025H1",
        "2024Y",
    ]
    # 1/6 05:00 local is less than 6 h after May closed (the half-year closed a day earlier)
    early = datetime(2025, 6, 1, 5, 0, tzinfo=HCM)
    assert labels(early, "monthly", "half_year") == ["2025-04", "2025H1"]
    assert labels(datetime(2025, 5, 31, 5, 0, tzinfo=HCM), "half_year") == ["2024H1"]
    assert labels(early, "monthly", delay=timedelta(0)) == ["2025-05"]
    # the year closes on 30/11; January is reported in February; one label per period
    december = datetime(2025, 12, 1, 7, 0, tzinfo=HCM)
    assert labels(december, "year", "half_year", "year") == ["2025Y", "2025H1"]
    assert labels(datetime(2026, 2, 1, 23, 0, tzinfo=UTC), "monthly") == ["2026-01"]
    period = due_periods(june, HCM, ["half_year"], SIX_H)[0]
    assert (period.first, period.last, period.due) == (
        date(2024, 12, 1),
        date(2025, 5, 30),
        date(2025, 6, 15),
    )
    with pytest.raises(ValueError, match="unknown cadence"):
        due_periods(june, HCM, ["weekly"], SIX_H)
    with pytest.raises(ValueError, match="timezone-aware"):
        due_periods(datetime(2025, 6, 1), HCM, ["daily"], SIX_H)


def test_due_periods_catch_up_since_the_last_queued() -> None:
    june = datetime(2025, 6, 1, 8, 0, tzinfo=HCM)
    # a station off since it queued January: February .. May, oldest first
    assert labels(june, "monthly", after={"monthly": "2025-01"}) == [
        "2025-02",
        "2025-03",
        "2025-04",
        "2025-05",
    ]
    assert labels(june, "monthly", after={"monthly": "2025-04"}) == ["2025-05"]
    assert labels(june, "monthly", after={"monthly": "2025-05"}) == ["2025-05"]  # queued: skipped
    # at most 12 months back: June 2024 .. May 2025, not the months before
    back = labels(june, "monthly", after={"monthly": "2022-12"})
    assert len(back) == 12 and back[0] == "2024-06" and back[-1] == "2025-05"
    # nothing queued yet (a new station): the latest only, no back-fill
    assert labels(june, "monthly", "daily") == ["2025-05", "2025-05-31"]
    # a clock behind the last queued (set back): the latest only, as before
    assert labels(june, "monthly", after={"monthly": "2026-10"}) == ["2025-05"]
    assert labels(june, "daily", after={"daily": "2025-05-28"}) == [
        "2025-05-29",
        "2025-05-30",
        "2025-05-31",
    ]
    # the half-year and the year: one missed period each still within 12 months
    december = datetime(2025, 12, 2, 8, 0, tzinfo=HCM)
    assert labels(
        december, "half_year", "year", after={"half_year": "2024H1", "year": "2023Y"}
    ) == [
        "2025H1",
        "2025Y",
    ]
    assert labels(june, "half_year", after={"half_year": "2023H1"}) == ["2025H1"]  # 2024H1: >12 mo
    assert (
        labels(datetime(2025, 3, 31, 12, tzinfo=HCM), "monthly", after={"monthly": "2023-01"})[0]
        == "2024-03"
    )  # 31/3 less 12 months is 31/3: March 2024 ended then, it is still in


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def keys_in_order(sessions: Sessions) -> list[str]:
    async with sessions() as db:
        query = select(OutboxMessage.key).order_by(col(OutboxMessage.id))
        return list((await db.exec(query)).all())


async def test_outage_queues_every_missed_period_once(sessions: Sessions) -> None:
    push = ReportPushSection(activity=("monthly", "half_year"), inventory=("half_year",))
    march = datetime(2025, 3, 2, 8, 0, tzinfo=HCM)
    assert await push_due_reports(sessions, push, HCM, march) == [
        "report:activity:2025-02:auto",
        "report:activity:2024H1:auto",
        "report:inventory:2024H1:auto",
    ]  # a new station: the latest closed period of each cadence only
    async with sessions() as db:  # by hand meanwhile: a range (no cadence's) and April
        assert await enqueue(db, "report", "report:activity:2025-01-01..2025-01-31:ab", {})
        assert await enqueue(db, "report", "report:inventory:2025-04:cd", {})
        await db.commit()
    assert await newest_queued(sessions, "activity", ("monthly", "half_year", "daily")) == {
        "monthly": "2025-02",
        "half_year": "2024H1",
    }
    # off from March until 1 June: March, April and May, then the half-year, each once
    june = datetime(2025, 6, 1, 8, 0, tzinfo=HCM)
    first, second = await asyncio.gather(
        push_due_reports(sessions, push, HCM, june), push_due_reports(sessions, push, HCM, june)
    )
    assert sorted(first + second) == [
        "report:activity:2025-03:auto",
        "report:activity:2025-04:auto",
        "report:activity:2025-05:auto",
        "report:activity:2025H1:auto",
        "report:inventory:2025H1:auto",
    ]
    assert await push_due_reports(sessions, push, HCM, june + timedelta(days=1)) == []
    keys_ = await keys_in_order(sessions)
    assert len(keys_) == len(set(keys_)) == 10
    months = [k for k in keys_ if k.startswith("report:activity:2025-0") and k.endswith("auto")]
    assert months == [f"report:activity:2025-0{m}:auto" for m in (2, 3, 4, 5)]  # oldest first
    # a station back after more than a year: the last 12 months, not the ones before
    later = datetime(2026, 11, 1, 8, 0, tzinfo=HCM)
    queued = await push_due_reports(
        sessions, ReportPushSection(activity=("monthly",), inventory=()), HCM, later
    )
    assert queued[0] == "report:activity:2025-11:auto" and len(queued) == 12
    assert queued[-1] == "report:activity:2026-10:auto"


def cadence_settings(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, base_url: str
) -> Settings:
    return settings_for(
        tmp_path,
        database_url,
        mqtt_url,
        station_id,
        base_url,
        push={
            "activity": ["monthly", "half_year", "year"],
            "inventory": ["year"],
            "check_interval_s": 0.05,
        },
    )


@pytest.fixture
async def server() -> AsyncIterator[ProvincialServer]:
    srv = ProvincialServer(token=TOKEN)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def reports(server: ProvincialServer) -> list[str]:
    return [k for k in server.order if k.startswith("report:")]


async def outbox_keys(station: RunningStation) -> list[str]:
    async with station.app[keys.SESSIONS]() as db:
        return list((await db.exec(select(OutboxMessage.key))).all())


async def test_cadence_pushes_each_period_once_through_restarts(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = cadence_settings(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    expected_now = [
        f"report:{kind}:{p.label}:auto"
        for kind, cadences in (
            ("activity", ("monthly", "half_year", "year")),
            ("inventory", ("year",)),
        )
        for p in due_periods(datetime.now(UTC), HCM, cadences, SIX_H)
    ]
    station = await start_station(settings)
    try:
        # the job runs at start and every 50 ms: today's due periods arrive once
        async def arrived() -> bool:
            return set(expected_now) <= set(reports(server))

        await wait_for(arrived)
        upstream = station.app[keys.UPSTREAM]
        # a fake clock: 1/6/2025 08:00 local -> May, the half-year and the 2024 year are due
        june = datetime(2025, 6, 1, 8, 0, tzinfo=HCM)
        async with station.app[keys.SESSIONS]() as db:  # May 2025 already pushed by hand
            assert await enqueue(db, "report", "report:activity:2025-05:0123abcd", {"n": 1})
            await db.commit()
        both = await asyncio.gather(upstream.push_reports(june), upstream.push_reports(june))
        queued = sorted(both[0] + both[1])
        assert queued == [
            "report:activity:2024Y:auto",
            "report:activity:2025H1:auto",
            "report:inventory:2024Y:auto",
        ]  # a double fire queues each once; the hand-pushed month is not queued again
        assert await upstream.push_reports(june) == []
        await wait_for(lambda: all_sent(station))
    finally:
        await station.stop()
    half_year = server.received["report:activity:2025H1:auto"]["data"]
    assert half_year["kind"] == "activity" and half_year["period"]["to"] == "2025-05-30"
    assert half_year["summary"]["plays_requested"] == 0
    delivered = reports(server)

    # a restart: the job runs again at start and finds every period queued already
    station = await start_station(settings)
    try:
        rows_before = await outbox_keys(station)
        await asyncio.sleep(0.3)  # several runs of the 50 ms job
        assert await outbox_keys(station) == rows_before
        assert (
            await station.app[keys.UPSTREAM].push_reports(datetime(2025, 6, 1, 9, tzinfo=HCM)) == []
        )
        await wait_for(lambda: all_sent(station))
    finally:
        await station.stop()
    assert reports(server) == delivered and server.duplicates == 0
    assert len(delivered) == len(set(delivered)) == len(set(expected_now)) + 4
