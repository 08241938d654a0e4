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
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Schedule,
    ScheduleStatus,
    Village,
    Zone,
)
from tests.db_support import media_row, seeded

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=HCM)  # a Monday, before the 06:00 slot
LIVE = "http://station.example/live.opus"
DAY = datetime(2026, 3, 2, 6, 0, tzinfo=HCM)  # the first 06:00 of a _daily schedule


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    rows = [
        Village(id="T01", name="Thôn 1"),
        Zone(id="Z1", name="Chợ"),
        *(Cluster(id=f"C0{n}", village_id="T01") for n in (1, 2)),
        Cluster(id="C03"),
        Cluster(id="B01", kind=ClusterKind.BRIDGE),
        Cluster(id="F01", kind=ClusterKind.FM, bridge_id="B01", zone_code="*12#"),
        Cluster(id="W01", kind=ClusterKind.WIRED),  # no bridge: unreachable
        media_row("a", 60_000, 1000),
    ]
    in_zone = [ClusterZone(zone_id="Z1", cluster_id=c) for c in ("C03", "F01")]
    async with seeded(database_url, rows, in_zone) as factory:
        yield factory


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


async def _prepared(store: PlayoutStore, schedule_id: int) -> tuple[str, datetime]:
    """The session of ``schedule_id``'s occurrence on DAY, prepared: its id and start (UTC)."""
    plan = await store.prepare_session(schedule_id, DAY, DAY, occurrence=DAY)
    assert plan is not None
    return plan.session_id, DAY.astimezone(UTC)


def _started(sid: str, at: datetime, **fields: object) -> Event:
    """C01's report that ``sid`` started at ``at`` (sent then unless ``ts`` says otherwise)."""
    return Event.model_validate(
        {
            "cluster_id": "C01",
            "type": "playback_started",
            "session_id": sid,
            "ts": at,
            "started_at": at,
            **fields,
        }
    )


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
    day = DAY
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
    day = DAY
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
    sid, ts = await _prepared(store, schedule_id)
    await store.on_ack(Ack(cluster_id="C01", cmd_id=f"{sid}~1.C01.stream", ok=True, ts=ts))
    await store.on_event(_started(sid, ts + timedelta(milliseconds=12), ts=ts, clock_offset_ms=0))
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
    await store.on_event(_started(f"{sid}~1", ts + timedelta(seconds=61), ts=ts))
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
    day = DAY
    plans = await asyncio.gather(
        *(store.prepare_session(schedule_id, day, day, occurrence=day) for _ in range(4))
    )
    assert {p.session_id for p in plans if p is not None} == {session_id_for(schedule_id, day)}
    assert all(p is not None for p in plans)
    async with sessions() as db:
        assert len((await db.exec(select(PlayRecord))).all()) == 1


def _end(sid: str, kind: str, end: datetime, played_ms: int, size: int, **fields: object) -> Event:
    return Event.model_validate(
        {
            "cluster_id": "C01",
            "type": kind,
            "session_id": sid,
            "ts": end,
            "finished_at": end,
            "played_ms": played_ms,
            "bytes_downloaded": size,
            **fields,
        }
    )


def _preempted(
    sid: str, end: datetime, played_ms: int, size: int, *, by: str, **fields: object
) -> Event:
    """C01's report that ``sid`` was cut at ``end`` by the session ``by``."""
    return _end(
        sid, "playback_interrupted", end, played_ms, size,
        detail="preempted", interrupted_by=by, **fields,
    )  # fmt: skip


async def _record(sessions: Sessions) -> PlayRecord:
    async with sessions() as db:
        return (await db.exec(select(PlayRecord))).one()


async def test_played_time_and_bytes_cover_every_segment_of_a_session(
    sessions: Sessions,
) -> None:
    """Media, a relay, media again: the record counts all three, each once, and an
    interrupted last segment up to its interruption."""
    store = PlayoutStore(sessions)
    schedule_id = await _daily(
        sessions,
        {"clusters": ["C01"]},
        ItemInput("media", media_id=1),
        ItemInput("relay", url="http://vov.example/vov1", duration_s=60),
        ItemInput("media", media_id=1),
    )
    sid, ts = await _prepared(store, schedule_id)
    second = timedelta(seconds=1)
    await store.on_event(_started(sid, ts, bytes_downloaded=1000, clock_offset_ms=0))
    first_end = _end(sid, "playback_finished", ts + 60 * second, 60_000, 1000)
    await store.on_event(first_end)
    relay_end = _end(f"{sid}~1", "playback_finished", ts + 120 * second, 60_000, 480_000)
    await store.on_event(relay_end)
    # Redelivered (QoS 1, a queue replayed after a reconnect): counted once.
    await store.on_event(relay_end)
    await store.on_event(first_end)
    await store.on_event(_started(f"{sid}~2", ts + 120 * second))
    last = _preempted(f"{sid}~2", ts + 145 * second, 25_000, 0, by="em-1")
    await store.on_event(last)
    await store.on_event(last)
    record = await _record(sessions)
    assert record.status == PlayRecordStatus.INTERRUPTED and record.interrupted_by == "em-1"
    assert record.played_ms == 60_000 + 60_000 + 25_000
    assert record.bytes_downloaded == 1000 + 480_000
    assert record.started_at == ts and record.finished_at == ts + 145 * second


