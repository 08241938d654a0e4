"""Revoking a cluster's credentials ends the session of a device already connected with them.

A reissue (API ``POST /clusters/{id}/credentials``, CLI ``provision``), a retirement and a
replacement all revoke the old password. On the embedded broker the station closes those
sessions itself (``EmbeddedBroker.end_stale_sessions``, run by ``BrokerAccess.refresh``) and,
until it does, the broker refuses every publish, subscribe and delivery of a revoked login. On
Mosquitto the station rewrites the password file and sends SIGHUP; Mosquitto then re-checks
every connected client and drops those whose password no longer matches or whose user is gone.

The "old device" is a plain paho client that does not reconnect by itself, so a disconnect the
broker made is seen as such. The Mosquitto tests start a real ``mosquitto`` on a free port with
the station's generated files; they skip only where mosquitto is not installed.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from api_support import client, running, user_with_token
from broker_security import can_login, connected, free_port, next_message
from paho.mqtt.enums import CallbackAPIVersion
from test_broker_security import MOSQUITTO, _start_mosquitto, _wait_port

from devices import (
    BrokerAddress,
    EmbeddedBroker,
    TopicPolicy,
    acl_text,
    hash_password,
    make_persistence_dir,
    mosquitto_conf,
    password_file_text,
    station_username,
    write_atomic,
)
from devices.protocol import Topics
from station import _keys as keys
from station._registry import Endpoints, provision_cluster
from station.app import RunningStation
from station.config import Settings
from station.db import Role
from station.demo import demo_settings

WAIT_S = 15.0  # upper bound for one broker reaction on a loaded CI machine (not a speed goal)
# No background sweep during a test: only the API call under test (or an explicit refresh, as
# the sweep would do) may end a session, so each check shows who ended it.
NO_SWEEP_S = 3600.0

needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")


class Device:
    """A cluster's MQTT client (paho, MQTT 3.1.1, QoS 1) that never reconnects on its own."""

    def __init__(
        self, address: BrokerAddress, user: str, password: str, will: str | None = None
    ) -> None:
        self.client_id = f"dev-{user}-{uuid.uuid4().hex[:6]}"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv311
        )
        self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(3600, 3600)  # no retry within a test
        if will is not None:
            self.client.will_set(will, b"gone", qos=1)
        self.address = address
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._connack: list[bool] = []
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._subacks: queue.Queue[list[Any]] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connack.append(not reason.is_failure)
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self._disconnected.set()
        self._connected.set()  # a refused CONNECT also ends here

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        self._subacks.put(codes)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        self.messages.put((message.topic, message.payload))

    async def connect(self) -> None:
        await asyncio.to_thread(self.client.connect, self.address.host, self.address.port, 30)
        self.client.loop_start()
        assert await asyncio.to_thread(self._connected.wait, WAIT_S), "no CONNACK"
        assert self._connack == [True], f"{self.client_id}: login refused"

    async def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        codes = await asyncio.to_thread(self._subacks.get, True, WAIT_S)
        assert all(not code.is_failure for code in codes), codes

    async def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish, WAIT_S)

    async def closed_by_broker(self) -> bool:
        """True once the broker ended the connection (this client never disconnects itself)."""
        return await asyncio.to_thread(self._disconnected.wait, WAIT_S)

    @property
    def still_connected(self) -> bool:
        return not self._disconnected.is_set() and self.client.is_connected()

    def received(self) -> list[tuple[str, bytes]]:
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@asynccontextmanager
async def device(
    address: BrokerAddress, user: str, password: str, will: str | None = None
) -> AsyncIterator[Device]:
    dev = Device(address, user, password, will)
    try:
        await dev.connect()
        yield dev
    finally:
        await asyncio.to_thread(dev.close)


async def _message(dev: Device) -> tuple[str, bytes]:
    return await asyncio.to_thread(dev.messages.get, True, WAIT_S)


# --------------------------------------------------------------------------- embedded broker


