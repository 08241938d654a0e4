"""Emergency broadcasts on the simulator: preempts, volume override, bridges, stop, CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from sqlmodel import select

from simulator import SimulatedFleet
from station import _keys as keys
from station._emergency import EmergencyRequest, start_emergency, stop_emergency
from station._services import (
    Sessions,
    StationError,
    register_clusters,
)
from station.app import RunningStation, start_station
from station.cli import main
from station.db import PlayRecord, PlayRecordStatus, PlaySession
from station.db.models_upstream import UpstreamBulletin
from station.demo import demo_settings
from tests.playout_support import make_bridges, news_once, outcomes, synthesized_media

ICT = ["E1", "E2"]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _station(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> tuple[RunningStation, int]:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    settings = settings.model_copy(
        update={
            "playout": settings.playout.model_copy(
                update={"bridge_warmup_s": 0.3, "emergency_volume": 95}
            )
        }
    )
    station = await start_station(settings)
    sessions = station.app[keys.SESSIONS]
    await register_clusters(sessions, [(cid, cid) for cid in [*ICT, "BR1", "FM1"]])
    station.app[keys.GATEWAY].remember([*ICT, "BR1"])  # accept their messages from now on
    await make_bridges(sessions, {"BR1": ("FM1", "*07#")})
    return station, await synthesized_media(station.app, tmp_path, 1.0, "Báo bão")


async def schedule_programme_soon(app: web.Application, tmp_path: Path, seconds: float) -> None:
    """A programme of ``seconds`` of audio on the ICT clusters, starting right after the
    dispatch lead: what an emergency then cuts into."""
    lead_s = app[keys.SETTINGS].scheduler.dispatch_lead_s
    await news_once(app, tmp_path, seconds, lead_s + 1, {"clusters": ICT})


async def on_air(app: web.Application, fleet: SimulatedFleet) -> str:
    """Dispatched: the session of the programme scheduled soon, once E1 plays it."""
    await app[keys.DISPATCHER].reconcile()
    await until(lambda: fleet.clusters["E1"].playing is not None, timeout=15)
    scheduled = fleet.clusters["E1"].playing
    assert scheduled is not None
    return scheduled


async def _records(sessions: Sessions, session_id: str) -> dict[str, PlayRecord]:
    async with sessions() as db:
        rows = await db.exec(select(PlayRecord).where(PlayRecord.session_id == session_id))
        return {r.cluster_id: r for r in rows}


async def finished(sessions: Sessions, session_id: str, timeout: float) -> dict[str, PlayRecord]:
    """The records of ``session_id`` by cluster, once every one is finished."""
    async with asyncio.timeout(timeout):
        while True:
            records = await _records(sessions, session_id)
            if all(r.status == PlayRecordStatus.FINISHED for r in records.values()):
                return records
            await asyncio.sleep(0.1)


async def test_emergency_airs_at_once_everywhere_with_bridges_powered(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    station, media_id = await _station(tmp_path, mqtt_url, database_url, station_id)
    app = station.app
    sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]
    try:
        async with SimulatedFleet(
            station.runtime.mqtt_url, station_id, [*ICT, "BR1"], outputs=("transmitter",)
        ) as fleet:
            before = datetime.now(UTC)
            session = await start_emergency(
                sessions,
                settings,
                EmergencyRequest({"all": True}, media_id=media_id, repeat=2),
                "operator:lan",
            )
            app[keys.DISPATCHER].poke()
            bridge = fleet.clusters["BR1"]
            async with asyncio.timeout(20):
                records = await finished(sessions, session.id, 20)
                # switched off after the last item
                await until(lambda: not bridge.power.get("transmitter", (True, []))[0])
        async with sessions() as db:
            row = await db.get(PlaySession, session.id)
        assert row is not None and row.triggered_by == "operator:lan"
        assert row.kind == "emergency" and row.volume == 95 and row.priority == 100
        assert sorted(records) == ["BR1", *ICT]  # the FM set is reached through its bridge
        # Bridged: the transmitter warms up first (0.3 s), everyone starts together after it
        # (how soon after the request is bench/emergency.py's figure, not a test's).
        assert row.start_at - before >= timedelta(seconds=0.5 + 0.3)
        for record in records.values():
            assert record.skew_ms is not None and abs(record.skew_ms) < 250
            assert record.played_ms is not None and record.played_ms >= 1800  # twice
        assert bridge.power["transmitter"] == (False, ["*07#"])
    finally:
        await station.stop()


async def test_stop_and_the_cli_and_upstream_paths(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    station, media_id = await _station(tmp_path, mqtt_url, database_url, station_id)
    app = station.app
    sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]
    config = tmp_path / "station.yaml"
    minimal = {"station": {"id": station_id}, "database": {"url": database_url}}
    config.write_text(yaml.safe_dump(minimal), encoding="utf-8")
    try:
        with pytest.raises(StationError, match="one of"):
            await start_emergency(sessions, settings, EmergencyRequest({"all": True}), "x")
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ICT) as fleet:
            # Started from another process (the CLI): the station's poll airs it. --by names
            # an account that may start emergencies (station/cli/_playout.py).
            from station.api import create_user
            from station.db import Role

            await create_user(sessions, "chairman", Role.APPROVER, None)
            code = await asyncio.to_thread(
                main,
                [
                    "emergency",
                    "start",
                    "-c",
                    str(config),
                    "--clusters",
                    "E1",
                    "--relay",
                    "http://vov.example/vov1",
                    "--duration",
                    "30",
                    "--by",
                    "chairman",
                ],
            )
            assert code == 0
            async with sessions() as db:
                emergency = (await db.exec(select(PlaySession))).one()
            assert emergency.triggered_by == "chairman"
            await until(lambda: fleet.clusters["E1"].playing is not None)
            assert await stop_emergency(sessions, "chairman") == [emergency.id]
            await until(lambda: fleet.clusters["E1"].playing is None)
            async with sessions() as db:
                row = await db.get(PlaySession, emergency.id)
            assert row is not None and row.stopped_by == "chairman"
            # An upstream emergency bulletin airs through the station's trigger.
            bulletin = UpstreamBulletin(
                upstream_id="UP-1",
                bulletin_class="emergency",
                status="received",
                title="Lũ",
                media_id=media_id,
                villages=[],
                issuer="huyện",
                received_via="pull",
            )
            await app[keys.EMERGENCY_TRIGGER](bulletin)
            async with asyncio.timeout(10):
                while True:
                    async with sessions() as db:
                        found = (
                            await db.exec(
                                select(PlaySession).where(
                                    PlaySession.triggered_by == "upstream:huyện"
                                )
                            )
                        ).first()
                    if found is not None and found.dispatched_at is not None:
                        break
                    await asyncio.sleep(0.05)
    finally:
        await station.stop()


async def test_emergency_preempts_a_programme_which_resumes_at_its_offset(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    station, _ = await _station(tmp_path, mqtt_url, database_url, station_id)
    app = station.app
    sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]
    try:
        await schedule_programme_soon(app, tmp_path, 3.0)
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ICT) as fleet:
            scheduled = await on_air(app, fleet)
            await asyncio.sleep(0.8)
            request = EmergencyRequest(
                {"all": True}, relay_url="http://vov.example/vov1", duration_s=1.0
            )
            emergency = await start_emergency(sessions, settings, request, "chairman")
            app[keys.DISPATCHER].poke()

            async def resumed_and_done() -> bool:
                records = await _records(sessions, scheduled)
                return all(r.status == PlayRecordStatus.FINISHED for r in records.values())

            for _ in range(150):
                if await resumed_and_done():
                    break
                await asyncio.sleep(0.1)
            plays = outcomes(fleet)
        records = await _records(sessions, scheduled)
        for cid in ICT:
            seen = plays[cid]
            assert seen[0] == (scheduled, "preempted"), seen
            assert seen[1] == (emergency.id, "finished"), seen
            assert seen[2][0].startswith(f"{scheduled}~r") and seen[2][1] == "finished", seen
            record = records[cid]
            assert record.status == PlayRecordStatus.FINISHED
            assert record.interrupted_by == emergency.id  # proof of play says what cut in
        resumed = next(
            r for r in fleet.clusters["E1"].records if r.session_id.startswith(f"{scheduled}~r")
        )
        # It resumed where it was cut (about 1.3 s in), not from the top: ~1.7 s left to play.
        assert 1000 <= resumed.played_ms <= 2400, resumed.played_ms
    finally:
        await station.stop()


async def test_an_emergency_still_ends_and_resumes_after_a_station_restart(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    """Restarted mid-emergency: its end comes from the database (bridges off, done) and what
    it preempted resumes at its offset; nothing plays twice."""
    station, media_id = await _station(tmp_path, mqtt_url, database_url, station_id)
    app = station.app
    sessions, settings = app[keys.SESSIONS], app[keys.SETTINGS]
    try:
        await schedule_programme_soon(app, tmp_path, 4.0)
        async with SimulatedFleet(
            station.runtime.mqtt_url, station_id, [*ICT, "BR1"], outputs=("transmitter",)
        ) as fleet:
            scheduled = await on_air(app, fleet)
            await asyncio.sleep(0.5)
            request = EmergencyRequest({"all": True}, media_id=media_id, repeat=2)
            emergency = await start_emergency(sessions, settings, request, "chairman")
            app[keys.DISPATCHER].poke()
            bridge = fleet.clusters["BR1"]
            await until(lambda: bridge.power.get("transmitter", (False, []))[0])
            await until(lambda: fleet.clusters["E1"].playing == emergency.id)
            await station.stop()  # mid-emergency: its end timer is gone with the process

            station = await start_station(settings)
            sessions = station.app[keys.SESSIONS]
            records = await finished(sessions, scheduled, 30)
            await until(lambda: not bridge.power["transmitter"][0])  # switched off after it
            plays = outcomes(fleet)
        async with sessions() as db:
            row = await db.get(PlaySession, emergency.id)
        assert row is not None and row.status == "done"
        for cid in ICT:
            seen = plays[cid]
            assert seen[0] == (scheduled, "preempted"), seen
            assert seen[1] == (emergency.id, "finished"), seen
            assert seen[2][0].startswith(f"{scheduled}~r") and seen[2][1] == "finished", seen
            assert len(seen) == 3, seen  # resumed once, nothing twice
            assert records[cid].interrupted_by == emergency.id
        resumed = fleet_record(fleet, "E1", f"{scheduled}~r")
        assert resumed is not None and resumed.played_ms is not None
        assert 2400 <= resumed.played_ms <= 3800, resumed.played_ms  # ~0.5-1 s had played
    finally:
        await station.stop()


def fleet_record(fleet: SimulatedFleet, cluster_id: str, prefix: str) -> Any:
    return next(
        (r for r in fleet.clusters[cluster_id].records if r.session_id.startswith(prefix)), None
    )
