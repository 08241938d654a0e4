"""A recurring schedule on air: the simulator plays its occurrence (media then a relay)."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

from sqlmodel import select

from simulator import SimulatedFleet
from station import _keys as keys
from station._services import register_clusters
from station.app import start_station
from station.db import PlayRecord, PlayRecordStatus, PlaySession, Schedule, ScheduleStatus
from station.demo import demo_settings
from tests.playout_support import daily_media_then_relay, outcomes, records_when


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
        schedule, start = await daily_media_then_relay(
            station.app, tmp_path, "Sáng", "http://vov.example/vov1", 1
        )
        assert schedule.status == ScheduleStatus.ACTIVE
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids) as fleet:
            await station.app[keys.DISPATCHER].reconcile()
            records = await records_when(
                sessions, lambda rs: len(rs) == len(ids) and all(_ended(r) for r in rs), 30
            )
            seen = outcomes(fleet)
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