async def test_embedded_broker_refuses_then_closes_a_revoked_session(station_id: str) -> None:
    """Between a revocation and ``end_stale_sessions`` the old session can neither publish nor
    receive; ``end_stale_sessions`` then closes exactly the revoked sessions."""
    topics = Topics(station_id)
    st_user = station_username(station_id)
    hashes = {"A01": hash_password("old-a"), "B02": hash_password("pw-b")}
    policy = TopicPolicy(station_id, st_user, hash_password("st-pw"), hashes.get)
    broker = EmbeddedBroker(policy=policy)
    await broker.start()
    try:
        address = BrokerAddress.from_url(broker.url)
        async with (
            connected(address, st_user, "st-pw") as station,
            device(address, "A01", "old-a", will=topics.cluster("A01", "status")) as old,
            device(address, "B02", "pw-b") as b02,
        ):
            await station.subscribe(topics.cluster_filter("heartbeat"), qos=1)
            await station.subscribe(topics.cluster_filter("status"), qos=1)
            await old.subscribe(topics.cluster("A01", "cmd"))
            await b02.subscribe(topics.cluster("B02", "cmd"))
            await old.publish(topics.cluster("A01", "heartbeat"), b"before")
            got = await next_message(station)
            assert got.payload == b"before"
            assert broker.stale_sessions() == []

            hashes["A01"] = hash_password("new-a")  # reissued; nobody has told the broker yet
            assert broker.stale_sessions() == [old.client_id]
            await old.publish(topics.cluster("A01", "heartbeat"), b"revoked")  # PUBACKed, dropped
            await station.publish(topics.cluster("A01", "cmd"), b"cmd-revoked", qos=1)
            # Positive controls, queued behind: B02 still publishes and receives.
            await b02.publish(topics.cluster("B02", "heartbeat"), b"control")
            got = await next_message(station)
            assert (got.topic, got.payload) == (topics.cluster("B02", "heartbeat"), b"control")
            await station.publish(topics.cluster("B02", "cmd"), b"cmd-b", qos=1)
            assert await _message(b02) == (topics.cluster("B02", "cmd"), b"cmd-b")
            async with device(address, "A01", "new-a") as new:  # the new password works
                await new.subscribe(topics.cluster("A01", "cmd"))
                await station.publish(topics.cluster("A01", "cmd"), b"cmd-new", qos=1)
                assert await _message(new) == (topics.cluster("A01", "cmd"), b"cmd-new")
                await asyncio.sleep(0.3)  # anything wrongly delivered would be right behind
                assert old.received() == [] and station.messages.empty()
                assert broker.stale_sessions() == [old.client_id]

                assert await broker.end_stale_sessions() == [old.client_id]
                assert await old.closed_by_broker()
                assert new.still_connected and b02.still_connected
                await b02.publish(topics.cluster("B02", "heartbeat"), b"after")
                got = await next_message(station)  # no will of the closed session before it
                assert (got.topic, got.payload) == (topics.cluster("B02", "heartbeat"), b"after")
                assert broker.stale_sessions() == []
                assert await broker.end_stale_sessions() == []
            assert not await can_login(address, "A01", "old-a")
            del hashes["B02"]  # retired
            ended = await broker.end_stale_sessions()
            # amqtt keeps a refused login's session in its table: it goes too (no valid login)
            assert b02.client_id in ended and old.client_id not in ended
            assert await b02.closed_by_broker()
            assert station.is_connected
            assert not await can_login(address, "B02", "pw-b")
            assert not await broker.disconnect("nobody")
    finally:
        await broker.stop()


@pytest.fixture
def embedded_settings(tmp_path: Path, database_url: str, station_id: str) -> Settings:
    base = demo_settings(
        tmp_path, mqtt_url="embedded", database_url=database_url, station_id=station_id
    )
    devices = base.devices.model_copy(update={"allow_anonymous": False, "sweep_s": NO_SWEEP_S})
    return base.model_copy(update={"devices": devices})


async def _register(station: RunningStation, api: Any, *cluster_ids: str) -> dict[str, str]:
    passwords = {}
    for cluster_id in cluster_ids:
        status, body, _ = await api.call("POST", "/fleet/clusters", {"id": cluster_id})
        assert status == 201, body
        passwords[cluster_id] = body["bundle"]["password"]
    await station.app[keys.ACCESS].refresh()  # what the next sweep does
    return passwords


