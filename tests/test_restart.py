"""Schedules live in the database: a station restarted before the start time still plays them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from simulator import SimulatedFleet
from station import _keys as keys
from station._services import register_clusters, schedule_once
from station.app import start_station
from station.db import PlayRecord, PlayRecordStatus, Schedule, ScheduleStatus
from station.demo import demo_settings
from tests.playout_support import audio_programme


async def test_schedule_survives_a_station_restart(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    ids = ["R1", "R2", "R3"]
    station = await start_station(settings)
    sessions = station.app[keys.SESSIONS]
    await register_clusters(sessions, [(cid, cid) for cid in ids])
    programme_id = await audio_programme(station.app, tmp_path, 2.0, "p", "t")
    start_at = datetime.now(UTC) + timedelta(seconds=settings.scheduler.dispatch_lead_s + 4)
    schedule = await schedule_once(sessions, programme_id, start_at, {"all": True})
    await station.app[keys.DISPATCHER].reconcile()
    await station.stop()  # down before the play command was due

    station = await start_station(settings)
    try:
        sessions = station.app[keys.SESSIONS]
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids, speed=4.0):
            async with asyncio.timeout(30):
                while True:
                    async with sessions() as db:
                        records = (await db.exec(select(PlayRecord))).all()
                    if sum(r.status == PlayRecordStatus.FINISHED for r in records) == len(ids):
                        break
                    await asyncio.sleep(0.2)
        async with sessions() as db:
            row = await db.get(Schedule, schedule.id)
        assert row is not None and row.status == ScheduleStatus.DISPATCHED
        assert {r.cluster_id for r in records} == set(ids)
        assert all(r.skew_ms is not None and abs(r.skew_ms) < 250 for r in records)
    finally:
        await station.stop()
