"""Emergency: command to audio start on every online cluster, p50/p99 over trials.

    python bench/emergency.py [--clusters 1000] [--trials 20] [--mqtt mqtt://127.0.0.1:1883]

Each trial starts an emergency (a relay, nothing to download) for all clusters the way the API
and upstream bulletins do (``start_emergency`` then ``poke``), and measures from that call to
the moment the last cluster started playing (the simulator's own start stamps), then stops it.
The station deliberately starts everyone together ~0.5 s after the command
(``scheduler._emergency``), so the figure is that delay plus fan-out. Goal: p99 <= 1.5 s.

Peer in the same run: a bare paho client publishing the same ``stream`` command (start now) to
every cluster's command topic, command to the last cluster's start: raw MQTT fan-out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import paho.mqtt.client as paho  # noqa: E402
from sqlmodel import select  # noqa: E402

from devices import BrokerAddress  # noqa: E402
from devices.protocol import StreamCommand, Topics, encode  # noqa: E402
from simulator import SimulatedFleet, cluster_ids  # noqa: E402
from station import _keys as keys  # noqa: E402
from station._emergency import EmergencyRequest, start_emergency, stop_emergency  # noqa: E402
from station._services import register_clusters  # noqa: E402
from station.app import start_station  # noqa: E402
from station.db import PlayRecord, PlayRecordStatus  # noqa: E402
from station.demo import demo_settings  # noqa: E402

STATION = "xa-emerg"
_ENDED = {PlayRecordStatus.INTERRUPTED, PlayRecordStatus.FINISHED, PlayRecordStatus.FAILED}
RELAY = "http://vov.example/vov1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:<40} n={len(values):<3} p50={percentile(values, 0.5):6.3f} s  "
        f"p99={percentile(values, 0.99):6.3f} s  max={max(values):6.3f} s",
        flush=True,
    )


async def wait_all(fleet: SimulatedFleet, playing: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((c.playing is not None) == playing for c in fleet.clusters.values()):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("clusters did not follow")


async def settled(sessions: Any, session_id: str, count: int, timeout: float = 10) -> None:
    """Wait until the station has recorded every cluster's end of the emergency (a quiet
    station between trials: each trial measures one emergency, not a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with sessions() as db:
            rows = await db.exec(
                select(PlayRecord.status).where(PlayRecord.session_id == session_id)
            )
            ended = sum(s in _ENDED for s in rows.all())
        if ended >= count:
            return
        await asyncio.sleep(0.2)


def last_start(fleet: SimulatedFleet, session_id: str) -> float:
    starts = [
        r.started_at
        for c in fleet.clusters.values()
        for r in c.records
        if r.session_id == session_id and r.started_at is not None
    ]
    assert len(starts) == len(fleet.clusters), "a cluster did not start"
    return max(starts).timestamp()


async def run(count: int, trials: int, mqtt_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = demo_settings(Path(tmp), mqtt_url=mqtt_url, station_id=STATION)
        station = await start_station(settings)
        try:
            app = station.app
            sessions = app[keys.SESSIONS]
            ids = cluster_ids(count, "EMG")
            await register_clusters(sessions, [(cid, cid) for cid in ids])
            app[keys.GATEWAY].remember(ids)
            async with SimulatedFleet(station.runtime.mqtt_url, STATION, ids) as fleet:
                print(f"{count} clusters online; broker {station.runtime.mqtt_url}", flush=True)
                request = EmergencyRequest({"all": True}, relay_url=RELAY, duration_s=60)
                latencies = []
                for _ in range(trials):
                    t0 = time.time()
                    session = await start_emergency(sessions, settings, request, "bench")
                    app[keys.DISPATCHER].poke()
                    await wait_all(fleet, playing=True)
                    latencies.append(last_start(fleet, session.id) - t0)
                    await stop_emergency(sessions, "bench")
                    app[keys.DISPATCHER].poke()
                    await wait_all(fleet, playing=False)
                    await settled(sessions, session.id, count)
                report("station: emergency command -> all playing", latencies)
                peer = await paho_peer(station.runtime.mqtt_url, fleet, ids, trials)
                report("peer: bare paho fan-out -> all playing", peer)
        finally:
            await station.stop()


async def paho_peer(
    mqtt_url: str, fleet: SimulatedFleet, ids: list[str], trials: int
) -> list[float]:
    address = BrokerAddress.from_url(mqtt_url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-peer")
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port)
    client.loop_start()
    topics = Topics(STATION)
    latencies = []
    try:
        for n in range(trials):
            t0 = time.time()
            now = datetime.now(UTC)
            sid = f"peer{n}"
            for cid in ids:
                command = StreamCommand(
                    id=f"{sid}.{cid}",
                    issued_at=now,
                    expires_at=now + timedelta(minutes=1),
                    session_id=sid,
                    url=RELAY,
                    until=now + timedelta(minutes=1),
                    priority=100,
                )
                client.publish(topics.cluster(cid, "cmd"), encode(command), qos=1)
            await wait_all(fleet, playing=True)
            latencies.append(last_start(fleet, sid) - t0)
            for cid in ids:
                stop = {
                    "v": 1,
                    "id": f"{sid}.{cid}.stop",
                    "issued_at": now.isoformat(),
                    "expires_at": (now + timedelta(minutes=1)).isoformat(),
                    "type": "stop",
                    "session_id": sid,
                }
                client.publish(topics.cluster(cid, "cmd"), json.dumps(stop), qos=1)
            await wait_all(fleet, playing=False)
    finally:
        client.loop_stop()
        client.disconnect()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="or 'embedded'")
    args = parser.parse_args()
    asyncio.run(run(args.clusters, args.trials, args.mqtt))


if __name__ == "__main__":
    main()
