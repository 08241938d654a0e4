"""The production setup: the station keeps Mosquitto's password file and ACL current and makes it
reload them, so a cluster registered with the CLI can log in and a retired one cannot."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from broker_security import can_login, free_port
from sqlmodel import col, select
from test_broker_security import MOSQUITTO, _start_mosquitto, _wait_port

from devices import (
    BrokerAddress,
    acl_text,
    hash_password,
    make_persistence_dir,
    mosquitto_conf,
    password_file_text,
    station_username,
    write_atomic,
)
from simulator import SimulatedFleet
from station import _keys as keys
from station._registry import Endpoints, parse_spec, register_cluster, retire_cluster
from station.app import start_station
from station.db import Cluster
from station.demo import demo_settings

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")


async def test_station_manages_mosquitto_credentials(
    tmp_path: Path, database_url: str, station_id: str
) -> None:
    user, password = station_username(station_id), "station-secret"
    passwd, acl, pid_file = tmp_path / "passwd", tmp_path / "acl", tmp_path / "mosquitto.pid"
    write_atomic(passwd, password_file_text([(user, hash_password(password))]))
    write_atomic(acl, acl_text(station_id, user))
    port = free_port()
    make_persistence_dir(tmp_path / "data")  # the station's session survives broker restarts
    conf = mosquitto_conf(
        tmp_path, port=port, bind="127.0.0.1", extra=["user root", f"pid_file {pid_file}"]
    )
    process = await _start_mosquitto(tmp_path, conf)
    try:
        await _wait_port(port, process)
        url = f"mqtt://{user}:{password}@127.0.0.1:{port}"
        base = demo_settings(
            tmp_path, mqtt_url=url, database_url=database_url, station_id=station_id
        )
        devices = base.devices.model_copy(
            update={
                "allow_anonymous": False,
                "mosquitto_password_file": passwd,
                "mosquitto_acl_file": acl,
                "mosquitto_pid_file": pid_file,
            }
        )
        settings = base.model_copy(update={"devices": devices})
        station = await start_station(settings)
        try:
            assert station.app[keys.LINK].is_connected
            sessions, access = station.app[keys.SESSIONS], station.app[keys.ACCESS]
            endpoints = Endpoints(station_id, f"mqtt://127.0.0.1:{port}", station.base_url)
            assert access.reloads == 1  # the files written at start
            bundle = await register_cluster(sessions, parse_spec({"id": "M01"}), endpoints)
            assert bundle.password
            await access.refresh()
            assert access.reloads == 2 and "M01:$7$" in passwd.read_text()
            await access.refresh()
            assert access.reloads == 2  # nothing changed: no rewrite, no reload
            address = BrokerAddress("127.0.0.1", port)
            for _ in range(150):  # SIGHUP is asynchronous
                if await can_login(address, "M01", bundle.password):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("a registered cluster cannot log in")
            credentials = {"M01": ("M01", bundle.password)}
            async with SimulatedFleet(
                f"mqtt://127.0.0.1:{port}", station_id, ["M01"], credentials=credentials
            ):
                async with asyncio.timeout(10):
                    while True:
                        async with sessions() as db:
                            row = (
                                await db.exec(select(Cluster).where(col(Cluster.id) == "M01"))
                            ).one()
                        if row.online:
                            break
                        await asyncio.sleep(0.1)
            await retire_cluster(sessions, "M01")
            await access.refresh()
            assert access.reloads == 3 and "M01" not in passwd.read_text()
            assert "M01" not in station.app[keys.GATEWAY].known  # its messages are dropped now
            for _ in range(150):
                if not await can_login(address, "M01", bundle.password):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("a retired cluster can still log in")
        finally:
            await station.stop()
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
