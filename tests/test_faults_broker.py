"""The MQTT broker stopped and restarted mid-broadcast.

What the user would check: every session plays on time on every cluster (the clusters hold
their sessions: store-and-forward), nothing plays twice, proof of play is complete once the
broker is back (events queued on the clusters arrive late, with their real times), and the
station reconnects, re-subscribes (a schedule made after the restart airs) and re-announces.

The broker: our own Mosquitto (``persistence true``, so the station's persistent session and
the events queued for it survive the restart) when the tests run against Mosquitto
(``LOAXA_TEST_MQTT_URL``: the shared one cannot be restarted) and the binary is here; else the
embedded broker, stopped and started again on the same port. amqtt forgets every session when it
starts (as Mosquitto with ``persistence false``): events a cluster flushes before the station has
re-subscribed would be lost, so in that variant the clusters' links come back a moment after the
broker (their 4G links are slower than the station's), which is the order this test can rely on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlmodel import select

from devices import BrokerAddress, EmbeddedBroker
from devices.protocol import Topics
from simulator import SimulatedFleet
from station import _keys as keys
from station._services import (
    Sessions,
    register_clusters,
    schedule_once,
)
from station.app import start_station
from station.db import PlayRecord, PlayRecordStatus
from station.demo import demo_settings
from tests.broker_security import connected, free_port
from tests.playout_support import audio_programme, until_within

TEST_MQTT_URL = os.environ.get("LOAXA_TEST_MQTT_URL", "")
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)
IDS = ["K1", "K2", "K3"]
MEDIA_S = 2.0
DOWN_S = 5.0  # the broker is away this long, from just after the first session started


class Broker(Protocol):
    url: str
    keeps_sessions: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Embedded:
    """amqtt on a fixed port, a new instance on each start."""

    keeps_sessions = False

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._broker: EmbeddedBroker | None = None

    async def start(self) -> None:
        self._broker = EmbeddedBroker("127.0.0.1", self.port)
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None


class Mosquitto:
    """Our own Mosquitto on a free port, persisting its sessions in ``directory``."""

    keeps_sessions = True

    def __init__(self, directory: Path) -> None:
        assert MOSQUITTO is not None
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        directory.mkdir()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            "\n".join(
                [
                    "user root",  # do not drop to the mosquitto user: tmp_path is ours
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {directory}/",
                    "max_queued_messages 100000",
                    f"listener {self.port} 127.0.0.1",
                    f"log_dest file {directory / 'mosquitto.log'}",
                ]
            )
            + "\n"
        )
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        assert MOSQUITTO is not None
        self._process = await asyncio.create_subprocess_exec(
            MOSQUITTO,
            "-c",
            str(self.conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):
            if self._process.returncode is not None:
                raise RuntimeError(f"mosquitto exited with {self._process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise RuntimeError("mosquitto did not open its port")

    async def stop(self) -> None:
        if self._process is None:
            return
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM)  # it saves its sessions on the way out
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._process = None


async def proof(sessions: Sessions) -> list[PlayRecord]:
    async with sessions() as db:
        return list((await db.exec(select(PlayRecord))).all())


async def retained_station_status(url: str, station_id: str) -> bytes:
    """What a newcomer reads on the station's availability topic."""
    topic = Topics(station_id).station_status
    async with connected(BrokerAddress.from_url(url), None, None) as probe:
        await probe.subscribe(topic)
        async with asyncio.timeout(5):
            while (message := await probe.messages.get()).topic != topic:
                pass  # amqtt may hand a newcomer other retained messages too
    assert message.retain
    return bytes(message.payload)


