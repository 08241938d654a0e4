"""Emergency: command to audio start on every online cluster, p50/p99 over trials.

    python bench/emergency.py [--clusters 1000] [--trials 20] [--mqtt mqtt://127.0.0.1:1883]

Each trial starts an emergency (a relay of a local test radio through the station's live hub,
nothing to download) for all clusters the way the API and upstream bulletins do
(``start_emergency`` then ``poke``), and measures from that call to the moment the last cluster
started playing (the simulator's own start stamps), then stops it.
The station deliberately starts everyone together ~0.5 s after the command
(``scheduler._emergency``), so the figure is that delay plus fan-out. Goal: p99 <= 1.5 s.
A second line gives p50/p99 of every cluster's start over all trials (command to audio start
per cluster; the first line is per trial, to the last cluster).

Peer in the same run: a bare paho client (logged in as the station, its socket on the event
loop: see ``PahoPeer``) publishing the same ``stream`` command (start now) to every cluster's
command topic, command to the last cluster's start: raw MQTT fan-out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import paho.mqtt.client as paho  # noqa: E402
from aiohttp import web  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.reasoncodes import ReasonCode  # noqa: E402
from sqlmodel import select  # noqa: E402

from devices import BrokerAddress  # noqa: E402
from devices.protocol import StopCommand, StreamCommand, Topics, encode  # noqa: E402
from simulator import SimulatedFleet, cluster_ids  # noqa: E402
from station import _keys as keys  # noqa: E402
from station._emergency import EmergencyRequest, start_emergency, stop_emergency  # noqa: E402
from station._services import register_clusters  # noqa: E402
from station.app import start_station  # noqa: E402
from station.db import PlayRecord, PlayRecordStatus  # noqa: E402
from station.demo import demo_settings  # noqa: E402
from station.media import ffmpeg_executable  # noqa: E402

STATION = "xa-emerg"
_ENDED = {PlayRecordStatus.INTERRUPTED, PlayRecordStatus.FINISHED, PlayRecordStatus.FAILED}


class Radio:
    """A local upstream for the relay: an endless Ogg/Opus tone (a name that does not resolve
    would only test the hub's retries)."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.canned_url = ""
        self._canned = b""

    async def stream(self, request: web.Request) -> web.StreamResponse:
        proc = await asyncio.create_subprocess_exec(
            ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
            "-i", "sine=frequency=500", "-c:a", "libopus", "-b:a", "24k", "-f", "ogg", "pipe:1",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        response = web.StreamResponse(headers={"Content-Type": "audio/ogg"})
        await response.prepare(request)
        try:
            while data := await proc.stdout.read(4096):
                await response.write(data)
        except ConnectionError:
            pass
        finally:
            proc.kill()
            await proc.wait()
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/radio", self.stream)
        app.router.add_get("/canned", self.canned)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.url = f"{base}/radio"
        self.canned_url = f"{base}/canned"  # the peer's: one encode shared by 1,000 clusters
        proc = await asyncio.create_subprocess_exec(
            ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", "sine=frequency=500:duration=30", "-c:a", "libopus", "-b:a", "24k",
            "-f", "ogg", "pipe:1",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self._canned, _ = await proc.communicate()

    async def canned(self, request: web.Request) -> web.StreamResponse:
        """The same tone from memory at about real time (no encoder per listener)."""
        response = web.StreamResponse(headers={"Content-Type": "audio/ogg"})
        await response.prepare(request)
        step = 3000  # 24 kbit/s = 3,000 bytes/s
        try:
            for at in range(0, len(self._canned), step):
                await response.write(self._canned[at : at + step])
                await asyncio.sleep(1.0)
        except ConnectionError:
            pass
        return response

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:<40} n={len(values):<5} p50={percentile(values, 0.5):6.3f} s  "
        f"p99={percentile(values, 0.99):6.3f} s  max={max(values):6.3f} s",
        flush=True,
    )


async def wait_all(fleet: SimulatedFleet, playing: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((c.playing is not None) == playing for c in fleet.clusters.values()):
            return
        await asyncio.sleep(0.01)
    behind = [cid for cid, c in fleet.clusters.items() if (c.playing is not None) != playing]
    raise TimeoutError(f"{len(behind)} clusters did not follow (e.g. {behind[:3]})")


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


def starts_of(fleet: SimulatedFleet, session_id: str) -> list[float]:
    """Every cluster's audio start (the simulator's own stamp) of one session."""
    starts = [
        r.started_at.timestamp()
        for c in fleet.clusters.values()
        for r in c.records
        if r.session_id == session_id and r.started_at is not None
    ]
    assert len(starts) == len(fleet.clusters), "a cluster did not start"
    return starts


def last_start(fleet: SimulatedFleet, session_id: str) -> float:
    return max(starts_of(fleet, session_id))


async def run(count: int, trials: int, mqtt_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = demo_settings(Path(tmp), mqtt_url=mqtt_url, station_id=STATION)
        station = await start_station(settings)
        radio = Radio()
        await radio.start()
        try:
            app = station.app
            sessions = app[keys.SESSIONS]
            ids = cluster_ids(count, "EMG")
            await register_clusters(sessions, [(cid, cid) for cid in ids])
            app[keys.GATEWAY].remember(ids)
            async with SimulatedFleet(station.runtime.mqtt_url, STATION, ids) as fleet:
                print(f"{count} clusters online; broker {station.runtime.mqtt_url}", flush=True)
                request = EmergencyRequest({"all": True}, relay_url=radio.url, duration_s=60)
                latencies: list[float] = []
                each: list[float] = []  # every cluster's start, all trials
                for n in range(trials):
                    t0 = time.time()
                    session = await start_emergency(sessions, settings, request, "bench")
                    app[keys.DISPATCHER].poke()
                    await wait_all(fleet, playing=True)
                    starts = starts_of(fleet, session.id)
                    latencies.append(max(starts) - t0)
                    each += [s - t0 for s in starts]
                    print(f"trial {n + 1}/{trials}: {latencies[-1]:.3f} s", flush=True)
                    await stop_emergency(sessions, "bench")
                    app[keys.DISPATCHER].poke()
                    await wait_all(fleet, playing=False)
                    await settled(sessions, session.id, count)
                report("station: emergency command -> all playing", latencies)
                report("station: emergency command -> each cluster", each)
                # The station's own login: see PahoPeer.
                address = app[keys.LINK].address
                peer = await paho_peer(address, fleet, ids, trials, radio.canned_url)
                report("peer: bare paho fan-out -> all playing", peer)
        finally:
            await station.stop()
            await radio.stop()


class PahoPeer:
    """A bare paho client driven by the event loop (its socket on epoll): raw MQTT fan-out.

    Why it failed at 1,000 clusters: it ran paho's own network thread (``loop_start``), whose
    ``select()`` cannot watch a descriptor above 1023 (FD_SETSIZE). The station, its 1,000
    simulated clusters and their streams share this process, so the peer's socket got a
    descriptor above 1023: paho took every ``select()`` error for a lost connection (the broker
    logs the peer "connected" and a second later "closed its connection"), reconnected for ever,
    and its queued commands never went out; at 100 clusters the descriptor stays low. Driven by
    the loop like the station's own link (``add_reader``/``add_writer``, ``loop_misc`` every
    second) there is no such limit.

    It also logs in as the station (the link's own address and login): a broker with an ACL,
    as the embedded one is, lets only the station user publish on ``cmd`` topics and drops an
    anonymous client's commands after acking them, so no cluster would hear it. Its client id
    and session ids are unique (a second run on the same broker would take a fixed id over,
    and a cluster never runs a command id twice), it publishes only after the broker accepted
    the login, and it counts the PUBACKs, so a failed trial says where the commands were lost.
    """

    def __init__(self, address: BrokerAddress, inflight: int) -> None:
        self.address = address
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-peer-{uuid.uuid4().hex[:8]}"
        )
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        if address.tls:
            self.client.tls_set(ca_certs=address.ca_file)
        self.client.max_inflight_messages_set(inflight)  # the whole fan-out in flight at once
        self.client.max_queued_messages_set(0)
        self.infos: list[paho.MQTTMessageInfo] = []
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        # paho calls these from whichever thread runs it (connect() runs in a worker thread):
        # the loop's add_reader/add_writer are only safe on the loop's own thread.
        self.client.on_socket_open = lambda c, u, sock: self._hop(self._opened, sock)
        self.client.on_socket_close = lambda c, u, sock: self._hop(self._closed, sock)
        self.client.on_socket_register_write = lambda c, u, sock: self._hop(self._want, sock)
        self.client.on_socket_unregister_write = lambda c, u, sock: self._hop(self._wrote, sock)
        self._misc: asyncio.Task[None] | None = None

    def _hop(self, fn: Any, sock: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(sock.fileno())  # at once: paho closes a socket right after telling us
        else:
            self.loop.call_soon_threadsafe(fn, sock.fileno())

    def _opened(self, fd: int) -> None:
        self.loop.add_reader(fd, self.client.loop_read)

    def _closed(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)

    def _want(self, fd: int) -> None:
        self.loop.add_writer(fd, self.client.loop_write)

    def _wrote(self, fd: int) -> None:
        self.loop.remove_writer(fd)

    async def _misc_loop(self) -> None:
        """Keepalive pings and retries, as ``loop_start``'s thread would do them."""
        while True:
            await asyncio.sleep(1.0)
            if self.client.loop_misc() != paho.MQTT_ERR_SUCCESS:
                return  # disconnected: the trial waiting on it times out and says so

    async def connect(self, timeout: float = 10.0) -> None:
        accepted: asyncio.Future[ReasonCode] = self.loop.create_future()

        def on_connect(
            client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
        ) -> None:
            if not accepted.done():  # on the loop thread: loop_read runs there
                accepted.set_result(reason)

        self.client.on_connect = on_connect
        # paho's connect() blocks (TCP): off the loop the fleet and the station share.
        await asyncio.to_thread(self.client.connect, self.address.host, self.address.port)
        self._misc = asyncio.create_task(self._misc_loop(), name="bench-peer-misc")
        reason = await asyncio.wait_for(accepted, timeout)
        if reason.is_failure:
            raise RuntimeError(f"peer: the broker refused the login: {reason}")

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"peer: publish to {topic} failed: {paho.error_string(info.rc)}")
        self.infos.append(info)

    def acked(self) -> str:
        done = sum(i.is_published() for i in self.infos)
        return f"{done}/{len(self.infos)} publishes acknowledged by the broker"

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.sleep(0.1)  # the DISCONNECT written by loop_write
        if self._misc is not None:
            self._misc.cancel()
            await asyncio.gather(self._misc, return_exceptions=True)


async def paho_peer(
    address: BrokerAddress, fleet: SimulatedFleet, ids: list[str], trials: int, url: str
) -> list[float]:
    peer = PahoPeer(address, len(ids))
    topics = Topics(STATION)
    latencies = []
    try:
        await peer.connect()
        for n in range(trials):
            t0 = time.time()
            now = datetime.now(UTC)
            sid = f"peer{n}-{uuid.uuid4().hex[:6]}"  # never a session a cluster has seen
            for cid in ids:
                command = StreamCommand(
                    id=f"{sid}.{cid}",
                    issued_at=now,
                    expires_at=now + timedelta(minutes=1),
                    session_id=sid,
                    url=url,  # the same tone, served from memory
                    until=now + timedelta(minutes=1),
                    priority=100,
                )
                peer.publish(topics.cluster(cid, "cmd"), encode(command))
            await peer_wait(fleet, peer, sid, playing=True)
            latencies.append(last_start(fleet, sid) - t0)
            now = datetime.now(UTC)
            for cid in ids:
                stop = StopCommand(
                    id=f"{sid}.{cid}.stop",
                    issued_at=now,
                    expires_at=now + timedelta(minutes=1),
                    session_id=sid,
                )
                peer.publish(topics.cluster(cid, "cmd"), encode(stop))
            await peer_wait(fleet, peer, sid, playing=False)
    finally:
        await peer.close()
    return latencies


async def peer_wait(fleet: SimulatedFleet, peer: PahoPeer, sid: str, playing: bool) -> None:
    try:
        await wait_all(fleet, playing)
    except TimeoutError as exc:
        heard = sum(any(r.session_id == sid for r in c.records) for c in fleet.clusters.values())
        raise TimeoutError(f"peer {sid}: {exc}; {peer.acked()}; {heard} clusters heard it") from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="or 'embedded'")
    args = parser.parse_args()
    asyncio.run(run(args.clusters, args.trials, args.mqtt))


if __name__ == "__main__":
    main()