async def _revoke_over_the_api(
    station: RunningStation,
    address: BrokerAddress,
    send_command: Any,
) -> None:
    """Reissue A01, retire B02, replace C03 by C04 over the API, each while the old device is
    connected: each old session ends at once, the old passwords are refused, the new ones work
    and commands reach only the new device."""
    topics = Topics(station.app[keys.SETTINGS].station.id)
    token = await user_with_token(station, "tech1", Role.TECHNICIAN)
    async with client(station, token) as api:
        pw = await _register(station, api, "A01", "B02", "C03")
        async with (
            device(address, "A01", pw["A01"]) as a01,
            device(address, "B02", pw["B02"]) as b02,
            device(address, "C03", pw["C03"]) as c03,
        ):
            for dev, cid in ((a01, "A01"), (b02, "B02"), (c03, "C03")):
                await dev.subscribe(topics.cluster(cid, "cmd"))

            status, body, _ = await api.call("POST", "/clusters/A01/credentials")
            assert status == 201, body
            new_pw = body["bundle"]["password"]
            assert await a01.closed_by_broker()
            assert b02.still_connected and c03.still_connected
            assert not await can_login(address, "A01", pw["A01"])

            status, body, _ = await api.call("POST", "/clusters/B02/retire")
            assert status == 200, body
            assert await b02.closed_by_broker()
            assert c03.still_connected
            assert not await can_login(address, "B02", pw["B02"])

            status, body, _ = await api.call("POST", "/clusters/C03/replace", {"id": "C04"})
            assert status == 201, body
            c04_pw = body["bundle"]["password"]
            assert await c03.closed_by_broker()
            assert not await can_login(address, "C03", pw["C03"])

            async with (
                device(address, "A01", new_pw) as a01_new,
                device(address, "C04", c04_pw) as c04,
            ):
                await a01_new.subscribe(topics.cluster("A01", "cmd"))
                await c04.subscribe(topics.cluster("C04", "cmd"))
                for cid in ("A01", "B02", "C03", "C04"):
                    await send_command(topics.cluster(cid, "cmd"), f"to-{cid}".encode())
                assert await _message(a01_new) == (topics.cluster("A01", "cmd"), b"to-A01")
                assert await _message(c04) == (topics.cluster("C04", "cmd"), b"to-C04")
                await asyncio.sleep(0.3)
                for old in (a01, b02, c03):
                    assert old.received() == []  # nothing after the revocation
                    assert not old.still_connected

                # The CLI's path: the registry changes in another process, the station's next
                # sweep (``BrokerAccess.refresh``) ends the session.
                sessions = station.app[keys.SESSIONS]
                endpoints = Endpoints(topics.station_id, "mqtt://127.0.0.1:1", station.base_url)
                await provision_cluster(sessions, "A01", endpoints)
                assert a01_new.still_connected  # nothing reloaded yet
                await station.app[keys.ACCESS].refresh()
                assert await a01_new.closed_by_broker()
                assert c04.still_connected


async def test_station_ends_revoked_sessions_on_the_embedded_broker(
    embedded_settings: Settings,
) -> None:
    async with running(embedded_settings) as station:
        address = BrokerAddress.from_url(station.runtime.mqtt_url)
        link = station.app[keys.LINK]

        async def send(topic: str, payload: bytes) -> None:
            await link.publish(topic, payload, qos=1)

        await _revoke_over_the_api(station, address, send)


# --------------------------------------------------------------------------- Mosquitto


@asynccontextmanager
async def _mosquitto_station(
    tmp_path: Path, database_url: str, station_id: str
) -> AsyncIterator[tuple[RunningStation, BrokerAddress, tuple[str, str]]]:
    """A real Mosquitto with the station's generated files, and the station managing them."""
    user, password = station_username(station_id), "station-secret"
    passwd, acl, pid_file = tmp_path / "passwd", tmp_path / "acl", tmp_path / "mosquitto.pid"
    write_atomic(passwd, password_file_text([(user, hash_password(password))]))
    write_atomic(acl, acl_text(station_id, user))
    make_persistence_dir(tmp_path / "data")
    port = free_port()
    conf = mosquitto_conf(
        tmp_path, port=port, bind="127.0.0.1", extra=["user root", f"pid_file {pid_file}"]
    )
    process = await _start_mosquitto(tmp_path, conf)
    try:
        await _wait_port(port, process)
        base = demo_settings(
            tmp_path,
            mqtt_url=f"mqtt://{user}:{password}@127.0.0.1:{port}",
            database_url=database_url,
            station_id=station_id,
        )
        devices = base.devices.model_copy(
            update={
                "allow_anonymous": False,
                "sweep_s": NO_SWEEP_S,
                "mosquitto_password_file": passwd,
                "mosquitto_acl_file": acl,
                "mosquitto_pid_file": pid_file,
            }
        )
        async with running(base.model_copy(update={"devices": devices})) as station:
            yield station, BrokerAddress("127.0.0.1", port), (user, password)
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()