async def test_broker_restarted_mid_broadcast(
    tmp_path: Path, database_url: str, station_id: str
) -> None:
    broker: Broker = (
        Mosquitto(tmp_path / "mosquitto") if TEST_MQTT_URL and MOSQUITTO else Embedded()
    )
    await broker.start()
    settings = demo_settings(
        tmp_path, mqtt_url=broker.url, database_url=database_url, station_id=station_id
    )
    mqtt = settings.mqtt.model_copy(update={"reconnect_min_s": 0.2, "reconnect_max_s": 0.5})
    station = await start_station(settings.model_copy(update={"mqtt": mqtt}))
    try:
        app = station.app
        sessions = app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in IDS])
        app[keys.GATEWAY].remember(IDS)
        programme_id = await audio_programme(app, tmp_path, MEDIA_S, "Tin trưa", "Tin")
        lead = settings.scheduler.dispatch_lead_s
        first_at = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
        # The second starts while the broker is away: its play command (start - lead) cannot go
        # out; the clusters play it from the list they hold.
        second_at = first_at + timedelta(seconds=lead + 1)
        first = await schedule_once(sessions, programme_id, first_at, {"all": True})
        second = await schedule_once(sessions, programme_id, second_at, {"all": True})
        assert first.id is not None and second.id is not None
        await app[keys.DISPATCHER].reconcile()
        link = app[keys.LINK]
        async with SimulatedFleet(broker.url, station_id, IDS, heartbeat_s=2) as fleet:

            async def all_playing() -> bool:
                return all(c.playing is not None for c in fleet.clusters.values())

            await until_within(all_playing, timeout=20, what="clusters playing the first session")
            reconnects = link.reconnects
            await broker.stop()
            if not broker.keeps_sessions:
                for cluster in fleet.clusters.values():
                    cluster.drop_link(DOWN_S + 1.5)  # back after the station (see the top)
            await asyncio.sleep(DOWN_S)
            assert all(not c.connected for c in fleet.clusters.values())
            # While the broker was away: the first session ended, the second started.
            for cid, cluster in fleet.clusters.items():
                outcomes = [r.outcome for r in cluster.records]
                assert outcomes[0] == "finished" and outcomes[1] in ("playing", "finished"), (
                    cid,
                    list(cluster.records),
                )
            await broker.start()

            async def all_back() -> bool:
                return link.is_connected and all(c.online for c in fleet.clusters.values())

            await until_within(all_back, timeout=20, what="station and clusters back on the broker")
            assert link.reconnects > reconnects
            # A schedule made after the restart reaches the clusters: the station subscribed
            # again (its acks) and sends again.
            third_at = (datetime.now(UTC) + timedelta(seconds=lead + 2)).replace(microsecond=0)
            third = await schedule_once(sessions, programme_id, third_at, {"all": True})
            assert third.id is not None
            await app[keys.DISPATCHER].reconcile()

            async def proof_complete() -> bool:
                records = await proof(sessions)
                done = [r for r in records if r.status == PlayRecordStatus.FINISHED]
                return len(done) == 3 * len(IDS)

            await until_within(proof_complete, timeout=30, what="proof of play after the restart")
            plays = {cid: list(c.records) for cid, c in fleet.clusters.items()}
        records = await proof(sessions)
        starts: dict[str, datetime] = {}
        for record in records:
            starts.setdefault(record.session_id, record.scheduled_start)
            assert record.status == PlayRecordStatus.FINISHED, record
            assert record.skew_ms is not None and abs(record.skew_ms) < 250, record
            assert record.played_ms is not None and record.played_ms >= MEDIA_S * 1000 - 100
        assert sorted(starts.values()) == [first_at, second_at, third_at]
        for cid in IDS:  # each session played once, to its end, on every cluster
            ids = [r.session_id for r in plays[cid]]
            assert sorted(ids) == sorted(starts) and len(set(ids)) == 3, (cid, ids)
            assert all(r.outcome == "finished" for r in plays[cid]), (cid, plays[cid])
        # The station announced itself again: a newcomer reads it online.
        assert b'"online"' in await retained_station_status(broker.url, station_id)
    finally:
        await station.stop()
        await broker.stop()
