"""Wiring of the fleet parts into the app: broker security, monitor settings, the watch task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from devices import (
    CredentialLookup,
    EmbeddedBroker,
    TopicPolicy,
    generate_password,
    hash_password,
    station_username,
)
from station.config import Settings

from . import _keys as keys
from ._access import MosquittoFiles
from ._monitor import MonitorSettings
from ._services import StationError

log = logging.getLogger(__name__)

# Heartbeats are written in batches at most this old: one transaction per batch, not per message.
HEARTBEAT_BATCH_S = 0.25


def monitor_settings(settings: Settings) -> MonitorSettings:
    devices = settings.devices
    return MonitorSettings(
        heartbeat_interval_s=devices.heartbeat_interval_s,
        missed_heartbeats=devices.missed_heartbeats,
        clock_offset_max_ms=devices.clock_offset_max_ms,
        low_cache_bytes=devices.low_cache_bytes,
        flap_count=devices.flap_count,
        flap_window=timedelta(minutes=devices.flap_window_min),
        timezone=settings.station.timezone,
        batch_s=HEARTBEAT_BATCH_S,
    )


def embedded_broker(
    settings: Settings, lookup: CredentialLookup
) -> tuple[EmbeddedBroker, tuple[str, str]]:
    """The in-process broker with per-cluster auth; the station's own login (made up now)."""
    user = station_username(settings.station.id)
    password = generate_password()
    policy = TopicPolicy(
        station_id=settings.station.id,
        station_user=user,
        station_password_hash=hash_password(password),
        credentials=lookup,
        allow_anonymous=settings.devices.allow_anonymous,
    )
    broker = EmbeddedBroker(settings.mqtt.embedded_host, settings.mqtt.embedded_port, policy=policy)
    return broker, (user, password)


def mosquitto_files(settings: Settings) -> MosquittoFiles | None:
    devices = settings.devices
    if devices.mosquitto_password_file is None and devices.mosquitto_acl_file is None:
        return None
    if devices.mosquitto_password_file is None or devices.mosquitto_acl_file is None:
        raise StationError("set both devices.mosquitto_password_file and mosquitto_acl_file")
    broker = None if settings.mqtt.embedded else settings.mqtt.broker()
    if broker is None or not broker.username or not broker.password:
        raise StationError(
            "devices.mosquitto_password_file needs mqtt.url with the station's user and "
            "password (mqtt://USER:PASSWORD@host:1883)"
        )
    return MosquittoFiles(
        password_file=devices.mosquitto_password_file,
        acl_file=devices.mosquitto_acl_file,
        pid_file=devices.mosquitto_pid_file,
        station_id=settings.station.id,
        station_user=broker.username,
        station_hash=hash_password(broker.password),
    )


async def _watch(app: web.Application) -> None:
    """Every ``devices.sweep_s``: mark silent clusters offline, reload credentials."""
    period = app[keys.SETTINGS].devices.sweep_s
    while True:
        await asyncio.sleep(period)
        try:
            await app[keys.MONITOR].sweep()
            await app[keys.ACCESS].refresh()
        except Exception:  # one failure boundary per sweep: the next one tries again
            log.exception("fleet sweep failed")


async def _flush_heartbeats(app: web.Application) -> None:
    monitor = app[keys.MONITOR]
    while True:
        await asyncio.sleep(monitor.settings.batch_s or HEARTBEAT_BATCH_S)
        try:
            await monitor.flush()
        except Exception:  # one failure boundary per batch: logged, the next batch goes on
            log.exception("writing a batch of heartbeats failed")


async def fleet_watch(app: web.Application) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(_watch(app), name="fleet-watch"),
        asyncio.create_task(_flush_heartbeats(app), name="fleet-heartbeats"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await app[keys.MONITOR].flush()
