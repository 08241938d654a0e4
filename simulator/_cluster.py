"""One simulated loudspeaker cluster: a device that only knows the wire protocol.

Its clock is ``time.time() + clock_offset``: it waits for ``start_at`` on that clock and reports
every time on it, together with ``clock_offset_ms`` (as if an NTP check had measured the offset),
so fault tests can skew one cluster and watch the station notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict, deque
from datetime import UTC, datetime
from typing import Literal

import aiohttp

from devices.protocol import (
    Ack,
    Capabilities,
    Command,
    Event,
    Heartbeat,
    NackCode,
    PlayCommand,
    ProtocolError,
    Status,
    Topics,
    decode_command,
    encode,
)

from ._driver import MqttDriver, Will
from ._link import MqttLink
from ._media import MediaCache
from ._player import Player
from ._records import ClusterCounters, PlayRecord
from ._url import BrokerUrl

log = logging.getLogger(__name__)

FIRMWARE = "sim-1.0"
MODEL = "loaxa-sim"
_SEEN_COMMANDS = 256


class SimulatedCluster:
    """A loudspeaker cluster; made by ``SimulatedFleet``, which shares driver and HTTP session."""

    def __init__(
        self,
        cluster_id: str,
        station_id: str,
        *,
        broker: BrokerUrl,
        driver: MqttDriver,
        http: aiohttp.ClientSession,
        speed: float = 1.0,
        heartbeat_s: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        clock_offset_ms: int = 0,
        keepalive: int = 60,
    ) -> None:
        self.cluster_id = cluster_id
        self._topics = Topics(station_id)
        self._heartbeat_s = heartbeat_s
        self._clock_offset_ms = clock_offset_ms
        self._volume = 80
        self._booted = time.monotonic()
        self.counters = ClusterCounters()
        self._seen: OrderedDict[str, bytes] = OrderedDict()  # command id -> ack sent (LRU)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._player = Player(
            cluster_id,
            http=http,
            emit=self._emit,
            now=self.now,
            offset_ms=lambda: self._clock_offset_ms,
            counters=self.counters,
            speed=speed,
        )
        offline = encode(Status(cluster_id=cluster_id, state="offline"))
        self._link = MqttLink(
            driver,
            broker,
            f"loaxa-{station_id}-{cluster_id}",
            will=Will(self._topic("status"), offline, qos=1, retain=True),
            on_message=self._on_message,
            on_ready=self._announce,
            username=username,
            password=password,
            keepalive=keepalive,
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def online(self) -> bool:
        """Connected, subscribed and birth acknowledged by the broker."""
        return self._link.ready

    @property
    def connects(self) -> int:
        return self._link.connects

    @property
    def playing(self) -> str | None:
        """Session id playing now."""
        return self._player.playing

    @property
    def cache(self) -> MediaCache:
        return self._player.cache

    @property
    def records(self) -> deque[PlayRecord]:
        """Play sessions, oldest first (the latest 1,000)."""
        return self._player.records

    @property
    def clock_offset_ms(self) -> int:
        return self._clock_offset_ms

    def now(self) -> datetime:
        """The cluster's own clock."""
        return datetime.fromtimestamp(time.time() + self._clock_offset_ms / 1000, UTC)

    def _topic(self, channel: Literal["status", "heartbeat", "cmd", "ack", "event"]) -> str:
        return self._topics.cluster(self.cluster_id, channel)

    # -- lifecycle and fault hooks -------------------------------------------------------------

    def start(self) -> None:
        self._link.start()
        self._heartbeat_task = asyncio.get_running_loop().create_task(
            self._heartbeat_loop(), name=f"heartbeat-{self.cluster_id}"
        )

    async def wait_online(self) -> None:
        await self._link.wait_ready()

    async def stop(self) -> None:
        """Deliberate shutdown: interrupt sessions, retained ``offline``, clean DISCONNECT."""
        self._player.interrupt_all("shutdown")
        if self._link.ready:
            offline = Status(cluster_id=self.cluster_id, state="offline", ts=self.now())
            try:
                await self._link.publish(self._topic("status"), encode(offline), retain=True)
            except (OSError, TimeoutError) as exc:
                log.warning("%s: offline status not acknowledged: %s", self.cluster_id, exc)
        await self._link.close()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        await self._player.aclose()

    def drop_link(self, seconds: float) -> None:
        """Cut the connection abruptly (the broker publishes the will); reconnect after ``seconds``.

        Sessions go on playing meanwhile; their events are sent after the reconnect.
        """
        self._link.drop(seconds)

    def power_loss(self) -> None:
        """Abrupt close and no reconnect; sessions vanish silently. ``power_on()`` boots again."""
        self._link.drop(None)
        self._player.vanish()
        self._seen.clear()

    def power_on(self) -> None:
        self._booted = time.monotonic()
        self._link.resume()

    def set_clock_offset(self, ms: int) -> None:
        self._clock_offset_ms = ms

    # -- MQTT ----------------------------------------------------------------------------------

    async def _announce(self) -> None:
        """After every (re)connect: subscribe to commands, then retained birth."""
        await self._link.subscribe(self._topic("cmd"), qos=1)
        birth = Status(
            cluster_id=self.cluster_id,
            state="online",
            ts=self.now(),
            firmware=FIRMWARE,
            model=MODEL,
            capabilities=Capabilities(codecs=["opus", "mp3"]),
        )
        await self._link.publish(self._topic("status"), encode(birth), qos=1, retain=True)

    async def _heartbeat_loop(self) -> None:
        await asyncio.sleep(random.uniform(0, self._heartbeat_s))  # spread a fleet's heartbeats
        while True:
            if self._link.ready:
                self._link.publish_nowait(self._topic("heartbeat"), encode(self._heartbeat()))
            await asyncio.sleep(self._heartbeat_s)

    def _heartbeat(self) -> Heartbeat:
        state, session_id = self._player.state()
        return Heartbeat(
            cluster_id=self.cluster_id,
            ts=self.now(),
            state=state,
            session_id=session_id,
            volume=self._volume,
            uptime_s=int(time.monotonic() - self._booted),
            clock_offset_ms=self._clock_offset_ms,
            bytes_downloaded=self.cache.bytes_downloaded,
        )

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic != self._topic("cmd"):
            return
        try:
            cmd = decode_command(payload)
        except ProtocolError as exc:
            self.counters.malformed += 1
            log.info("%s: malformed command dropped (%s)", self.cluster_id, exc.reason)
            return
        self.counters.commands += 1
        known = self._seen.get(cmd.id)
        if known is not None:  # a redelivery: same answer, never run twice
            self.counters.duplicates += 1
            self._seen.move_to_end(cmd.id)
            self._link.publish_nowait(self._topic("ack"), known, qos=1)
            return
        if cmd.expires_at < self.now():
            self.counters.expired += 1
            ack = self._ack(cmd, ok=False, code="expired")
        else:
            ack = self._execute(cmd)
        payload_out = encode(ack)
        self._seen[cmd.id] = payload_out
        if len(self._seen) > _SEEN_COMMANDS:
            self._seen.popitem(last=False)
        self._link.publish_nowait(self._topic("ack"), payload_out, qos=1)

    def _ack(
        self, cmd: Command, *, ok: bool, code: NackCode | None = None, detail: str | None = None
    ) -> Ack:
        return Ack(
            cluster_id=self.cluster_id,
            cmd_id=cmd.id,
            ok=ok,
            code=code,
            detail=detail,
            ts=self.now(),
        )

    def _execute(self, cmd: Command) -> Ack:
        if isinstance(cmd, PlayCommand):
            if cmd.volume is not None:
                self._volume = cmd.volume
            if not self._player.schedule(cmd):
                return self._ack(cmd, ok=True, detail="session already scheduled")
            return self._ack(cmd, ok=True)
        self._player.stop(cmd.session_id)
        return self._ack(cmd, ok=True)

    def _emit(self, event: Event) -> None:
        self._link.publish_nowait(self._topic("event"), encode(event), qos=1)
