"""Where a mount's encoded stream goes besides HTTP listeners: MQTT packets and an external
Icecast server (scale-out). Neither ever makes the encoder wait."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable

from devices import MqttError, MqttLink

from ._mount import Mount
from ._process import Child
from ._tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Live over MQTT (docs/protocol.md): version, flags, seq, station time (ms since the epoch),
# duration (ms of audio in the payload), then one Ogg page (or the header pages when flags&1).
PACKET = struct.Struct(">BBIQH")
VERSION = 1
FLAG_HEADERS = 1
HEADERS_EVERY_S = 5.0


class MqttSink:
    """QoS 0, never retained: one message per Ogg page on ``loaxa/v1/<station>/live/<mount>``.

    Pages go through a short queue to one publishing task, so a slow broker link drops pages
    (counted in ``dropped``) instead of holding up the encoder and the HTTP listeners.
    ``active`` says whether to publish now (a scheduled slot with MQTT-only receivers airs the
    mount, or ``live.mqtt`` publishes every mount): an idle mount sends nothing, and the header
    pages go first whenever publishing (re)starts, so receivers can decode at once.
    ``close`` ends the publishing task in bounded time (a cancellation lost in the link's
    ``publish`` included, see ``_tasks``); it publishes nothing from then on.
    """

    QUEUE = 50  # 5 s of pages

    def __init__(
        self,
        link: MqttLink,
        topic: str,
        mount: Mount,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.link = link
        self.topic = topic
        self.mount = mount
        self.active = active
        self.seq = 0
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._granule = 0
        self._headers_at = 0.0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(self.QUEUE)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def packet(self, payload: bytes, duration_ms: int, flags: int = 0) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        header = PACKET.pack(VERSION, flags, self.seq, time.time_ns() // 1_000_000, duration_ms)
        return header + payload

    async def __call__(self, chunk: bytes, granule: int) -> None:
        if self._closed:
            return
        if not self.active():
            self._headers_at = 0.0  # headers first when it starts again
            self._granule = 0
            return
        if self._task is None:
            self._task = asyncio.create_task(self._publish(), name=f"live-mqtt-{self.mount.name}")
        now = time.monotonic()
        if now - self._headers_at >= HEADERS_EVERY_S and self.mount.fanout.header:
            self._headers_at = now
            self._put(self.packet(self.mount.fanout.header, 0, FLAG_HEADERS))
        duration = max(0, granule - self._granule) // 48 if self._granule else 0
        self._granule = granule
        self._put(self.packet(chunk, min(duration, 65535)))

    def _put(self, packet: bytes) -> None:
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _publish(self) -> None:
        # The flag, not only the cancellation, ends the loop: a cancellation that arrives as a
        # publish completes is lost in the link's wait (Python 3.11), and the queue this loop
        # would wait on next is never filled again once the mount stops.
        while not self._closed:
            packet = await self._queue.get()
            if not self.link.is_connected:
                self.failed += 1
                continue
            try:
                await self.link.publish(self.topic, packet, qos=0)
                self.sent += 1
            except MqttError:
                self.failed += 1

    async def close(self) -> None:
        """Stop publishing (bounded: see ``cancel_and_wait``). Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])


class IcecastPush:
    """Relays the encoded stream to ``icecast://source:PW@host:port/mount`` through ffmpeg
    (stream copy). A full pipe drops chunks rather than waiting; ffmpeg restarts with backoff."""

    MAX_PENDING = 256 * 1024

    def __init__(self, ffmpeg: str, url: str, mount: Mount, retry_max_s: float = 30.0) -> None:
        fmt = "mp3" if mount.config.codec == "mp3" else "ogg"
        # ffmpeg's Ogg muxer makes 1 s pages unless told: keep the mount's 100 ms pages so an
        # Icecast edge adds no second of delay and forwards as often as the station would.
        paging = ["-page_duration", "100000", "-flush_packets", "1"] if fmt == "ogg" else []
        self.args = ["-f", fmt, "-i", "pipe:0", "-c", "copy", "-content_type", mount.content_type,
                     *paging, "-f", fmt, url]  # fmt: skip
        self.ffmpeg = ffmpeg
        self.mount = mount
        self.dropped = 0
        self._child: Child | None = None
        self._next_try = 0.0
        self._delay = 1.0
        self._retry_max_s = retry_max_s

    async def __call__(self, chunk: bytes, granule: int) -> None:
        child = self._child
        if child is None or (child.proc is not None and child.proc.returncode is not None):
            if child is not None:
                await self._failed(child)
            if time.monotonic() < self._next_try:
                return
            child = self._child = Child(self.ffmpeg, self.args, f"icecast-{self.mount.name}", True)
            await child.start()
            if not child.write_nowait(self.mount.fanout.header, self.MAX_PENDING):
                return
        if not child.write_nowait(chunk, self.MAX_PENDING):
            self.dropped += 1
        else:
            self._delay = 1.0

    async def _failed(self, child: Child) -> None:
        log.warning("icecast push of %s ended: %s", self.mount.name, " | ".join(child.tail))
        await child.stop()
        self._child = None
        self._next_try = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self._retry_max_s)

    async def close(self) -> None:
        if self._child is not None:
            await self._child.stop()
