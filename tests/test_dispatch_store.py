"""PlayoutStore for recurring schedules: occurrences, targets, parts, missed occurrences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from devices.protocol import Ack, Event
from scheduler import BridgePower, ItemRef, SilencePart, StreamPart, session_id_for
from station._playout_store import PlayoutStore
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import Sessions
from station.config import Settings
from station.db import (
    Cluster,
    ClusterKind,
    ClusterZone,
    MediaItem,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Schedule,
    ScheduleStatus,
    Village,
    Zone,
    create_engine_for,
    session_factory,
    upgrade_async,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=HCM)  # a Monday, before the 06:00 slot
LIVE = "http://station.example/live.opus"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    factory = session_factory(engine)
    async with factory() as db:
        db.add_all([Village(id="T01", name="Thôn 1"), Zone(id="Z1", name="Chợ")])
        db.add_all(Cluster(id=f"C0{n}", village_id="T01") for n in (1, 2))
        db.add(Cluster(id="C03"))
        db.add(Cluster(id="B01", kind=ClusterKind.BRIDGE))
        db.add(Cluster(id="F01", kind=ClusterKind.FM, bridge_id="B01", zone_code="*12#"))
        db.add(Cluster(id="W01", kind=ClusterKind.WIRED))  # no bridge: unreachable
        db.add(
            MediaItem(
                sha256="a" * 64,
                source_sha256="a" * 64,
                title="Tin",
                duration_ms=60_000,
                size_bytes=1000,
            )
        )
        await db.flush()
        db.add_all(
            [
                ClusterZone(zone_id="Z1", cluster_id="C03"),
                ClusterZone(zone_id="Z1", cluster_id="F01"),
            ]
        )
        await db.commit()
    try:
        yield factory
    finally:
        await engine.dispose()


async def _daily(
    sessions: Sessions,
    targets: dict[str, object],
    *items: ItemInput,
    volume: int | None = 70,
    grace: int | None = 120,
) -> int:
    programme = await add_programme(sessions, "Sáng", list(items))
    assert programme.id is not None
    request = ScheduleRequest(
        programme.id,
        dict(targets),
        make_recurrence("daily", time_of_day=time(6, 0)),
        volume=volume,
        misfire_grace_s=grace,
    )
    result = await create_schedule(sessions, Settings(), request, NOW)
    assert result.schedule.id is not None and result.schedule.status == ScheduleStatus.ACTIVE
    return result.schedule.id


async def test_occurrences_become_sessions_with_all_their_parts(sessions: Sessions) -> None:
    store = PlayoutStore(sessions, live_url=LIVE, priorities={"scheduled": 40})
    schedule_id = await _daily(
        sessions,
        {"villages": ["T01"], "zones": ["Z1"]},
        ItemInput("media", media_id=1),
        ItemInput("silence", duration_s=5),
        ItemInput("relay", url="http://vov.example/vov1", duration_s=120),
        ItemInput("live", duration_s=60),
        ItemInput("jingle", media_id=1),
    )
    day = datetime(2026, 3, 2, 6, 0, tzinfo=HCM)
    due = await store.due_occurrences(NOW - timedelta(days=3), NOW + timedelta(days=2))
    assert [o.occurrence for o in due] == [day, day + timedelta(days=1)]
    assert due[0].misfire_grace == timedelta(seconds=120)
    first = due[0]
    plan = await store.prepare_session(
        schedule_id,
        first.occurrence,
        first.occurrence + timedelta(minutes=1),
        occurrence=first.occurrence,
    )
    assert plan is not None and plan.session_id == session_id_for(schedule_id, day)
    # Villages and zones resolve; an FM set is reached through its bridge.
    assert plan.cluster_ids == ["B01", "C01", "C02", "C03"]
    assert plan.volume == 70 and plan.priority == 40
    # The bridge switches its FM transmitter on, with the zone code of the targeted set.
    assert plan.bridges == {"B01": BridgePower("transmitter", ("*12#",))}
    kinds = [type(p) for p in plan.parts]
    assert kinds == [ItemRef, SilencePart, StreamPart, StreamPart, ItemRef]
    assert plan.parts[3] == StreamPart(LIVE, 60_000)
    # Dispatched: the occurrence is no longer due, the schedule stays active.
    await store.record_dispatch(schedule_id, plan.session_id, {"C03": "link down"})
    due = await store.due_occurrences(NOW, NOW + timedelta(days=2))
    assert [o.occurrence for o in due] == [day + timedelta(days=1)]
    async with sessions() as db:
        row = await db.get(Schedule, schedule_id)
        assert row is not None and row.status == ScheduleStatus.ACTIVE
        records = {r.cluster_id: r for r in (await db.exec(select(PlayRecord))).all()}
    assert records["C03"].status == PlayRecordStatus.FAILED
    # A late start keeps the occurrence's session id; a re-dispatch returns the same session.
    again = await store.prepare_session(
        schedule_id, day + timedelta(seconds=30), day + timedelta(minutes=2), occurrence=day
    )
    assert again is not None and again.session_id == plan.session_id
    assert again.start_at == day and again.cluster_ids == plan.cluster_ids


async def test_no_live_url_makes_live_slots_silent(sessions: Sessions) -> None:
    store = PlayoutStore(sessions)
    schedule_id = await _daily(sessions, {"clusters": ["C01"]}, ItemInput("live", duration_s=60))
    day = datetime(2026, 3, 2, 6, 0, tzinfo=HCM)
    # Nothing but silence: nothing to play.
    assert await store.prepare_session(schedule_id, day, day, occurrence=day) is None


async def test_missed_occurrence_is_recorded_and_never_due_again(sessions: Sessions) -> None:
    store = PlayoutStore(sessions)
    schedule_id = await _daily(sessions, {"zones": ["Z1"]}, ItemInput("media", media_id=1))
    due = await store.due_occurrences(NOW, NOW + timedelta(days=1))
    await store.mark_occurrence_missed(due[0], "station_down")
    async with sessions() as db:
        session = await db.get(PlaySession, due[0].session_id)
        records = (await db.exec(select(PlayRecord))).all()
    assert session is not None and session.status == PlaySessionStatus.FAILED
    assert sorted((r.cluster_id, r.status, r.error_code) for r in records) == [
        ("B01", PlayRecordStatus.FAILED, "station_down"),
        ("C03", PlayRecordStatus.FAILED, "station_down"),
    ]
    assert await store.due_occurrences(NOW, NOW + timedelta(days=1)) == []
    occurrence = due[0].occurrence
    assert (
        await store.prepare_session(schedule_id, occurrence, occurrence, occurrence=occurrence)
        is None
    )  # recorded missed: never plays


async def test_segment_reports_roll_up_into_the_session_record(sessions: Sessions) -> None:
    store = PlayoutStore(sessions)
    schedule_id = await _daily(
        sessions,
        {"clusters": ["C01"]},
        ItemInput("media", media_id=1),
        ItemInput("relay", url="http://vov.example/vov1", duration_s=60),
    )
    day = datetime(2026, 3, 2, 6, 0, tzinfo=HCM)
    plan = await store.prepare_session(schedule_id, day, day, occurrence=day)
    assert plan is not None
    sid, ts = plan.session_id, day.astimezone(UTC)
    await store.on_ack(Ack(cluster_id="C01", cmd_id=f"{sid}~1.C01.stream", ok=True, ts=ts))
    await store.on_event(
        Event(
            cluster_id="C01",
            type="playback_started",
            session_id=sid,
            ts=ts,
            started_at=ts + timedelta(milliseconds=12),
            clock_offset_ms=0,
        )
    )
    await store.on_event(
        Event(
            cluster_id="C01",
            type="playback_finished",
            session_id=sid,
            ts=ts,
            finished_at=ts + timedelta(seconds=60),
            played_ms=60_000,
        )
    )
    # The stream's start is not the session's; its end is.
    await store.on_event(
        Event(
            cluster_id="C01",
            type="playback_started",
            session_id=f"{sid}~1",
            ts=ts,
            started_at=ts + timedelta(seconds=61),
        )
    )
    end = ts + timedelta(seconds=120)
    await store.on_event(
        Event(
            cluster_id="C01",
            type="playback_finished",
            session_id=f"{sid}~1",
            ts=ts,
            finished_at=end,
        )
    )
    async with sessions() as db:
        record = (await db.exec(select(PlayRecord))).one()
    assert record.status == PlayRecordStatus.FINISHED
    assert record.skew_ms == 12 and record.finished_at == end


async def test_a_session_made_twice_at_once_is_one_session(sessions: Sessions) -> None:
    store = PlayoutStore(sessions)
    schedule_id = await _daily(sessions, {"clusters": ["C01"]}, ItemInput("media", media_id=1))
    day = datetime(2026, 3, 2, 6, 0, tzinfo=HCM)
    plans = await asyncio.gather(
        *(store.prepare_session(schedule_id, day, day, occurrence=day) for _ in range(4))
    )
    assert {p.session_id for p in plans if p is not None} == {session_id_for(schedule_id, day)}
    assert all(p is not None for p in plans)
    async with sessions() as db:
        assert len((await db.exec(select(PlayRecord))).all()) == 1
