"""The app factory: one place builds every resource, in order, and tears them down in reverse.

Each resource is an aiohttp ``cleanup_ctx`` generator; state lives under typed ``AppKey``s.
``start_station`` binds the HTTP socket before anything starts, so the public base URL that
play commands carry is known before the first dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from sqlmodel import col, select

from devices import BrokerAddress, ClusterGateway, EmbeddedBroker, MqttLink
from devices.protocol import Topics
from scheduler import Dispatcher, ItemRef
from station.config import Settings
from station.db import Cluster, ClusterStatus, create_engine_for, session_factory, upgrade_async
from station.media import MediaStore, MediaWorker, ffmpeg_executable

from . import _keys as keys
from ._http import setup_routes
from ._playout_store import PlayoutStore

log = logging.getLogger(__name__)


def create_app(settings: Settings, runtime: keys.Runtime | None = None) -> web.Application:
    app = web.Application(client_max_size=settings.media.max_upload_mb * 1024 * 1024)
    app[keys.SETTINGS] = settings
    app[keys.RUNTIME] = runtime or keys.Runtime()
    app.cleanup_ctx.extend([_database, _media, _mqtt, _dispatcher])
    setup_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    await upgrade_async(settings.database.url)
    engine = create_engine_for(settings.database.url)
    app[keys.ENGINE] = engine
    app[keys.SESSIONS] = session_factory(engine)
    app[keys.STORE] = PlayoutStore(app[keys.SESSIONS], auto_register=settings.devices.auto_register)
    try:
        yield
    finally:
        await engine.dispose()


async def _media(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS].media
    settings.dir.mkdir(parents=True, exist_ok=True)
    app[keys.MEDIA_STORE] = MediaStore(settings.dir)
    app[keys.MEDIA_WORKER] = MediaWorker(ffmpeg_executable(settings.ffmpeg), settings.workers)
    yield


async def _mqtt(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    broker: EmbeddedBroker | None = None
    url = settings.mqtt.url
    if settings.mqtt.embedded:
        broker = EmbeddedBroker(settings.mqtt.embedded_host, settings.mqtt.embedded_port)
        await broker.start()
        url = broker.url
    app[keys.RUNTIME].mqtt_url = url
    topics = Topics(settings.station.id)
    link = MqttLink(
        BrokerAddress.from_url(url, str(settings.mqtt.ca_file) if settings.mqtt.ca_file else None),
        settings.mqtt.client_id,
        will=ClusterGateway.will_for(topics),
        keepalive_s=settings.mqtt.keepalive_s,
        timeout_s=settings.mqtt.publish_timeout_s,
        queue_size=settings.mqtt.inbound_queue_size,
        reconnect_min_s=settings.mqtt.reconnect_min_s,
        reconnect_max_s=settings.mqtt.reconnect_max_s,
    )
    gateway = ClusterGateway(link, topics, app[keys.STORE])
    gateway.remember(await _known_clusters(app))
    app[keys.LINK], app[keys.GATEWAY] = link, gateway
    await gateway.start()  # registers subscriptions; they are made on every connect
    tasks = [
        asyncio.create_task(link.run(), name="mqtt-link"),
        asyncio.create_task(gateway.serve(), name="mqtt-inbound"),
    ]
    try:
        await link.wait_connected(timeout=settings.mqtt.publish_timeout_s * 2)
    except Exception:
        log.warning("MQTT broker %s not reachable yet; will keep retrying", link.address)
    try:
        yield
    finally:
        # A clean DISCONNECT suppresses the will: say offline ourselves first.
        with contextlib.suppress(Exception):
            await gateway.announce_offline()
        await link.disconnect()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if broker is not None:
            await broker.stop()


async def _known_clusters(app: web.Application) -> list[str]:
    async with app[keys.SESSIONS]() as db:
        rows = await db.exec(select(Cluster.id).where(col(Cluster.status) != ClusterStatus.RETIRED))
        return list(rows.all())


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    runtime = app[keys.RUNTIME]

    def url_for(_cluster_id: str, item: ItemRef) -> str:
        return f"{runtime.public_base_url}/media/{quote(item.sha256)}.{item.codec}"

    dispatcher = Dispatcher(
        app[keys.STORE],
        app[keys.GATEWAY],
        url_for,
        timezone=settings.station.timezone,
        lead_s=settings.scheduler.dispatch_lead_s,
        expiry_s=settings.scheduler.play_expiry_s,
        misfire_grace_s=settings.scheduler.misfire_grace_s,
    )
    app[keys.DISPATCHER] = dispatcher
    await dispatcher.start()
    try:
        yield
    finally:
        await dispatcher.stop()


@dataclass
class RunningStation:
    app: web.Application
    runner: web.AppRunner
    runtime: keys.Runtime

    @property
    def base_url(self) -> str:
        return self.runtime.public_base_url

    async def stop(self) -> None:
        await self.runner.cleanup()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


async def start_station(settings: Settings) -> RunningStation:
    """Bind HTTP, start every resource, serve. Port 0 picks a free port."""
    sock = _bind(settings.http.host, settings.http.port)
    host, port = sock.getsockname()[:2]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    runtime = keys.Runtime(
        public_base_url=settings.http.public_base_url or f"http://{shown_host}:{port}"
    )
    app = create_app(settings, runtime)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    log.info("station %s serving on %s", settings.station.id, runtime.public_base_url)
    return RunningStation(app, runner, runtime)
