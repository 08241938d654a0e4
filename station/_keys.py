"""Typed application state: every resource the app factory builds lives under one of these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from devices import ClusterGateway, MqttLink
from scheduler import Dispatcher
from station.config import Settings
from station.media import MediaStore, MediaWorker

from ._access import BrokerAccess
from ._delivery_state import Delivery
from ._monitor import FleetMonitor
from ._playout_store import PlayoutStore

if TYPE_CHECKING:
    from ._metrics import StationMetrics
    from .upstream import EmergencyTrigger, Upstream


@dataclass
class Runtime:
    """Facts known only once the station runs (the bound HTTP and MQTT addresses)."""

    public_base_url: str = ""
    mqtt_url: str = ""


SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
STORE = web.AppKey("playout_store", PlayoutStore)
MEDIA_STORE = web.AppKey("media_store", MediaStore)
MEDIA_WORKER = web.AppKey("media_worker", MediaWorker)
LINK = web.AppKey("mqtt_link", MqttLink)
GATEWAY = web.AppKey("gateway", ClusterGateway)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
MONITOR = web.AppKey("fleet_monitor", FleetMonitor)
ACCESS = web.AppKey("broker_access", BrokerAccess)
DELIVERY = web.AppKey("delivery", Delivery)
# Source Information System adapter (station.upstream) and /metrics (station._metrics)
UPSTREAM: web.AppKey[Upstream] = web.AppKey("upstream")
EMERGENCY_TRIGGER: web.AppKey[EmergencyTrigger] = web.AppKey("emergency_trigger")
METRICS: web.AppKey[StationMetrics] = web.AppKey("metrics")
