"""Live and relay: mounts encoded once and served to many clusters (docs/live.md).

``live_ctx`` (cleanup_ctx) builds the ``LiveHub`` under ``LIVE_HUB`` and the Icecast source
server; ``setup_live_routes`` adds ``GET /live/<mount>`` and the browser microphone WebSocket.
The dispatcher gets what a ``stream`` command carries from ``hub.url_for(mount, cluster_id)``
(HTTP, signed per cluster) and ``hub.topic_for(mount)`` (MQTT).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from devices.protocol import Topics
from station import _keys as keys
from station.config import LiveSection
from station.media import MediaStore, ffmpeg_executable

from ._fanout import Fanout, Listener
from ._hub import LiveAlert, LiveError, LiveHub
from ._ingest import SourceServer
from ._mount import Mount, MountConfig
from ._routes import LIVE_HUB, setup_live_routes, signed_name
from ._sinks import PACKET, IcecastPush, MqttSink

log = logging.getLogger(__name__)

SOURCE_SERVER: web.AppKey[SourceServer] = web.AppKey("live_source_server")

__all__ = [
    "LIVE_HUB",
    "PACKET",
    "SOURCE_SERVER",
    "Fanout",
    "IcecastPush",
    "Listener",
    "LiveAlert",
    "LiveError",
    "LiveHub",
    "Mount",
    "MountConfig",
    "MqttSink",
    "SourceServer",
    "live_ctx",
    "mount_config",
    "setup_live_routes",
]


def mount_config(live: LiveSection, media: MediaStore) -> MountConfig:
    fallback: Path | None = None
    if live.fallback_media:
        for ext in ("opus", "mp3"):
            if media.exists(live.fallback_media, ext):
                fallback = media.path_for(live.fallback_media, ext)
                break
        else:
            log.warning(
                "live.fallback_media %s is not in the library: silence instead", live.fallback_media
            )
    return MountConfig(
        codec=live.codec,
        bitrate=live.opus_bitrate if live.codec == "opus" else live.mp3_bitrate,
        listener_buffer_bytes=live.listener_buffer_kb * 1024,
        max_skips=live.max_skips,
        dead_after_s=live.dead_after_s,
        silence_after_s=live.silence_after_s,
        silence_db=live.silence_db,
        fallback_file=fallback,
    )


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    live = settings.live
    runtime, signer = app[keys.RUNTIME], app[keys.DELIVERY].signer

    def url_for(mount: str, cluster_id: str) -> str:
        query = signer.query(cluster_id, signed_name(mount))
        return f"{runtime.public_base_url}/live/{quote(mount)}?{query}"

    ffmpeg = ffmpeg_executable(settings.media.ffmpeg)
    hub = LiveHub(
        ffmpeg,
        mount_config(live, app[keys.MEDIA_STORE]),
        url_for,
        Topics(settings.station.id).prefix,
        retry=(live.retry_min_s, live.retry_max_s),
    )
    if live.mqtt:
        link = app[keys.LINK]
        hub.sink_factories.append(lambda m: MqttSink(link, hub.topic_for(m.name), m))
    if live.icecast_push_url is not None:
        base = live.icecast_push_url.get_secret_value().rstrip("/")

        def icecast(m: Mount) -> IcecastPush:  # closed with its mount
            return IcecastPush(ffmpeg, f"{base}/{m.name}", m, live.retry_max_s)

        hub.sink_factories.append(icecast)
    app[LIVE_HUB] = hub
    server: SourceServer | None = None
    if live.source_port is not None and live.source_password is not None:
        server = SourceServer(hub, live.source_password.get_secret_value())
        await server.start(live.source_host, live.source_port)
        app[SOURCE_SERVER] = server
        log.info("Icecast source clients accepted on port %d", server.port)
    try:
        yield
    finally:
        if server is not None:
            await server.stop()
        await hub.stop_all()
