"""Live and relay: mounts encoded once and served to many clusters (docs/live.md).

``live_ctx`` (cleanup_ctx) builds the ``LiveHub`` under ``LIVE_HUB`` and the Icecast source
server; ``setup_live_routes`` adds ``GET /live/<mount>`` and the browser microphone WebSocket.
The dispatcher gets what a ``stream`` command carries from ``hub.cluster_url(mount, cluster_id)``
(HTTP, signed per cluster; the station's ``/live/<mount>`` or the Icecast edge's) and, for
MQTT-only receivers, ``hub.topic_for(mount)``, through ``HubRouter`` (``_routing.py``), which
also holds relay mounts and the studio mount around scheduled slots.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from aiohttp import web
from sqlmodel import col, select

from devices.protocol import Topics
from station import _keys as keys
from station._delivery_state import Sessions, UrlSigner
from station.config import LiveSection
from station.db import Cluster, ClusterStatus
from station.media import MediaStore, ffmpeg_executable

from . import _routes
from ._fanout import Fanout, Listener
from ._hub import OPERATOR_SOURCE, OPERATOR_SOURCES_HELP, LiveAlert, LiveError, LiveHub
from ._ingest import SourceServer
from ._mount import Mount, MountConfig
from ._routes import LIVE_HUB, signed_name
from ._sinks import PACKET, IcecastPush, MqttSink

log = logging.getLogger(__name__)

SOURCE_SERVER: web.AppKey[SourceServer] = web.AppKey("live_source_server")

__all__ = [
    "LIVE_HUB",
    "OPERATOR_SOURCE",
    "OPERATOR_SOURCES_HELP",
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
    "edge_url",
    "live_ctx",
    "mount_config",
    "mqtt_only_clusters",
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
        batch_ms=live.http_batch_ms,
        batch_max_ms=live.http_batch_max_ms,
        batch_writes_per_s=live.http_batch_writes_per_s,
    )


def edge_url(edge: str, signer: UrlSigner, mount: str, cluster_id: str) -> str:
    """``mount`` on the Icecast edge for ``cluster_id``, signed as the station's own URL is:
    an edge with URL listener authentication asks ``POST /live/icecast-auth`` to check it."""
    return f"{edge}/{quote(mount)}?{signer.query(cluster_id, signed_name(mount))}"


async def mqtt_only_clusters(sessions: Sessions) -> frozenset[str]:
    """Clusters whose last birth announced live transports without ``http`` but with ``mqtt``
    (``capabilities.live``). The text match narrows the rows; the JSON is checked after."""
    text = sa.cast(Cluster.capabilities, sa.String)
    async with sessions() as db:
        rows = (
            await db.exec(
                select(Cluster.id, Cluster.capabilities).where(
                    col(Cluster.status) != ClusterStatus.RETIRED, text.like('%"mqtt"%')
                )
            )
        ).all()
    found = set()
    for cluster_id, capabilities in rows:
        transports = (capabilities or {}).get("live")
        if isinstance(transports, list) and "mqtt" in transports and "http" not in transports:
            found.add(cluster_id)
    return frozenset(found)


def setup_live_routes(app: web.Application) -> None:
    """``GET /live/<mount>``, the microphone WebSocket, and the shutdown hook that ends them."""
    _routes.setup_live_routes(app)
    app.on_shutdown.append(_end_live)


async def _end_live(app: web.Application) -> None:
    """``on_shutdown``: stop the source server and every mount before aiohttp waits for the
    requests in flight. Listeners (``GET /live/<mount>``) and pushes (the microphone) last as
    long as their mount: left up, the runner's graceful shutdown waited for them for its whole
    ``shutdown_timeout`` (60 s) while relay mounts kept retrying an unreachable upstream."""
    server = app.get(SOURCE_SERVER)
    if server is not None:
        await server.stop()
    hub = app.get(LIVE_HUB)
    if hub is not None:
        await hub.stop_all()


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
        studio_mount=live.studio_mount,  # a push to it starts it; live slots air it
    )
    link = app[keys.LINK]
    hub.mqtt_always = live.mqtt  # else published only for slots with MQTT-only receivers
    hub.mqtt_receivers = lambda: mqtt_only_clusters(app[keys.SESSIONS])

    def mqtt(m: Mount) -> MqttSink:  # idle (publishes nothing) unless ``hub.mqtt_wanted``
        return MqttSink(link, hub.topic_for(m.name), m, lambda: hub.mqtt_wanted(m.name))

    hub.sink_factories.append(mqtt)
    if live.icecast_push_url is not None:
        base = live.icecast_push_url.get_secret_value().rstrip("/")

        def icecast(m: Mount) -> IcecastPush:  # closed with its mount
            return IcecastPush(ffmpeg, f"{base}/{m.name}", m, live.retry_max_s)

        hub.sink_factories.append(icecast)
        if live.icecast_edge_url is not None:
            edge = live.icecast_edge_url.rstrip("/")
            hub.edge_url_for = lambda mount, cid: edge_url(edge, signer, mount, cid)
    await hub.store_alerts(app[keys.SESSIONS])  # the alerts table, written off the audio path
    app[LIVE_HUB] = hub
    server: SourceServer | None = None
    if live.source_port is not None and live.source_password is not None:
        server = SourceServer(hub, live.source_password.get_secret_value())
        await server.start(live.source_host, live.source_port)
        app[SOURCE_SERVER] = server
        log.info("Icecast source clients accepted on port %d", server.port)
    try:
        yield
    finally:  # done already by ``_end_live`` after a started app; both are idempotent
        if server is not None:
            await server.stop()
        await hub.stop_all()
