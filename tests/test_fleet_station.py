"""Monitoring and device security with the real app (start_station) and simulated clusters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from broker_security import can_login, connected
from sqlmodel import col, select

from devices import BrokerAddress
from devices.protocol import Status, Topics, encode
from simulator import SimulatedFleet
from station import _keys as keys
from station._registry import Endpoints, parse_spec, register_cluster
from station._services import Sessions, register_clusters
from station.app import RunningStation, start_station
from station.config import Settings
from station.db import Alert, AlertKind, Cluster
from station.demo import demo_settings


def _settings(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, **devices: Any
) -> Settings:
    base = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    return base.model_copy(update={"devices": base.devices.model_copy(update=devices)})


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.1)


async def _alerts(sessions: Sessions, cluster_id: str, kind: AlertKind) -> list[Alert]:
    async with sessions() as db:
        query = select(Alert).where(Alert.cluster_id == cluster_id, Alert.kind == kind)
        return list((await db.exec(query.order_by(col(Alert.id)))).all())


async def _online(sessions: Sessions, ids: list[str]) -> bool:
    async with sessions() as db:
        rows = (await db.exec(select(Cluster).where(col(Cluster.id).in_(ids)))).all()
    return len(rows) == len(ids) and all(r.online for r in rows)


async def test_clusters_log_in_with_their_own_credentials_and_dropped_links_alert(
    tmp_path: Path, database_url: str, station_id: str
) -> None:
    settings = _settings(
        tmp_path, "embedded", database_url, station_id, allow_anonymous=False, sweep_s=0.2
    )
    station: RunningStation = await start_station(settings)
    try:
        sessions = station.app[keys.SESSIONS]
        endpoints = Endpoints(station_id, station.runtime.mqtt_url, station.base_url)
        ids = ["A01", "B02"]
        bundles = [await register_cluster(sessions, parse_spec({"id": c}), endpoints) for c in ids]
        await station.app[keys.ACCESS].refresh()  # the sweep would do it within sweep_s too
        address = BrokerAddress.from_url(station.runtime.mqtt_url)
        assert not await can_login(address, None, None)
        assert not await can_login(address, "A01", bundles[1].password)
        credentials = {b.cluster_id: (b.cluster_id, b.password or "") for b in bundles}
        async with SimulatedFleet(
            station.runtime.mqtt_url, station_id, ids, heartbeat_s=0.5, credentials=credentials
        ) as fleet:
            await until(lambda: _online(sessions, ids))
            fleet.clusters["A01"].drop_link(1.5)

            async def offline_alert_open() -> bool:
                found = await _alerts(sessions, "A01", AlertKind.OFFLINE)
                return bool(found) and found[0].cleared_at is None

            await until(offline_alert_open)
            assert not await _online(sessions, ["A01"])

            async def offline_alert_cleared() -> bool:
                found = await _alerts(sessions, "A01", AlertKind.OFFLINE)
                return len(found) == 1 and found[0].cleared_at is not None

            await until(offline_alert_cleared)
            assert await _online(sessions, ids)
            assert await _alerts(sessions, "B02", AlertKind.OFFLINE) == []
    finally:
        await station.stop()


async def test_a_silent_cluster_goes_offline_and_a_skewed_clock_alerts(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = _settings(
        tmp_path, mqtt_url, database_url, station_id, heartbeat_interval_s=0.3, sweep_s=0.1
    )
    station = await start_station(settings)
    try:
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [("Q1", "quiet"), ("S1", "skewed")])
        await station.app[keys.ACCESS].refresh()
        topics = Topics(station_id)
        # Q1: a device that says hello and then nothing at all (its link stays up).
        async with connected(BrokerAddress.from_url(mqtt_url), None, None) as quiet:
            birth = encode(Status(cluster_id="Q1", state="online"))
            await quiet.publish(topics.cluster("Q1", "status"), birth, retain=False)

            async def silent_alert() -> bool:
                found = await _alerts(sessions, "Q1", AlertKind.OFFLINE)
                return bool(found) and "no heartbeat" in found[0].detail

            await until(silent_alert)
        async with SimulatedFleet(mqtt_url, station_id, ["S1"], heartbeat_s=0.1) as fleet:
            fleet.clusters["S1"].set_clock_offset(2500)

            async def clock_alert() -> bool:
                return bool(await _alerts(sessions, "S1", AlertKind.CLOCK))

            await until(clock_alert)
            fleet.clusters["S1"].set_clock_offset(0)

            async def clock_cleared() -> bool:
                found = await _alerts(sessions, "S1", AlertKind.CLOCK)
                return len(found) == 1 and found[0].cleared_at is not None

            await until(clock_cleared)
            assert await _alerts(sessions, "S1", AlertKind.OFFLINE) == []
    finally:
        await station.stop()


async def test_the_gateway_listens_only_to_active_reporting_clusters(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    from station._registry import retire_cluster

    station = await start_station(_settings(tmp_path, mqtt_url, database_url, station_id))
    try:
        sessions = station.app[keys.SESSIONS]
        endpoints = Endpoints(station_id, mqtt_url, station.base_url)
        for fields in (
            {"id": "B1", "kind": "bridge"},
            {"id": "F1", "kind": "fm", "bridge_id": "B1", "zone_code": "11"},
            {"id": "C1"},
            {"id": "C2"},
        ):
            await register_cluster(sessions, parse_spec(fields), endpoints)
        await retire_cluster(sessions, "C2")
        await station.app[keys.ACCESS].refresh()
        known = station.app[keys.GATEWAY].known
        assert {"B1", "C1"} <= known and not {"F1", "C2"} & known
        assert set(station.app[keys.ACCESS].hashes) == {"B1", "C1"}
    finally:
        await station.stop()
