"""``loaxa emergency start --live`` with the default configuration: clusters hear the live hub's
studio mount (signed per cluster); ``--relay URL`` goes through the hub's relay mount."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from devices.protocol import StreamCommand
from simulator import SimulatedFleet
from station import _keys as keys
from station._emergency import EmergencyRequest, start_emergency
from station._services import Sessions, register_clusters
from station.app import start_station
from station.cli import main
from station.db import PlayRecord, PlayRecordStatus, PlaySession
from station.live._routing import relay_mount
from tests.live_support import TONE, hub_of, live_settings, unsigned
from tests.playout_support import spy_on_sends
from tests.test_relay import Upstream

IDS = ["L1", "L2"]


async def _finished(sessions: Sessions, session_id: str) -> None:
    async with asyncio.timeout(30):
        while True:
            async with sessions() as db:
                rows = (
                    await db.exec(select(PlayRecord).where(PlayRecord.session_id == session_id))
                ).all()
            if len(rows) == len(IDS) and all(r.status == PlayRecordStatus.FINISHED for r in rows):
                return
            await asyncio.sleep(0.1)


async def test_live_and_relay_emergencies_go_through_the_live_hub(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False)
    assert settings.playout.live_url is None  # the default configuration
    radio = Upstream()
    await radio.start()
    station = await start_station(settings)
    config = tmp_path / "station.yaml"
    minimal = {"station": {"id": station_id}, "database": {"url": database_url}}
    config.write_text(yaml.safe_dump(minimal), encoding="utf-8")
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        gateway = app[keys.GATEWAY]
        sent = spy_on_sends(gateway, monkeypatch)
        await register_clusters(sessions, [(cid, cid) for cid in IDS])
        gateway.remember(IDS)
        hub = hub_of(station)
        await hub.start(settings.live.studio_mount, TONE)  # the studio microphone
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, IDS) as fleet:
            # From another process (the CLI), with no playout.live_url in its config.
            code = await asyncio.to_thread(
                main,
                ["emergency", "start", "-c", str(config), "--all", "--live", "--duration", "2"],
            )
            assert code == 0
            async with sessions() as db:
                live = (await db.exec(select(PlaySession))).one()
            await _finished(sessions, live.id)
            # A relay emergency: the station fetches the upstream once, for every cluster.
            request = EmergencyRequest({"all": True}, relay_url=radio.url, duration_s=2)
            relay = await start_emergency(sessions, settings, request, "chairman")
            app[keys.DISPATCHER].poke()
            await _finished(sessions, relay.id)
            heard = {(cid, r.session_id): r for cid, rs in fleet.records().items() for r in rs}
        streams = {(cid, c.session_id): c for cid, c in sent if isinstance(c, StreamCommand)}
        mount = relay_mount(radio.url)
        for cid in IDS:
            command = streams[(cid, live.id)]
            assert unsigned(command.url) == unsigned(hub.url_for(settings.live.studio_mount, cid))
            assert heard[(cid, live.id)].outcome == "finished"
            assert heard[(cid, live.id)].bytes_downloaded > 2_000  # the studio's audio
            command = streams[(cid, relay.id)]
            assert unsigned(command.url) == unsigned(hub.url_for(mount, cid))
            assert radio.url not in (command.url or "")
            assert heard[(cid, relay.id)].bytes_downloaded > 1_000
        assert radio.requests == 1
    finally:
        await station.stop()
        await radio.stop()
