"""A recurring schedule on air: the simulator plays its occurrence (media then a relay)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import select

from simulator import SimulatedFleet
from station import _keys as keys
from station._programmes import ItemInput, add_programme
from station._schedules import ScheduleRequest, create_schedule, make_recurrence
from station._services import add_media, register_clusters
from station.app import start_station
from station.db import PlayRecord, PlayRecordStatus, PlaySession, Schedule, ScheduleStatus
from station.demo import demo_settings
from station.media import synthesize_programme

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def _ended(record: PlayRecord) -> bool:
    """Finished, with the end of the relay (the session's last segment) recorded."""
    return (
        record.status == PlayRecordStatus.FINISHED
        and record.finished_at is not None
        and record.started_at is not None
        and record.finished_at - record.started_at >= timedelta(seconds=1.8)
    )


async def test_daily_schedule_occurrence_plays_on_the_fleet(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    ids = ["D1", "D2"]
    station = await start_station(settings)
    try:
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in ids])
        source = tmp_path / "in.wav"
        await synthesize_programme(source, 1.0)
        item, _ = await add_media(
            sessions,
            station.app[keys.MEDIA_STORE],
            station.app[keys.MEDIA_WORKER],
            settings,
            source,
            "t",
        )
        assert item.id is not None
        programme = await add_programme(
            sessions,
            "Sáng",
            [
                ItemInput("media", media_id=item.id),
                ItemInput("relay", url="http://vov.example/vov1", duration_s=1),
            ],
        )
        assert programme.id is not None
        now = datetime.now(HCM)
        start = (now + timedelta(seconds=settings.scheduler.dispatch_lead_s + 3)).replace(
            microsecond=0
        ) + timedelta(seconds=1)
        request = ScheduleRequest(
            programme.id,
            {"all": True},
            make_recurrence("daily", time_of_day=start.timetz().replace(tzinfo=None)),
            volume=65,
        )
        schedule = (await create_schedule(sessions, settings, request, now)).schedule
        assert schedule.status == ScheduleStatus.ACTIVE
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids) as fleet:
            await station.app[keys.DISPATCHER].reconcile()
            async with asyncio.timeout(30):
                while True:
                    async with sessions() as db:
                        records = (await db.exec(select(PlayRecord))).all()
                    if len(records) == len(ids) and all(_ended(r) for r in records):
                        break
                    await asyncio.sleep(0.2)
            seen = {
                cid: [(r.session_id, r.outcome) for r in rs] for cid, rs in fleet.records().items()
            }
        async with sessions() as db:
            session = (await db.exec(select(PlaySession))).one()
            row = await db.get(Schedule, schedule.id)
        assert session.start_at == start.astimezone(UTC)
        assert row is not None and row.status == ScheduleStatus.ACTIVE  # tomorrow's still due
        for record in records:
            assert record.skew_ms is not None and abs(record.skew_ms) < 250
        sid = session.id
        assert seen == {cid: [(sid, "finished"), (f"{sid}~1", "finished")] for cid in ids}
    finally:
        await station.stop()
