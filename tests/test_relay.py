"""Relay (tiếp âm): the station pulls an upstream once, survives HTML, silence and outages."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tests.api_support import running
from tests.live_support import FFMPEG, eventually, hub_of, listen, live_settings, max_volume_db


class Upstream:
    """A tiny radio: ``mode`` audio (a live Ogg/Opus tone), silence, html or down."""

    def __init__(self) -> None:
        self.mode = "audio"
        self.requests = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.mode == "down":
            return web.Response(status=503)
        if self.mode == "html":
            return web.Response(text="<html>Trang bảo trì</html>", content_type="text/html")
        volume = "0" if self.mode == "silence" else "1"
        proc = await asyncio.create_subprocess_exec(
            FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
            "-i", "sine=frequency=500:duration=30", "-af", f"volume={volume}",
            "-c:a", "libopus", "-f", "ogg", "-page_duration", "100000", "pipe:1",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        response = web.StreamResponse(headers={"Content-Type": "audio/ogg"})
        await response.prepare(request)
        mode = self.mode
        try:
            while self.mode == mode and (data := await proc.stdout.read(4096)):
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
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/radio"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_relay_alerts_falls_back_and_recovers(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    radio = Upstream()
    await radio.start()
    settings = live_settings(
        tmp_path, mqtt_url, database_url, station_id, mqtt=False, silence_after_s=1.5
    )
    try:
        async with running(settings) as station:
            hub = hub_of(station)
            mount = await hub.start("vov", f"relay:{radio.url}")
            url = hub.url_for("vov", "c-1")
            await eventually(lambda: mount.state == "on_source")
            status, data = await listen(url, 5, min_bytes=6_000)
            assert status == 200 and await max_volume_db(data, tmp_path) > -30

            def kinds(active: bool = True) -> set[str]:
                return {a.kind for a in hub.alerts if (a.cleared_at is None) == active}

            radio.mode = "html"  # the provider's maintenance page: refused, alert, fallback
            await eventually(lambda: "not_audio" in kinds() and mount.state == "fallback")
            await asyncio.sleep(1.5)  # what the relay's decoder still held has aired by now
            status, data = await listen(url, 3, min_bytes=3_000)  # listeners still get a stream
            assert status == 200 and await max_volume_db(data, tmp_path) < -60

            radio.mode = "audio"  # recovers by itself (reconnect with backoff)
            await eventually(lambda: mount.state == "on_source" and "not_audio" in kinds(False))
            assert "dead" in kinds(False)  # raised while it was down, cleared now

            radio.mode = "silence"  # connected but silent: alert and fallback
            await eventually(lambda: "silence" in kinds() and mount.state == "fallback")
            radio.mode = "audio"
            await eventually(lambda: mount.state == "on_source" and not kinds())
            assert radio.requests >= 4  # one fetch per (re)connect, not one per listener
    finally:
        await radio.stop()


async def test_relay_falls_back_to_a_looped_media_item(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    radio = Upstream()
    radio.mode = "down"
    await radio.start()
    sha = "ab" * 32
    media_dir = tmp_path / "media"
    (media_dir / sha[:2]).mkdir(parents=True)
    proc = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
        "-i", "sine=frequency=700:duration=2", "-c:a", "libopus",
        str(media_dir / sha[:2] / f"{sha}.opus"),
    )  # fmt: skip
    assert await proc.wait() == 0
    settings = live_settings(tmp_path, mqtt_url, database_url, station_id, mqtt=False,
                             fallback_media=sha)  # fmt: skip
    settings = settings.model_copy(
        update={"media": settings.media.model_copy(update={"dir": media_dir})}
    )
    try:
        async with running(settings) as station:
            hub = hub_of(station)
            mount = await hub.start("vov", f"relay:{radio.url}")
            url = hub.url_for("vov", "c-1")
            # never connected: the mount airs its fallback item while it waits
            await eventually(lambda: mount.state == "waiting" and radio.requests >= 2)
            status, data = await listen(url, 6, min_bytes=10_000)
            assert status == 200 and await max_volume_db(data, tmp_path) > -30
    finally:
        await radio.stop()
