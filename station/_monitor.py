"""Fleet monitoring: cluster availability, telemetry, alerts and data use.

- Offline comes from the retained will (``status`` offline) or from silence: no heartbeat for
  ``missed`` intervals (the cluster's own ``interval_s`` if it reports one). A birth (or any
  heartbeat) brings it back online.
- Alerts (table ``alerts``): offline, fault (one per fault code), clock offset, low cache, link
  flapping. At most one open alert per (cluster, kind, code); each has raised_at/cleared_at.
- Data use per cluster and day from the heartbeat's ``bytes_downloaded`` counter (since boot):
  a counter that went down, or an uptime that went down, means a reboot.

The pure decisions are module functions, tested without I/O. Heartbeat fields added in protocol
v1.1 are read with ``getattr`` so older devices (and older protocol models) still work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import Ack, DeviceMessage, Event, Heartbeat, Status
from station.db import (
    Alert,
    AlertKind,
    Cluster,
    ClusterStatus,
    ClusterTelemetry,
    DataUse,
)

from ._alerts import OpenAlerts
from ._playout_store import PlayoutStore
from ._services import Sessions

log = logging.getLogger(__name__)

FAULT_EVENTS = ("fault_raised", "fault_cleared")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MonitorSettings:
    heartbeat_interval_s: float = 30.0
    missed_heartbeats: int = 3
    clock_offset_max_ms: int = 500
    low_cache_bytes: int = 50_000_000
    flap_count: int = 4
    flap_window: timedelta = timedelta(minutes=10)
    timezone: str = "Asia/Ho_Chi_Minh"
    # None: write each heartbeat at once; else buffer and write batches (``flush()`` on a timer)
    batch_s: float | None = None
    batch_max: int = 1000


# --------------------------------------------------------------------------- pure decisions


def heartbeat_overdue(
    last_seen: datetime | None, interval_s: float, now: datetime, missed: int = 3
) -> bool:
    """True once ``missed`` heartbeat intervals passed since the cluster was last heard."""
    return last_seen is not None and (now - last_seen).total_seconds() > missed * interval_s


def is_flapping(
    offline_times: Iterable[datetime], now: datetime, count: int, window: timedelta
) -> bool:
    """``count`` or more offline transitions within ``window`` before ``now``."""
    return sum(now - t <= window for t in offline_times) >= count


def data_use_delta(
    prev_counter: int | None, prev_uptime: int | None, counter: int, uptime: int | None
) -> int:
    """Bytes downloaded since the previous heartbeat.

    The first sample counts nothing (what came before is unknown); after a reboot (counter or
    uptime went down) the counter itself is what was downloaded since.
    """
    if prev_counter is None:
        return 0
    rebooted = counter < prev_counter or (
        uptime is not None and prev_uptime is not None and uptime < prev_uptime
    )
    return counter if rebooted else counter - prev_counter


def fault_codes(message: Heartbeat) -> set[str] | None:
    """The heartbeat's fault list (the current state), or None if the device left it out.

    A device that omits ``faults`` reports faults by events only: its heartbeats then clear
    nothing. Pydantic's ``model_fields_set`` tells an omitted field from an empty list.
    """
    faults = getattr(message, "faults", None)
    if faults is None or "faults" not in message.model_fields_set:
        return None
    return {str(f) for f in faults}


# --------------------------------------------------------------------------- the monitor


class FleetMonitor:
    """Cluster-state side of ``devices.DeviceHandler``: status, heartbeats, fault events."""

    def __init__(
        self,
        sessions: Sessions,
        settings: MonitorSettings | None = None,
        *,
        auto_register: bool = False,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.sessions = sessions
        self.settings = settings or MonitorSettings()
        self.auto_register = auto_register
        self.clock = clock
        self._tz = ZoneInfo(self.settings.timezone)
        self._pending: dict[str, list[Heartbeat]] = {}
        self._lock = asyncio.Lock()

    # -- DeviceHandler parts ---------------------------------------------------------------

    async def on_status(self, message: Status) -> None:
        await self.flush()  # heartbeats sent before a will must not bring the cluster back
        now = self.clock()
        async with self.sessions() as db:
            cluster = await db.get(Cluster, message.cluster_id)
            if cluster is None or cluster.status == ClusterStatus.RETIRED:
                return
            alerts = await OpenAlerts.load(db, cluster.id, now)
            cluster.last_seen_at = now
            if message.state == "online":
                cluster.firmware = message.firmware or cluster.firmware
                cluster.model = message.model or cluster.model
                if message.capabilities is not None:
                    cluster.capabilities = message.capabilities.model_dump()
                self._set_online(cluster, alerts)
            else:
                await self._set_offline(cluster, alerts, "will: connection lost")
            await db.commit()

    async def on_heartbeat(self, message: Heartbeat) -> None:
        """Buffer the heartbeat; with ``batch_s`` set, ``flush()`` (a timer) writes them."""
        self._pending.setdefault(message.cluster_id, []).append(message)
        if self.settings.batch_s is None or len(self._pending) >= self.settings.batch_max:
            await self.flush()

    async def flush(self) -> None:
        """Write buffered heartbeats: one transaction for the whole batch."""
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        now = self.clock()
        ids = list(batch)
        day: date = now.astimezone(self._tz).date()
        async with self.sessions() as db:
            clusters = await db.exec(select(Cluster).where(col(Cluster.id).in_(ids)))
            telemetry = await db.exec(
                select(ClusterTelemetry).where(col(ClusterTelemetry.cluster_id).in_(ids))
            )
            known = {t.cluster_id: t for t in telemetry.all()}
            usage_rows = await db.exec(
                select(DataUse).where(col(DataUse.cluster_id).in_(ids), DataUse.day == day)
            )
            usage = {u.cluster_id: u for u in usage_rows.all()}
            open_alerts = await OpenAlerts.load_many(db, ids, now)
            for cluster in clusters.all():
                if cluster.status == ClusterStatus.RETIRED:
                    continue
                row = known.get(cluster.id) or ClusterTelemetry(cluster_id=cluster.id)
                used = sum(
                    self._apply(cluster, row, open_alerts[cluster.id], m) for m in batch[cluster.id]
                )
                db.add(row)
                if used > 0:
                    use = usage.get(cluster.id) or DataUse(cluster_id=cluster.id, day=day, bytes=0)
                    use.bytes += used
                    db.add(use)
                cluster.last_seen_at = now
                db.add(cluster)
            await db.commit()

    def _apply(
        self, cluster: Cluster, telemetry: ClusterTelemetry, alerts: OpenAlerts, message: Heartbeat
    ) -> int:
        """One heartbeat, in memory; returns the bytes it adds to today's data use."""
        used = self._count_data(telemetry, message)
        self._copy_telemetry(telemetry, message, alerts.now)
        firmware = getattr(message, "firmware", None)
        if firmware:
            cluster.firmware = str(firmware)[:64]
        if not cluster.online:
            self._set_online(cluster, alerts)
        self._check_thresholds(alerts, message)
        faults = fault_codes(message)
        if faults is not None:
            for alert in alerts.find(AlertKind.FAULT):
                if alert.code not in faults:
                    alerts.clear(AlertKind.FAULT, alert.code)
            for code in sorted(faults):
                alerts.raise_(AlertKind.FAULT, f"fault: {code}", code)
        self._update_faulty(cluster, alerts)
        return used

    async def on_fault_event(self, message: Event) -> None:
        await self.flush()
        code = str(getattr(message, "fault", None) or getattr(message, "code", None) or "unknown")
        now = self.clock()
        async with self.sessions() as db:
            cluster = await db.get(Cluster, message.cluster_id)
            if cluster is None or cluster.status == ClusterStatus.RETIRED:
                return
            alerts = await OpenAlerts.load(db, cluster.id, now)
            if str(message.type) == "fault_raised":
                alerts.raise_(AlertKind.FAULT, f"fault: {code}", code)
            else:
                alerts.clear(AlertKind.FAULT, code)
            self._update_faulty(cluster, alerts)
            db.add(cluster)
            await db.commit()

    async def on_unknown_cluster(self, cluster_id: str, message: DeviceMessage) -> bool:
        if not self.auto_register or not isinstance(message, Status):
            return False
        async with self.sessions() as db:
            if await db.get(Cluster, cluster_id) is None:
                db.add(Cluster(id=cluster_id, name=cluster_id))
                await db.commit()
                log.info("auto-registered cluster %s", cluster_id)
        return True

    # -- the sweep (silent clusters, flapping that calmed down) ----------------------------

    async def sweep(self) -> list[str]:
        """Mark silent clusters offline; clear flapping alerts whose window passed."""
        async with self._lock:
            await self._flush()
            return await self._sweep()

    async def _sweep(self) -> list[str]:
        now = self.clock()
        went_offline = []
        async with self.sessions() as db:
            rows = await db.exec(
                select(Cluster.id, Cluster.last_seen_at, ClusterTelemetry.interval_s)
                .join(
                    ClusterTelemetry,
                    col(ClusterTelemetry.cluster_id) == col(Cluster.id),
                    isouter=True,
                )
                .where(col(Cluster.online))
            )
            missed = self.settings.missed_heartbeats
            for cluster_id, last_seen, interval in rows.all():
                interval_s = interval or self.settings.heartbeat_interval_s
                if not heartbeat_overdue(last_seen, interval_s, now, missed):
                    continue
                cluster = await db.get(Cluster, cluster_id)
                if cluster is None:
                    continue
                alerts = await OpenAlerts.load(db, cluster_id, now)
                silent = int(missed * interval_s)
                await self._set_offline(cluster, alerts, f"no heartbeat for {silent} s")
                went_offline.append(cluster_id)
            flapping = await db.exec(
                select(Alert).where(
                    Alert.kind == AlertKind.FLAPPING, col(Alert.cleared_at).is_(None)
                )
            )
            for alert in flapping.all():
                if not await self._flapping(db, alert.cluster_id, now):
                    alert.cleared_at = now
                    db.add(alert)
            await db.commit()
        if went_offline:
            log.warning("clusters silent, marked offline: %s", ", ".join(went_offline[:20]))
        return went_offline

    # -- helpers (inside the caller's transaction) -----------------------------------------

    def _set_online(self, cluster: Cluster, alerts: OpenAlerts) -> None:
        cluster.online = True
        if cluster.status != ClusterStatus.FAULTY:
            cluster.status = ClusterStatus.ONLINE
        alerts.db.add(cluster)
        alerts.clear(AlertKind.OFFLINE)

    async def _set_offline(self, cluster: Cluster, alerts: OpenAlerts, why: str) -> None:
        was_online = cluster.online
        cluster.online = False
        if cluster.status != ClusterStatus.FAULTY:
            cluster.status = ClusterStatus.OFFLINE
        alerts.db.add(cluster)
        raised = alerts.raise_(AlertKind.OFFLINE, why)
        if not (was_online or raised):
            return
        await alerts.db.flush()
        if await self._flapping(alerts.db, cluster.id, alerts.now):
            n, window = self.settings.flap_count, self.settings.flap_window
            detail = f"{n}+ disconnections within {int(window.total_seconds() // 60)} min"
            alerts.raise_(AlertKind.FLAPPING, detail)

    async def _flapping(self, db: AsyncSession, cluster_id: str, now: datetime) -> bool:
        since = now - self.settings.flap_window
        times = await db.exec(
            select(Alert.raised_at).where(
                Alert.cluster_id == cluster_id,
                Alert.kind == AlertKind.OFFLINE,
                col(Alert.raised_at) >= since,
            )
        )
        return is_flapping(times.all(), now, self.settings.flap_count, self.settings.flap_window)

    def _check_thresholds(self, alerts: OpenAlerts, message: Heartbeat) -> None:
        offset = getattr(message, "clock_offset_ms", None)
        if offset is not None:
            if abs(offset) > self.settings.clock_offset_max_ms:
                alerts.raise_(AlertKind.CLOCK, f"clock off by {offset} ms")
            else:
                alerts.clear(AlertKind.CLOCK)
        free = getattr(message, "free_cache_bytes", None)
        if free is not None:
            if free < self.settings.low_cache_bytes:
                alerts.raise_(AlertKind.LOW_CACHE, f"free cache {free // 1_000_000} MB")
            else:
                alerts.clear(AlertKind.LOW_CACHE)

    @staticmethod
    def _update_faulty(cluster: Cluster, alerts: OpenAlerts) -> None:
        if alerts.find(AlertKind.FAULT):
            cluster.status = ClusterStatus.FAULTY
        elif cluster.status == ClusterStatus.FAULTY:
            cluster.status = ClusterStatus.ONLINE if cluster.online else ClusterStatus.OFFLINE

    @staticmethod
    def _count_data(telemetry: ClusterTelemetry, message: Heartbeat) -> int:
        counter = getattr(message, "bytes_downloaded", None)
        if counter is None:
            return 0
        uptime = getattr(message, "uptime_s", None)
        delta = data_use_delta(telemetry.bytes_counter, telemetry.uptime_s, counter, uptime)
        telemetry.bytes_counter = counter
        return max(delta, 0)

    @staticmethod
    def _copy_telemetry(telemetry: ClusterTelemetry, message: Heartbeat, now: datetime) -> None:
        for name in (
            "state", "volume", "signal_dbm", "network", "power_source", "uptime_s",
            "clock_offset_ms", "free_cache_bytes", "interval_s",
        ):  # fmt: skip
            value = getattr(message, name, None)
            if value is not None:
                setattr(telemetry, name, value)
        faults = fault_codes(message)
        if faults is not None:
            telemetry.faults = sorted(faults)
        telemetry.heartbeat_at = now


class DeviceHandlers:
    """One ``devices.DeviceHandler`` from the two halves: proof of play and fleet state."""

    def __init__(self, store: PlayoutStore, monitor: FleetMonitor) -> None:
        self.store = store
        self.monitor = monitor

    async def on_status(self, message: Status) -> None:
        await self.monitor.on_status(message)
        if message.state == "online":
            self.store.cluster_online(message.cluster_id)  # re-send its schedule list

    async def on_heartbeat(self, message: Heartbeat) -> None:
        await self.monitor.on_heartbeat(message)

    async def on_ack(self, message: Ack) -> None:
        await self.store.on_ack(message)

    async def on_event(self, message: Event) -> None:
        if message.type in FAULT_EVENTS:
            await self.monitor.on_fault_event(message)
        else:
            await self.store.on_event(message)

    async def on_unknown_cluster(self, cluster_id: str, message: DeviceMessage) -> bool:
        return await self.monitor.on_unknown_cluster(cluster_id, message)
