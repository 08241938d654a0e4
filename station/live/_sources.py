"""Sources of a mount: a local device (ffmpeg reads it), a relayed upstream (the station fetches
once) and pushed bytes (Icecast source clients, the browser microphone) decoded to PCM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from ._mount import Mount
from ._process import Child, decoder_args

log = logging.getLogger(__name__)

AUDIO_TYPES = ("audio/", "application/ogg", "application/octet-stream", "video/webm")
AlertHook = Callable[[str, str, str, bool], None]


def device_input(spec: str) -> list[str]:
    """ffmpeg input arguments for ``alsa:DEV``, ``pulse:DEV`` or ``lavfi:GRAPH`` (tests, tones)."""
    kind, _, name = spec.partition(":")
    if kind in ("alsa", "pulse") and name:
        return ["-f", kind, "-i", name]
    if kind == "lavfi" and name:
        return ["-re", "-f", "lavfi", "-i", name]
    raise ValueError(f"unknown device source {spec!r}: use alsa:DEV, pulse:DEV or lavfi:GRAPH")


async def pump(child: Child, mount: Mount) -> None:
    """Decoder PCM into the mount until the decoder ends."""
    while data := await child.read():
        await mount.feed_source(data)
    mount.source_lost()


async def run_device(mount: Mount, spec: str, retry_min_s: float, retry_max_s: float) -> None:
    """Read a device forever; an ended ffmpeg (device unplugged, busy) is restarted with backoff."""
    args = decoder_args(device_input(spec))
    delay = retry_min_s
    while not mount.stopping:
        child = Child(mount.ffmpeg, args, f"dev-{mount.name}", False)
        await child.start()
        try:
            await pump(child, mount)
        finally:
            await child.stop()
        log.warning("live source %s ended: %s", spec, " | ".join(child.tail))
        await asyncio.sleep(delay)
        delay = min(delay * 2, retry_max_s)


class NotAudio(Exception):
    pass


async def run_relay(
    mount: Mount, url: str, on_alert: AlertHook, retry_min_s: float, retry_max_s: float
) -> None:
    """Fetch ``url`` once for everyone; reconnect with backoff; refuse what is not audio."""
    delay = retry_min_s
    timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=mount.config.dead_after_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while not mount.stopping:
            try:
                got_audio = await _relay_once(mount, http, url, on_alert)
            except (aiohttp.ClientError, TimeoutError, NotAudio) as exc:
                log.warning("relay %s for %s: %s", url, mount.name, exc)
                got_audio = False
            mount.source_lost()
            if got_audio:
                delay = retry_min_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_s)


async def _relay_once(
    mount: Mount, http: aiohttp.ClientSession, url: str, on_alert: AlertHook
) -> bool:
    async with http.get(url, headers={"Icy-MetaData": "0"}) as response:
        response.raise_for_status()
        kind = response.headers.get("Content-Type", "").lower()
        if not kind.startswith(AUDIO_TYPES):
            on_alert(mount.name, "not_audio", f"upstream sent {kind or 'no content type'}", True)
            raise NotAudio(f"not audio: {kind!r}")
        on_alert(mount.name, "not_audio", "", False)
        child = Child(mount.ffmpeg, decoder_args(["-i", "pipe:0"]), f"relay-{mount.name}", True)
        await child.start()
        reader = asyncio.create_task(pump(child, mount), name=f"relay-{mount.name}-pcm")
        got = 0
        try:
            async for data in response.content.iter_any():
                got += len(data)
                await child.write(data)
                if reader.done():
                    break  # the decoder gave up: not decodable audio
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            await _finish(child, reader)
        return got > 0


async def _finish(child: Child, reader: asyncio.Task[None] | None) -> None:
    """End a decoder fed through stdin: EOF, let it flush its PCM (2 s at most), then stop it.
    Cancel-safe: cancelled while waiting, the reader is still cancelled and ffmpeg still
    stopped (killed after its grace period), so a stopping mount leaves no child behind."""
    child.close_stdin()
    try:
        if reader is not None:
            await asyncio.wait({reader}, timeout=2)
    finally:
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await child.stop()


class PushFeed:
    """Bytes pushed by a client (Icecast source, browser), decoded into the mount."""

    def __init__(self, mount: Mount, label: str) -> None:
        self.mount = mount
        self.label = label
        self._child = Child(
            mount.ffmpeg, decoder_args(["-i", "pipe:0"]), f"push-{mount.name}", True
        )
        self._reader: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()  # set by ``close``: the client should be hung up on

    async def start(self) -> None:
        await self._child.start()
        self._reader = asyncio.create_task(pump(self._child, self.mount), name=f"push-{self.label}")

    async def write(self, data: bytes) -> bool:
        """False once the decoder is gone or the feed closed (the client should be hung up on)."""
        if self.ended.is_set():
            return False
        try:
            await self._child.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    async def close(self) -> None:
        self.ended.set()
        try:
            await _finish(self._child, self._reader)
        finally:
            self.mount.source_lost()
