"""Nothing secret is ever retained on the broker.

amqtt replays retained messages to new clients without checking its ACL (FINDINGS), so the
station and the simulator may retain only availability (status) messages, and those carry no
passwords, tokens, URLs or commands. This runs a whole broadcast (registration with credentials,
a play command with media URLs, acks and events, link drops, shutdown) and then reads back
everything the broker retained for the station.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker_security import connected
from sqlmodel import select

from devices import BrokerAddress
from simulator import SimulatedFleet
from station import _keys as keys
from station._registry import Endpoints, parse_spec, register_cluster
from station._services import add_media, create_programme, schedule_once
from station.app import start_station
from station.db import PlayRecord, PlayRecordStatus
from station.demo import demo_settings
from station.media import synthesize_programme

ALLOWED_STATUS_KEYS = {"v", "cluster_id", "state", "ts", "firmware", "model", "capabilities"}


async def test_nothing_secret_is_retained(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    secrets: list[str] = []
    try:
        sessions = station.app[keys.SESSIONS]
        endpoints = Endpoints(station_id, mqtt_url, station.base_url)
        ids = ["R1", "R2"]
        for cid in ids:
            bundle = await register_cluster(sessions, parse_spec({"id": cid}), endpoints)
            assert bundle.password
            secrets.append(bundle.password)
        await station.app[keys.ACCESS].refresh()
        source = tmp_path / "in.wav"
        await synthesize_programme(source, 1.0)
        item, _ = await add_media(
            sessions, station.app[keys.MEDIA_STORE], station.app[keys.MEDIA_WORKER], settings,
            source, "t",
        )  # fmt: skip
        assert item.id is not None
        programme = await create_programme(sessions, "p", [item.id])
        assert programme.id is not None
        async with SimulatedFleet(mqtt_url, station_id, ids, speed=4.0, heartbeat_s=0.2) as fleet:
            start_at = datetime.now(UTC) + timedelta(seconds=settings.scheduler.dispatch_lead_s + 1)
            await schedule_once(sessions, programme.id, start_at, {"all": True})
            await station.app[keys.DISPATCHER].reconcile()
            async with asyncio.timeout(30):
                while True:
                    async with sessions() as db:
                        records = (await db.exec(select(PlayRecord))).all()
                    if sum(r.status == PlayRecordStatus.FINISHED for r in records) == len(ids):
                        break
                    await asyncio.sleep(0.2)
            fleet.clusters["R1"].drop_link(0.3)
            await asyncio.sleep(1.0)
        retained = await _retained(mqtt_url, station_id)
    finally:
        await station.stop()
    retained.update(await _retained(mqtt_url, station_id))

    prefix = f"loaxa/v1/{station_id}"
    assert f"{prefix}/station/status" in retained  # the observer does see retained messages
    assert {f"{prefix}/c/{cid}/status" for cid in ids} <= set(retained)
    for topic, payload in retained.items():
        assert topic.endswith("/status"), f"non-status message retained on {topic}"
        if not payload:
            continue
        text = payload.decode()
        body = json.loads(text)
        assert set(body) <= ALLOWED_STATUS_KEYS, (topic, body)
        for secret in secrets:
            assert secret not in text
        for marker in ("http://", "https://", "mqtt://", "token", "password", "sig="):
            assert marker not in text.lower(), (topic, text)


async def _retained(mqtt_url: str, station_id: str) -> dict[str, bytes]:
    """Everything retained under the station's prefix, as seen by a fresh client."""
    found: dict[str, bytes] = {}
    async with connected(BrokerAddress.from_url(mqtt_url), None, None) as observer:
        await observer.subscribe(f"loaxa/v1/{station_id}/#")
        try:
            async with asyncio.timeout(1.0):
                while True:
                    message = await observer.messages.get()
                    if message.retain:
                        found[message.topic] = message.payload
        except TimeoutError:
            pass
    return found