async def test_a_resumed_session_counts_before_and_after_its_preemption(
    sessions: Sessions,
) -> None:
    """Cut by an emergency 10 s in, resumed (``~r<n>``) for the 50 s left, cut again 20 s into
    a second resumption: played is everything heard, and the next resumption's offset."""
    store = PlayoutStore(sessions)
    schedule_id = await _daily(sessions, {"clusters": ["C01"]}, ItemInput("media", media_id=1))
    (sid, ts), second = await _prepared(store, schedule_id), timedelta(seconds=1)
    cut = _preempted(sid, ts + 10 * second, 10_000, 1000, by="em-1", started_at=ts)
    await store.on_event(cut)
    record = await _record(sessions)
    assert record.played_ms == 10_000 and record.interrupted_by == "em-1"
    again = _preempted(f"{sid}~r7", ts + 50 * second, 20_000, 0, by="em-2")
    await store.on_event(again)
    await store.on_event(cut)  # a late duplicate of the first cut changes nothing
    record = await _record(sessions)
    assert record.status == PlayRecordStatus.INTERRUPTED and record.interrupted_by == "em-2"
    assert record.played_ms == 30_000  # where a resumption must start
    await store.on_event(_end(f"{sid}~r9", "playback_finished", ts + 90 * second, 30_000, 0))
    record = await _record(sessions)
    assert record.status == PlayRecordStatus.FINISHED
    assert record.played_ms == 60_000 and record.bytes_downloaded == 1000
    assert record.started_at == ts and record.skew_ms == 0


async def test_an_end_after_the_station_marked_the_record_counts_once(
    sessions: Sessions,
) -> None:
    """The station recorded the session interrupted itself (past its window) before the
    cluster's own report came in: the report replaces what the start said, it is not added;
    a later segment that never started (busy) adds nothing but says how the session ended."""
    store = PlayoutStore(sessions)
    schedule_id = await _daily(
        sessions,
        {"clusters": ["C01"]},
        ItemInput("media", media_id=1),
        ItemInput("relay", url="http://vov.example/vov1", duration_s=60),
    )
    (sid, ts), second = await _prepared(store, schedule_id), timedelta(seconds=1)
    await store.on_event(_started(sid, ts, bytes_downloaded=1000, clock_offset_ms=0))
    async with sessions() as db:
        record = (await db.exec(select(PlayRecord))).one()
        record.status, record.interrupted_by = PlayRecordStatus.INTERRUPTED, "em-1"
        db.add(record)
        await db.commit()
    await store.on_event(
        _end(sid, "playback_interrupted", ts + 30 * second, 30_000, 1000, interrupted_by="em-1")
    )
    record = await _record(sessions)
    assert (record.played_ms, record.bytes_downloaded) == (30_000, 1000)
    busy = Event(
        cluster_id="C01",
        type="playback_interrupted",
        session_id=f"{sid}~1",
        ts=ts + 60 * second,
        played_ms=0,
        code="busy",
    )
    await store.on_event(busy)
    await store.on_event(busy)
    record = await _record(sessions)
    assert record.status == PlayRecordStatus.INTERRUPTED
    assert (record.played_ms, record.bytes_downloaded) == (30_000, 1000)
    assert record.finished_at == ts + 30 * second


async def test_a_play_that_failed_to_send_but_played_is_not_left_send_failed(
    sessions: Sessions,
) -> None:
    """The play command failed while the broker was down (recorded ``send_failed``), but the
    cluster played the session from its schedule list: its started/finished events win."""
    store = PlayoutStore(sessions)
    schedule_id = await _daily(sessions, {"clusters": ["C01"]}, ItemInput("media", media_id=1))
    sid, ts = await _prepared(store, schedule_id)
    await store.record_dispatch(schedule_id, sid, {"C01": "broker down"})
    record = await _record(sessions)
    assert (record.status, record.error_code) == (PlayRecordStatus.FAILED, "send_failed")
    started = _started(sid, ts + timedelta(milliseconds=5), ts=ts, clock_offset_ms=0)
    await store.on_event(started)
    record = await _record(sessions)
    assert (record.status, record.error_code) == (PlayRecordStatus.STARTED, None)
    await store.on_event(_end(sid, "playback_finished", ts + timedelta(seconds=60), 60_000, 1000))
    record = await _record(sessions)
    assert (record.status, record.error_code) == (PlayRecordStatus.FINISHED, None)
    assert record.played_ms == 60_000
    # A cluster's own error code on its event still counts.
    other = await _daily(sessions, {"clusters": ["C02"]}, ItemInput("media", media_id=1))
    plan = await store.prepare_session(other, DAY, DAY, occurrence=DAY)
    assert plan is not None
    await store.record_dispatch(other, plan.session_id, {"C02": "broker down"})
    busy = _end(plan.session_id, "playback_interrupted", ts, 0, 0, cluster_id="C02", code="busy")
    await store.on_event(busy)
    async with sessions() as db:
        rows = (
            await db.exec(select(PlayRecord).where(PlayRecord.session_id == plan.session_id))
        ).all()
    assert [(r.status, r.error_code) for r in rows] == [(PlayRecordStatus.INTERRUPTED, "busy")]