@needs_mosquitto
async def test_station_ends_revoked_sessions_on_mosquitto(
    tmp_path: Path, database_url: str, station_id: str
) -> None:
    """The same lifecycle against Mosquitto 2.0: the station's SIGHUP after each revocation is
    what ends the old session (Mosquitto re-checks connected clients on reload)."""
    # An observer with the station's login sends the commands (the station's own link would do
    # as well; this keeps the check independent of the gateway).
    async with (
        _mosquitto_station(tmp_path, database_url, station_id) as (station, address, st),
        connected(address, *st) as observer,
    ):

        async def send(topic: str, payload: bytes) -> None:
            await observer.publish(topic, payload, qos=1)

        await _revoke_over_the_api(station, address, send)


@needs_mosquitto
async def test_mosquitto_reload_drops_only_clients_whose_password_changed(
    tmp_path: Path, station_id: str
) -> None:
    """What Mosquitto itself does on SIGHUP (the measurement the station relies on): a client
    whose password changed in the file and one whose user was removed are disconnected, an
    unchanged one stays; the dropped clients' wills are not delivered; the old password cannot
    log in, so it can neither publish nor read commands any more."""
    assert MOSQUITTO is not None
    topics = Topics(station_id)
    st_user = station_username(station_id)
    passwd = tmp_path / "passwd"

    def write(entries: dict[str, str]) -> None:
        hashes = {user: hash_password(pw) for user, pw in entries.items()}
        write_atomic(passwd, password_file_text(hashes.items()))

    write({st_user: "st-pw", "A01": "old-a", "B02": "pw-b", "C03": "pw-c"})
    write_atomic(tmp_path / "acl", acl_text(station_id, st_user))
    make_persistence_dir(tmp_path / "data")
    pid_file, port = tmp_path / "mosquitto.pid", free_port()
    conf = mosquitto_conf(
        tmp_path, port=port, bind="127.0.0.1", extra=["user root", f"pid_file {pid_file}"]
    )
    process = await _start_mosquitto(tmp_path, conf)
    try:
        await _wait_port(port, process)
        address = BrokerAddress("127.0.0.1", port)
        async with (
            connected(address, st_user, "st-pw") as station,
            device(address, "A01", "old-a", will=topics.cluster("A01", "status")) as a01,
            device(address, "B02", "pw-b", will=topics.cluster("B02", "status")) as b02,
            device(address, "C03", "pw-c") as c03,
        ):
            await station.subscribe(topics.cluster_filter("heartbeat"), qos=1)
            await station.subscribe(topics.cluster_filter("status"), qos=1)
            for dev, cid in ((a01, "A01"), (b02, "B02"), (c03, "C03")):
                await dev.subscribe(topics.cluster(cid, "cmd"))
            write({st_user: "st-pw", "A01": "new-a", "C03": "pw-c"})  # A01 reissued, B02 gone
            process.send_signal(signal.SIGHUP)
            assert await a01.closed_by_broker()
            assert await b02.closed_by_broker()
            # C03 (unchanged) and the station stay connected and keep working; no will came
            # before C03's heartbeat (a will is sent when its client is dropped).
            await c03.publish(topics.cluster("C03", "heartbeat"), b"still here")
            got = await next_message(station)
            assert (got.topic, got.payload) == (topics.cluster("C03", "heartbeat"), b"still here")
            await station.publish(topics.cluster("C03", "cmd"), b"cmd-c", qos=1)
            assert await _message(c03) == (topics.cluster("C03", "cmd"), b"cmd-c")
            assert c03.still_connected and station.is_connected
            await station.publish(topics.cluster("A01", "cmd"), b"cmd-a", qos=1)
            assert not await can_login(address, "A01", "old-a")
            assert not await can_login(address, "B02", "pw-b")
            assert await can_login(address, "A01", "new-a")
            await asyncio.sleep(0.3)
            assert a01.received() == [] and b02.received() == []
            assert station.messages.empty()  # no will, no publish of the dropped clients
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
