"""Emergency broadcasts on the simulator: preempts, volume override, bridges, stop, CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from simulator import SimulatedFleet
from station import _keys as keys
from station._emergency import EmergencyRequest, start_emergency, stop_emergency
from station._services import (
    Sessions,
    StationError,
    add_media,
    create_programme,
    register_clusters,
    schedule_once,
)
from station.app import RunningStation, start_station
from station.cli import main
from station.db import Cluster, ClusterKind, PlayRecord, PlayRecordStatus, PlaySession
from station.db.models_upstream import UpstreamBulletin
from station.demo import demo_settings
from station.media import synthesize_programme

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
    async with sessions() as db:
        bridge, fm = await db.get(Cluster, "BR1"), await db.get(Cluster, "FM1")
        assert bridge is not None and fm is not None
        bridge.kind = ClusterKind.BRIDGE
        fm.kind, fm.bridge_id, fm.zone_code = ClusterKind.FM, "BR1", "*07#"
        db.add_all([bridge, fm])
        await db.commit()
    source = tmp_path / "alert.wav"
    await synthesize_programme(source, 1.0)
    item, _ = await add_media(
        sessions,
        station.app[keys.MEDIA_STORE],
        station.app[keys.MEDIA_WORKER],
        settings,
        source,
        "Báo bão",
    )
    assert item.id is not None
    return station, item.id


async def _records(sessions: Sessions, session_id: str) -> dict[str, PlayRecord]:
    async with sessions() as db:
        rows = await db.exec(select(PlayRecord).where(PlayRecord.session_id == session_id))
        return {r.cluster_id: r for r in rows}


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
                while True:
                    records = await _records(sessions, session.id)
                    if all(r.status == PlayRecordStatus.FINISHED for r in records.values()):
                        break
                    await asyncio.sleep(0.1)
                # switched off after the last item
                await until(lambda: not bridge.power.get("transmitter", (True, []))[0])
        async with sessions() as db:
            row = await db.get(PlaySession, session.id)
        assert row is not None and row.triggered_by == "operator:lan"
        assert row.kind == "emergency" and row.volume == 95 and row.priority == 100
        assert sorted(records) == ["BR1", *ICT]  # the FM set is reached through its bridge
        # Bridged: the transmitter warmed up first; everyone starts together after it.
        assert row.start_at - before < timedelta(seconds=0.5 + 0.3 + 0.5)
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
            # Started from another process (the CLI): the station's poll airs it.
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
        source = tmp_path / "long.wav"
        await synthesize_programme(source, 3.0)
        item, _ = await add_media(
            sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, source, "Tin"
        )
        assert item.id is not None
        programme = await create_programme(sessions, "Tin sáng", [item.id])
        assert programme.id is not None
        start = datetime.now(UTC) + timedelta(seconds=settings.scheduler.dispatch_lead_s + 1)
        await schedule_once(sessions, programme.id, start, {"clusters": ICT})
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ICT) as fleet:
            await app[keys.DISPATCHER].reconcile()
            await until(lambda: fleet.clusters["E1"].playing is not None, timeout=15)
            scheduled = fleet.clusters["E1"].playing
            assert scheduled is not None
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
            plays = {
                cid: [(r.session_id, r.outcome) for r in recs]
                for cid, recs in fleet.records().items()
            }
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
