"""A mount: one encoder fed 48 kHz mono PCM by its source, or by the fallback when the source
is dead or silent; the encoded stream fans out to HTTP listeners and sinks (MQTT, Icecast)."""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ._fanout import Batching, Fanout
from ._ogg import OggPages
from ._process import BYTES_PER_S, PAGE_SAMPLES, Child, decoder_args, encoder_args

log = logging.getLogger(__name__)

Sink = Callable[[bytes, int], Awaitable[None]]  # (encoded chunk, granule or -1)
AlertHook = Callable[[str, str, str, bool], None]  # (mount, kind, detail, raised)
TICK_S = 0.1
GAP_S = 0.5  # no source PCM for this long: fill silence (the stream never stalls)


@dataclass(frozen=True)
class MountConfig:
    codec: str = "opus"
    bitrate: str = "24k"
    listener_buffer_bytes: int = 64 * 1024
    max_skips: int = 3
    dead_after_s: float = 5.0
    silence_after_s: float = 30.0
    silence_db: float = -50.0
    fallback_file: Path | None = None  # looped while the source is dead or silent; else silence
    # HTTP listeners get the stream in batches of this much audio: one socket write per batch
    # and listener (the fan-out's CPU is per write); MQTT keeps one message per Ogg page.
    batch_ms: int = 200
    # With many listeners the batch grows (fan-out at most this many writes/s) up to the max.
    batch_max_ms: int = 600
    batch_writes_per_s: int = 2000


