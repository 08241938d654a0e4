"""A scheduled relay airs through the station's live hub: the station fetches the upstream once,
each cluster streams it from the station with its own signed URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from devices.protocol import StreamCommand
from simulator import SimulatedFleet
from station import _keys as keys
from station._services import register_clusters
from station.app import start_station
from station.db import PlayRecord, PlayRecordStatus, PlaySession
from station.demo import demo_settings
from station.live import LIVE_HUB, LiveHub, MountConfig
from station.live._routing import HubRouter, relay_mount
from tests.live_support import eventually, unsigned
from tests.playout_support import daily_media_then_relay, records_when, spy_on_sends
from tests.test_relay import Upstream

RELAY_S = 3


def _ended(record: PlayRecord) -> bool:
    """Finished, with the relay (the session's last segment) played to its end."""
    return (
        record.status == PlayRecordStatus.FINISHED
        and record.finished_at is not None
        and record.started_at is not None
        and record.finished_at - record.started_at >= timedelta(seconds=RELAY_S + 0.8)
    )


async def test_scheduled_relay_goes_through_the_live_hub(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    radio = Upstream()
    await radio.start()
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    ids = ["R1", "R2", "R3"]
    station = await start_station(settings)
    try:
        assert station.app[keys.STORE].live_url == "live:studio"  # live slots: studio mount
        sent = spy_on_sends(station.app[keys.GATEWAY], monkeypatch)
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in ids])
        _, start = await daily_media_then_relay(
            station.app, tmp_path, "Tiếp âm", radio.url, RELAY_S
        )
        async with SimulatedFleet(station.runtime.mqtt_url, station_id, ids) as fleet:
            await station.app[keys.DISPATCHER].reconcile()
            await records_when(
                sessions, lambda rs: len(rs) == len(ids) and all(_ended(r) for r in rs), 45
            )
            seen = {cid: list(rs) for cid, rs in fleet.records().items()}
        async with sessions() as db:
            session = (await db.exec(select(PlaySession))).one()
        assert session.start_at == start.astimezone(UTC)
        hub = station.app[LIVE_HUB]
        mount = relay_mount(radio.url)
        streams = {cid: c for cid, c in sent if isinstance(c, StreamCommand)}
        assert streams == {cid: streams[cid] for cid in ids}
        for cid, command in streams.items():
            # the station's, signed per cluster (expiry and signature aside)
            assert unsigned(command.url) == unsigned(hub.url_for(mount, cid))
            assert command.url is not None and radio.url not in command.url
        assert radio.requests == 1  # the station fetched the upstream once, for all
        relay_sid = f"{session.id}~1"
        for cid in ids:
            relay = [r for r in seen[cid] if r.session_id == relay_sid]
            assert len(relay) == 1 and relay[0].outcome == "finished"
            assert relay[0].bytes_downloaded > 2_000  # audio from the station's mount
        await eventually(lambda: mount not in hub.mounts, 15)  # stopped after its last segment
    finally:
        await station.stop()
        await radio.stop()


async def test_live_slots_air_the_studio_mount_and_other_urls_pass() -> None:
    hub = LiveHub("ffmpeg", MountConfig(codec="mp3"), lambda m, c: f"http://st/live/{m}?c={c}", "t")
    router = HubRouter(lambda: hub)
    at = datetime.now(UTC)
    route = await router("live:studio", at, at + timedelta(seconds=5))
    assert route is not None and route.codec == "mp3"
    assert route.url_for("C1") == "http://st/live/studio?c=C1"
    assert await router("rtsp://cam/1", at, at + timedelta(seconds=5)) is None
    assert await HubRouter(lambda: None)("live:studio", at, at) is None
    await router.close()
    assert relay_mount("http://vov/1") == relay_mount("http://vov/1") != relay_mount("http://vov/2")
