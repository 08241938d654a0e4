"""One simulated loudspeaker cluster: a device that only knows the wire protocol.

Its clock is ``time.time() + clock_offset``: it waits for ``start_at`` on that clock and reports
every time on it, together with ``clock_offset_ms`` (as if an NTP check had measured the offset),
so fault tests can skew one cluster and watch the station notice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from devices.protocol import (
    Capabilities,
    Event,
    FaultCode,
    Heartbeat,
    PowerSpec,
    PowerTarget,
    Status,
    Topics,
    encode,
)

from ._commands import CommandHandler
from ._driver import MqttDriver, Will
from ._link import MqttLink
from ._media import MediaCache
from ._outputs import Outputs, PowerSwitch
from ._player import Player
from ._records import ClusterCounters, PlayRecord
from ._url import BrokerUrl

log = logging.getLogger(__name__)

FIRMWARE = "sim-1.0"
MODEL = "loaxa-sim"
DEFAULT_CACHE_BYTES = 2_000_000_000
Codec = Literal["opus", "mp3"]
LiveTransport = Literal["http", "mqtt"]


class SimulatedCluster:
    """A loudspeaker cluster; made by ``SimulatedFleet``, which shares driver and HTTP session.

    Fault hooks: ``drop_link``, ``power_loss``/``power_on``, ``reboot``, ``set_clock_offset``,
    ``raise_fault``/``clear_fault``. State to assert on: ``counters``, ``records``, ``cache``,
    ``online``, ``playing``, ``volume``, ``heartbeat_s``, ``power`` (and ``power_history``),
    ``faults``. A bridge switches its outputs for held sessions itself (``SessionSpec.power``,
    ``simulator._outputs``), link up or down.
    """

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
        codecs: Sequence[Codec] = ("opus", "mp3"),
        outputs: Sequence[PowerTarget] = ("amplifier",),
        bridged: Sequence[str] = (),
        cache_bytes: int | None = DEFAULT_CACHE_BYTES,
        reboot_s: float = 1.0,
        live: Sequence[LiveTransport] = ("http", "mqtt"),
    ) -> None:
        self.cluster_id = cluster_id
        self.codecs: list[Codec] = list(codecs)
        self.live: list[LiveTransport] = list(live)  # stream transports it takes (birth)
        self.outputs: list[PowerTarget] = list(outputs)
        self.bridged = list(bridged)  # legacy FM/wired clusters behind this bridge
        self.faults: list[FaultCode] = []  # active, in the order raised
        self.volume = 80
        self.heartbeat_s = heartbeat_s
        self.counters = ClusterCounters()
        self._reboot_s = reboot_s
        self._topics = Topics(station_id)
        self._clock_offset_ms = clock_offset_ms
        self._booted = time.monotonic()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._player = Player(
            cluster_id,
            http=http,
            emit=self._emit,
            now=self.now,
            offset_ms=lambda: self._clock_offset_ms,
            counters=self.counters,
            speed=speed,
            cache_bytes=cache_bytes,
            listen_live=self._listen_live,
            ended=lambda session_id: self._outputs.release(session_id),
            outputs_on=lambda: self._outputs.on if self.outputs else None,
        )
        self._outputs = Outputs(
            self.outputs,
            now=self.now,
            link_up=lambda: self._link.ready,
            playing=lambda: self._player.playing is not None,
            warm_up=self._player.warm_up,
        )
        self._live: dict[str, Callable[[bytes], None]] = {}  # MQTT live topic -> packet sink
        self._boot_bytes = 0  # bytes_downloaded at the last boot (the heartbeat counts from it)
        self._commands = CommandHandler(self, self._player, self._send_ack)
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
    def power(self) -> dict[PowerTarget, tuple[bool, list[str]]]:
        """Each output's last switch: target -> (on, zone codes)."""
        return self._outputs.state

    @property
    def power_history(self) -> list[PowerSwitch]:
        """Every switch on or off, oldest first, by the station or by a held session."""
        return self._outputs.history

    def switch_power(
        self, target: PowerTarget, on: bool, warmup_s: float, codes: list[str]
    ) -> None:
        """The station's ``power`` command for an output this cluster has."""
        self._outputs.command(target, on, warmup_s, codes)

    def hold_power(self, session_id: str, start_at: datetime, specs: list[PowerSpec]) -> None:
        """A held session's ``power``: switched by the cluster itself (``simulator._outputs``)."""
        self._outputs.hold(session_id, start_at, specs)

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
        tasks = [*self._tasks, *([self._heartbeat_task] if self._heartbeat_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._player.aclose()
        self._outputs.close()

    def drop_link(self, seconds: float) -> None:
        """Cut the connection abruptly (the broker publishes the will); reconnect after ``seconds``.

        Sessions go on playing meanwhile; their events are sent after the reconnect.
        """
        self._link.drop(seconds)

    def power_loss(self) -> None:
        """Abrupt close and no reconnect; sessions vanish silently. ``power_on()`` boots again.

        The media cache (flash) and the ids of handled commands survive.
        """
        self._link.drop(None)
        self._player.vanish()

    def power_on(self) -> None:
        self._boot()
        self._link.resume()

    def set_clock_offset(self, ms: int) -> None:
        self._clock_offset_ms = ms

    def reboot(self) -> None:
        """Restart after a moment (the ack goes out first): the link drops abruptly, sessions
        vanish, and it comes back with a birth after ``reboot_s``, counters from zero."""
        self._spawn(self._reboot())

    def raise_fault(self, fault: FaultCode, detail: str | None = None) -> None:
        """A hardware fault appears: ``fault_raised`` now, listed in heartbeats until cleared."""
        if fault not in self.faults:
            self.faults.append(fault)
            self._fault_event("fault_raised", fault, detail)

    def clear_fault(self, fault: FaultCode, detail: str | None = None) -> None:
        if fault in self.faults:
            self.faults.remove(fault)
            self._fault_event("fault_cleared", fault, detail)

    def _fault_event(
        self, type_: Literal["fault_raised", "fault_cleared"], fault: FaultCode, detail: str | None
    ) -> None:
        now = self.now()
        self._emit(
            Event(cluster_id=self.cluster_id, type=type_, ts=now, fault=fault, detail=detail)
        )

    def _boot(self) -> None:
        self._booted = time.monotonic()
        self._boot_bytes = self.cache.bytes_downloaded

    # -- MQTT ----------------------------------------------------------------------------------

    async def _announce(self) -> None:
        """After every (re)connect: subscribe to commands, then retained birth."""
        await self._link.subscribe(self._topic("cmd"), qos=1)
        for topic in list(self._live):  # a live stream that was playing when the link dropped
            await self._link.subscribe(topic, qos=0)
        birth = Status(
            cluster_id=self.cluster_id,
            state="online",
            ts=self.now(),
            firmware=FIRMWARE,
            model=MODEL,
            capabilities=Capabilities(
                codecs=self.codecs,
                cache_bytes=self.cache.capacity,
                live=self.live,
                outputs=self.outputs,
                bridged=self.bridged,
                store_and_forward=True,
                scheduled_power=bool(self.outputs),
            ),
        )
        await self._link.publish(self._topic("status"), encode(birth), qos=1, retain=True)

    async def _heartbeat_loop(self) -> None:
        await asyncio.sleep(random.uniform(0, self.heartbeat_s))  # spread a fleet's heartbeats
        while True:
            if self._link.ready:
                self._link.publish_nowait(self._topic("heartbeat"), encode(self._heartbeat()))
            await asyncio.sleep(self.heartbeat_s)

    def _heartbeat(self) -> Heartbeat:
        state, session_id = self._player.state()
        return Heartbeat(
            cluster_id=self.cluster_id,
            ts=self.now(),
            state=state,
            session_id=session_id,
            volume=self.volume,
            uptime_s=int(time.monotonic() - self._booted),
            clock_offset_ms=self._clock_offset_ms,
            bytes_downloaded=self.cache.bytes_downloaded - self._boot_bytes,
            free_cache_bytes=self.cache.free_bytes,
            faults=list(self.faults),
            firmware=FIRMWARE,
            interval_s=max(1, round(self.heartbeat_s)),
            upcoming_sessions=self._player.upcoming,
            outputs_on=self._outputs.on if self.outputs else None,
        )

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self._topic("cmd"):
            self._commands.handle(payload)
        elif (sink := self._live.get(topic)) is not None:
            sink(payload)

    async def _listen_live(self, topic: str, sink: Callable[[bytes], None]) -> None:
        """An MQTT stream: subscribed while it plays (again after a reconnect), QoS 0."""
        self._live[topic] = sink
        try:
            if self._link.ready:
                await self._link.subscribe(topic, qos=0)
            await asyncio.Event().wait()
        finally:
            self._live.pop(topic, None)
            self._link.unsubscribe_nowait(topic)

    def _send_ack(self, payload: bytes) -> None:
        self._link.publish_nowait(self._topic("ack"), payload, qos=1)

    async def _reboot(self) -> None:
        await asyncio.sleep(0.05)  # the ack goes out first
        self._player.vanish()
        self._link.drop(self._reboot_s)
        self._boot()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"cluster-{self.cluster_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit(self, event: Event) -> None:
        self._link.publish_nowait(self._topic("event"), encode(event), qos=1)
