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
from dataclasses import dataclass, replace

from aiohttp import web
from sqlmodel import col, select

from devices import BrokerAddress, ClusterGateway, EmbeddedBroker, MqttLink
from devices.protocol import Topics
from scheduler import Dispatcher
from station.config import Settings
from station.db import Cluster, ClusterStatus, create_engine_for, session_factory, upgrade_async
from station.media import MediaStore, MediaWorker, ffmpeg_executable

from . import _keys as keys
from ._access import BrokerAccess
from ._delivery import codecs_for_factory, delivery_ctx, url_for_factory
from ._emergency import EmergencyStore, StationEmergencyTrigger
from ._fleet_setup import embedded_broker, fleet_watch, monitor_settings, mosquitto_files
from ._http import server_ssl_context, setup_routes
from ._metrics import metrics_ctx
from ._monitor import DeviceHandlers, FleetMonitor
from ._playout_store import PlayoutStore
from .live import LIVE_HUB, live_ctx
from .live._routing import LIVE_PREFIX, HubRouter
from .upstream import upstream_ctx

log = logging.getLogger(__name__)


def create_app(settings: Settings, runtime: keys.Runtime | None = None) -> web.Application:
    app = web.Application(client_max_size=settings.media.max_upload_mb * 1024 * 1024)
    app[keys.SETTINGS] = settings
    app[keys.RUNTIME] = runtime or keys.Runtime()
    app.cleanup_ctx.extend([_database, _media, delivery_ctx, _mqtt, _dispatcher, fleet_watch])
    app.cleanup_ctx.extend([upstream_ctx, metrics_ctx])  # station.upstream, /metrics
    app.cleanup_ctx.append(live_ctx)  # station.live: mounts, Icecast source server
    setup_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    await upgrade_async(settings.database.url)
    engine = create_engine_for(settings.database.url)
    app[keys.ENGINE] = engine
    app[keys.SESSIONS] = session_factory(engine)
    app[keys.STORE] = PlayoutStore(
        app[keys.SESSIONS],
        priorities=settings.playout.priorities,
        # live slots air the hub's studio mount unless playout.live_url overrides it
        live_url=settings.playout.live_url or f"{LIVE_PREFIX}{settings.live.studio_mount}",
        misfire_grace_s=settings.scheduler.misfire_grace_s,
        approval_required=settings.auth.approval_required,
    )
    app[keys.MONITOR] = FleetMonitor(
        app[keys.SESSIONS],
        monitor_settings(settings),
        auto_register=settings.devices.auto_register,
    )
    app[keys.ACCESS] = BrokerAccess(app[keys.SESSIONS], mosquitto_files(settings))
    await app[keys.ACCESS].refresh()
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
    address = None
    if settings.mqtt.embedded:
        broker, login = embedded_broker(settings, app[keys.ACCESS].lookup)
        await broker.start()
        app[keys.ACCESS].broker = broker  # ends sessions of revoked credentials on refresh
        url = broker.url
        address = replace(BrokerAddress.from_url(url), username=login[0], password=login[1])
    app[keys.RUNTIME].mqtt_url = url
    topics = Topics(settings.station.id)
    ca_file = str(settings.mqtt.ca_file) if settings.mqtt.ca_file else None
    link = MqttLink(
        address or BrokerAddress.from_url(url, ca_file),
        settings.mqtt.client_id,
        will=ClusterGateway.will_for(topics),
        keepalive_s=settings.mqtt.keepalive_s,
        timeout_s=settings.mqtt.publish_timeout_s,
        queue_size=settings.mqtt.inbound_queue_size,
        reconnect_min_s=settings.mqtt.reconnect_min_s,
        reconnect_max_s=settings.mqtt.reconnect_max_s,
        # A persistent session: the broker keeps the QoS 1 events and acks of clusters while
        # the station is down (killed, restarting), so proof of play is complete after it.
        clean_session=False,
    )
    gateway = ClusterGateway(link, topics, DeviceHandlers(app[keys.STORE], app[keys.MONITOR]))
    app[keys.ACCESS].gateway = gateway
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
            app[keys.ACCESS].broker = None
            await broker.stop()


async def _known_clusters(app: web.Application) -> list[str]:
    async with app[keys.SESSIONS]() as db:
        rows = await db.exec(select(Cluster.id).where(col(Cluster.status) != ClusterStatus.RETIRED))
        return list(rows.all())


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    router = HubRouter(lambda: app.get(LIVE_HUB))  # relay/live slots via the live hub
    dispatcher = Dispatcher(
        app[keys.STORE],
        app[keys.GATEWAY],
        url_for_factory(app),  # signed per cluster (station/_delivery.py)
        codecs_for=codecs_for_factory(app),  # each cluster's rendition from its announcement
        timezone=settings.station.timezone,
        lead_s=settings.scheduler.dispatch_lead_s,
        expiry_s=settings.scheduler.play_expiry_s,
        misfire_grace_s=settings.scheduler.misfire_grace_s,
        horizon_s=settings.scheduler.horizon_s,
        lookback_s=settings.scheduler.missed_lookback_s,
        prefetch_ahead_s=settings.scheduler.prefetch_ahead_s,
        forward_horizon_s=settings.scheduler.forward_horizon_s,
        emergencies=EmergencyStore(
            app[keys.SESSIONS],
            live_url=settings.playout.live_url or f"{LIVE_PREFIX}{settings.live.studio_mount}",
            misfire_grace_s=settings.scheduler.misfire_grace_s,
        ),
        bridge_warmup_s=settings.playout.bridge_warmup_s,
        stream_router=router,
    )
    app[keys.DISPATCHER] = dispatcher
    app[keys.STORE].online_listeners.append(dispatcher.cluster_online)
    # Upstream emergency bulletins air through the same path (station/_emergency.py).
    app[keys.EMERGENCY_TRIGGER] = StationEmergencyTrigger(
        app[keys.SESSIONS], settings, dispatcher.poke
    )
    await dispatcher.start()
    try:
        yield
    finally:
        await dispatcher.stop()
        await router.close()


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
    """Bind HTTP(S), start every resource, serve. Port 0 picks a free port.

    Raises ``ConfigError`` (naming the key) when the TLS certificate or key cannot be used,
    before anything is bound or started."""
    ssl_context = await asyncio.to_thread(server_ssl_context, settings.http)
    sock = _bind(settings.http.host, settings.http.port)
    host, port = sock.getsockname()[:2]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "https" if ssl_context is not None else "http"
    runtime = keys.Runtime(
        public_base_url=settings.http.public_base_url or f"{scheme}://{shown_host}:{port}"
    )
    app = create_app(settings, runtime)
    # Clusters and microphones hold long requests open; the live hub hangs them up on shutdown,
    # and anything else gets 10 s (aiohttp's default would keep a restart waiting 60 s).
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
    try:
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    log.info("station %s serving on %s", settings.station.id, runtime.public_base_url)
    return RunningStation(app, runner, runtime)
