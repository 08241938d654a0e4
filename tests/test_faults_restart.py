"""The station SIGKILLed mid-broadcast and restarted.

What the user would check: the clusters keep playing what they started, every session is
played on time or recorded why not, nothing is played twice, and proof of play is complete
once the station (or the broker) is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import select

from devices import EmbeddedBroker, TopicPolicy, hash_password, station_username
from simulator import SimulatedFleet
from station import _keys as keys
from station._services import (
    Sessions,
    register_clusters,
    schedule_once,
)
from station.app import start_station
from station.db import PlayRecord, PlayRecordStatus, create_engine_for, session_factory
from station.demo import demo_settings
from tests.playout_support import audio_programme, until_within

TEST_MQTT_URL = os.environ.get("LOAXA_TEST_MQTT_URL", "")
REPO = Path(__file__).resolve().parents[1]
IDS = ["K1", "K2", "K3"]
SPEED = 1.0
_SERVE = "import sys; from station.cli import main; sys.exit(main(sys.argv[1:]))"


def login_broker(station_id: str) -> tuple[EmbeddedBroker, str]:
    """Our own broker where the station logs in (amqtt keeps no persistent session for
    anonymous clients) and the simulated clusters may stay anonymous."""
    user, password = station_username(station_id), "s3cret-for-tests"
    policy = TopicPolicy(
        station_id=station_id,
        station_user=user,
        station_password_hash=hash_password(password),
        credentials=lambda _cluster_id: None,
        allow_anonymous=True,
    )
    return EmbeddedBroker("127.0.0.1", 0, policy=policy), f"mqtt://%7E{station_id}:{password}@"


async def prepare(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, seconds: float
) -> tuple[dict[str, Any], int]:
    """Clusters, a media item and a programme in the database; the config to serve it."""
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    try:
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [(cid, cid) for cid in IDS])
        programme_id = await audio_programme(station.app, tmp_path, seconds, "Tin trưa", "Tin")
    finally:
        await station.stop()
    config = {
        "station": {"id": station_id, "name": "Đài xã (thử lỗi)"},
        "database": {"url": settings.database.url},
        "mqtt": {"url": mqtt_url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "http": {"host": "127.0.0.1", "port": 0},
        "media": {"dir": str(tmp_path / "media")},
        "scheduler": {"dispatch_lead_s": 3.0},
        "devices": {"allow_anonymous": True},
        "logging": {"level": "WARNING"},
    }
    return config, programme_id


class StationProcess:
    """``loaxa serve -c config`` in a child process; its HTTP base URL read from stdout."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOAXA_")}
        env["PYTHONPATH"] = str(REPO)  # this checkout, whatever is installed
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _SERVE,
                "serve",
                "-c",
                str(self.config),
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
            )
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            while "serving on " not in (line := (await self.proc.stdout.readline()).decode()):
                if not line:
                    raise AssertionError(f"station exited: {self.log.read_text()[-2000:]}")
        self.base_url = line.split("serving on ", 1)[1].split()[0]
        assert self.base_url.startswith("http://127.0.0.1:")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL
        self.proc = None

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None


async def proof(sessions: Sessions) -> list[PlayRecord]:
    async with sessions() as db:
        return list((await db.exec(select(PlayRecord))).all())


def assert_proof_complete(records: list[PlayRecord], schedules: list[int]) -> None:
    """Every cluster has one finished, on-time record per session (one per schedule)."""
    by = {(r.session_id, r.cluster_id): r for r in records}
    assert len(by) == len(records) == len(IDS) * len(schedules), records
    for sid in {r.session_id for r in records}:
        for cid in IDS:
            record = by[(sid, cid)]
            assert record.status == PlayRecordStatus.FINISHED, record
            assert record.skew_ms is not None and abs(record.skew_ms) < 250, record


def finished_sessions(fleet: SimulatedFleet) -> dict[str, list[str]]:
    return {
        cid: [r.session_id for r in recs if r.outcome == "finished"]
        for cid, recs in fleet.records().items()
    }


def assert_each_played_once(fleet: SimulatedFleet, sessions_per_cluster: int) -> None:
    for cid, recs in fleet.records().items():
        ids = [r.session_id for r in recs]
        assert len(ids) == len(set(ids)) == sessions_per_cluster, (cid, ids)
        assert all(r.outcome == "finished" for r in recs), (cid, recs)


@pytest.mark.slow_first  # ~40-120 s: started first, not the pass's tail
async def test_station_sigkilled_mid_broadcast_and_restarted(
    tmp_path: Path, database_url: str, station_id: str
) -> None:
    broker, login = (None, "") if TEST_MQTT_URL else login_broker(station_id)
    if broker is not None:
        await broker.start()
    mqtt_url = broker.url.replace("mqtt://", login, 1) if broker else TEST_MQTT_URL
    config, programme_id = await prepare(tmp_path, mqtt_url, database_url, station_id, 5.0)
    fleet_url = broker.url if broker else TEST_MQTT_URL
    config_path = tmp_path / "station.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    engine = create_engine_for(config["database"]["url"])
    sessions = session_factory(engine)
    station = StationProcess(config_path, tmp_path / "station.log")
    try:
        first_at = datetime.now(UTC) + timedelta(seconds=15)
        first = await schedule_once(sessions, programme_id, first_at, {"all": True})
        second_at = first_at + timedelta(seconds=20)
        second = await schedule_once(sessions, programme_id, second_at, {"all": True})
        assert first.id is not None and second.id is not None
        await station.start()
        async with SimulatedFleet(fleet_url, station_id, IDS, speed=SPEED, heartbeat_s=2) as fleet:

            async def all_playing() -> bool:
                return all(c.playing is not None for c in fleet.clusters.values())

            await until_within(all_playing, timeout=45, what="clusters playing the first session")
            await station.kill()  # mid-broadcast, no goodbye

            async def all_finished() -> bool:
                return all(len(s) == 1 for s in finished_sessions(fleet).values())

            # The clusters finish what they started on their own.
            await until_within(
                all_finished, timeout=30, what="clusters finishing without the station"
            )
            await station.start()

            async def proof_complete() -> bool:
                records = await proof(sessions)
                done = [r for r in records if r.status == PlayRecordStatus.FINISHED]
                return len(done) == 2 * len(IDS)

            await until_within(proof_complete, timeout=60, what="proof of play after the restart")
            assert_proof_complete(await proof(sessions), [first.id, second.id])
            assert_each_played_once(fleet, 2)
    finally:
        await station.stop()
        await engine.dispose()
        if broker is not None:
            await broker.stop()