class Mount:
    def __init__(self, name: str, ffmpeg: str, config: MountConfig, on_alert: AlertHook) -> None:
        self.name = name
        self.ffmpeg = ffmpeg
        self.config = config
        self.fanout = Fanout(
            config.listener_buffer_bytes,
            config.max_skips,
            batching=Batching(config.batch_ms, config.batch_max_ms, config.batch_writes_per_s),
        )
        self.sinks: list[Sink] = []
        self.source = "none"
        self.state = "starting"  # waiting (no source yet) | on_source | fallback
        # Set when the mount starts stopping: its loops and its source's end at their next turn
        # even if a cancellation of theirs was lost (see ``_tasks``).
        self.stopping = False
        self._on_alert = on_alert
        self._encoder = Child(
            ffmpeg, encoder_args(config.codec, config.bitrate), f"enc-{name}", True
        )
        self._threshold = 32767 * 10 ** (config.silence_db / 20)
        now = time.monotonic()
        self._last_pcm = self._last_sound = self._last_fill = now
        self._source_seen = False
        self._alerts: set[str] = set()
        self._fallback: Child | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.bytes_encoded = 0
        self._batch: list[bytes] = []
        self._batch_started = 0
        self._kbps = int(config.bitrate.rstrip("k") or 48)

    @property
    def content_type(self) -> str:
        return "audio/mpeg" if self.config.codec == "mp3" else "audio/ogg"

    async def start(self) -> None:
        await self._encoder.start()
        self._tasks = [
            asyncio.create_task(self._read_encoder(), name=f"live-{self.name}-out"),
            asyncio.create_task(self._supervise(), name=f"live-{self.name}-watch"),
        ]

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_fallback()
        # EOF first: blocked reading its stdin, ffmpeg ignores SIGTERM (it was killed after 2 s)
        self._encoder.close_stdin()
        await self._encoder.stop()
        self.fanout.close()
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                await close()

    # ------------------------------------------------------------------ input side
    async def feed_source(self, pcm: bytes) -> None:
        """PCM from the source; aired unless the source is judged dead or silent."""
        now = time.monotonic()
        self._last_pcm = now
        self._source_seen = True
        samples = array.array("h", pcm[: len(pcm) & ~1])
        if samples and max(max(samples), -min(samples)) > self._threshold:
            self._last_sound = now
        if self._healthy(now):
            await self._write(pcm)

    async def _feed_fallback(self, pcm: bytes) -> None:
        if not self._healthy(time.monotonic()):
            await self._write(pcm)

    async def _write(self, pcm: bytes) -> None:
        self._last_fill = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self._encoder.write(pcm)

    def _healthy(self, now: float) -> bool:
        return (
            self._source_seen
            and now - self._last_pcm < self.config.dead_after_s
            and now - self._last_sound < self.config.silence_after_s
        )

    def source_lost(self) -> None:
        """The source ended (client hung up, upstream closed): judge it dead from now on."""
        self._last_pcm = min(self._last_pcm, time.monotonic() - self.config.dead_after_s)

    # ------------------------------------------------------------------ supervision
    async def _supervise(self) -> None:
        while not self.stopping:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            dead = self._source_seen and now - self._last_pcm >= self.config.dead_after_s
            silent = (
                self._source_seen
                and not dead
                and now - self._last_sound >= self.config.silence_after_s
            )
            self._alert(
                "dead", dead, f"no audio from {self.source} for {self.config.dead_after_s:g} s"
            )
            self._alert(
                "silence", silent, f"{self.source} silent below {self.config.silence_db:g} dBFS"
            )
            if self._healthy(now):
                self.state = "on_source"
                await self._stop_fallback()
                continue
            self.state = "fallback" if self._source_seen else "waiting"
            if self.config.fallback_file is not None and self._fallback is None:
                await self._start_fallback(self.config.fallback_file)
            if self._fallback is None and now - self._last_fill >= GAP_S:
                await self._fill_silence(now)

    async def _fill_silence(self, now: float) -> None:
        gap = min(now - self._last_fill, 1.0)
        await self._write(bytes(2 * math.floor(gap * BYTES_PER_S / 2)))

    def _alert(self, kind: str, active: bool, detail: str) -> None:
        if active and kind not in self._alerts:
            self._alerts.add(kind)
            self._on_alert(self.name, kind, detail, True)
        elif not active and kind in self._alerts:
            self._alerts.discard(kind)
            self._on_alert(self.name, kind, detail, False)

    async def _start_fallback(self, path: Path) -> None:
        child = Child(self.ffmpeg, decoder_args(["-re", "-stream_loop", "-1", "-i", str(path)]),
                      f"fallback-{self.name}", False)  # fmt: skip
        await child.start()
        self._fallback = child
        self._tasks.append(asyncio.create_task(self._pump(child), name=f"live-{self.name}-fb"))

    async def _pump(self, child: Child) -> None:
        while data := await child.read():
            await self._feed_fallback(data)
        if self._fallback is child:
            self._fallback = None  # a broken fallback file: silence from now on

    async def _stop_fallback(self) -> None:
        child, self._fallback = self._fallback, None
        if child is not None:
            await child.stop()

    # ------------------------------------------------------------------ output side
    async def _read_encoder(self) -> None:
        pages = OggPages() if self.config.codec == "opus" else None
        audio_started = False
        while data := await self._encoder.read():
            self.bytes_encoded += len(data)
            if pages is None:
                await self._emit(data, -1)
                continue
            for page, granule in pages.feed(data):
                if granule == 0 and not audio_started:
                    self.fanout.header += page  # for listeners joining later
                    self.fanout.publish(page)  # for those already waiting
                    continue
                audio_started = True
                await self._emit(page, granule)
        log.error("live encoder of %s ended: %s", self.name, " | ".join(self._encoder.tail))

    async def _emit(self, chunk: bytes, granule: int) -> None:
        self._batch.append(chunk)
        if granule >= 0:  # Ogg: audio in the batch from granule positions (48 kHz)
            if not self._batch_started:
                self._batch_started = granule - PAGE_SAMPLES  # the first page's own audio
            batched_ms = (granule - self._batch_started) / 48
        else:  # MP3: from the bitrate
            batched_ms = sum(map(len, self._batch)) * 8 / self._kbps
        if batched_ms >= self.fanout.batch_ms * 0.9:  # grows with the listeners (Batching)
            self.fanout.publish(b"".join(self._batch))
            self._batch.clear()
            self._batch_started = granule if granule >= 0 else 0
        for sink in self.sinks:
            try:
                await sink(chunk, granule)
            except Exception:  # one sink's failure never stops the mount (logged, counted)
                log.exception("live sink of %s failed", self.name)
