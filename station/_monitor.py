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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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

from ._alerts import AlertLog, OpenAlerts, Raised
from ._playout_store import PlayoutStore, ProofUpdate
from ._registry import note_status_change, snapshot
from ._services import Sessions

log = logging.getLogger(__name__)

FAULT_EVENTS = ("fault_raised", "fault_cleared")
SWEEP_LOG_IDS = 20  # ids named in the sweep's log line (the count gives the total)


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


async def add_data_use(db: AsyncSession, usage: Mapping[tuple[str, date], int]) -> None:
    """Add bytes to ``data_use`` rows (cluster, day), creating missing ones: one upsert
    statement for the batch, in ``db``'s transaction.

    The addition happens in SQL (``bytes = data_use.bytes + excluded.bytes``), not on a value
    read earlier: reads in our transactions are not isolated (SQLite's deferred BEGIN,
    PostgreSQL's READ COMMITTED), so a read-add-write would lose what another writer added in
    between, and two inserts of a new (cluster, day) would collide.
    """
    if not usage:
        return
    rows = [{"cluster_id": c, "day": d, "bytes": n} for (c, d), n in sorted(usage.items())]
    table = DataUse.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models
    dialect = db.get_bind().dialect.name
    insert = sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.cluster_id, table.c.day],
        set_={"bytes": table.c.bytes + insert.excluded.bytes},
    )
    await db.exec(upsert, params=rows)


# --------------------------------------------------------------------------- the monitor


class WriteFailed(RuntimeError):
    """Buffered device messages could not be written (they are logged and counted)."""


Received = tuple[datetime, DeviceMessage]  # (receipt time, Status | Heartbeat | fault Event)

RETIREMENT_RETRIES = 3


async def retired_meanwhile(db: AsyncSession, cluster_ids: list[str]) -> bool:
    """Whether a retirement committed between this transaction's read of these clusters and
    its write (which would have put their status back: a lost update).

    Reads hold no snapshot (SQLite sessions BEGIN at the first write; PostgreSQL reads
    committed), so after flushing our UPDATEs, which hold the rows' write locks, the row
    shows the retirement's ``retired_at`` (only retirement sets it; we never write it) next
    to the status we wrote.
    """
    await db.flush()
    rows = await db.exec(
        select(Cluster.id).where(
            col(Cluster.id).in_(cluster_ids),
            col(Cluster.retired_at).is_not(None),
            col(Cluster.status) != ClusterStatus.RETIRED,
        )
    )
    return rows.first() is not None


class FleetMonitor:
    """Cluster-state side of ``devices.DeviceHandler``: status, heartbeats, fault events.

    Messages are buffered per cluster in arrival order and written in one transaction per
    batch (``flush()``): at once when ``batch_s`` is None, else by a timer or when
    ``batch_max`` messages wait. A batch that fails is retried cluster by cluster so one bad
    row loses nothing else; what still fails is logged and counted in ``failed``.
    Every status/availability change adds a ``cluster_status_changes`` row in the same
    transaction.
    """

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
        self._pending: dict[str, list[Received]] = {}
        self._queued = 0
        self._lock = asyncio.Lock()
        self.failed = 0  # messages whose write failed (logged)
        self.alert_log = AlertLog()  # bounded logging of raised alerts (every one is a row)
        # Called with a cluster id after its birth was written (re-send its schedule list).
        self.birth_listeners: list[Callable[[str], None]] = []

    # -- DeviceHandler parts ---------------------------------------------------------------

    async def on_status(self, message: Status) -> None:
        await self._queue(message)

    async def on_heartbeat(self, message: Heartbeat) -> None:
        await self._queue(message)

    async def on_fault_event(self, message: Event) -> None:
        await self._queue(message)

    async def _queue(self, message: DeviceMessage) -> None:
        self._pending.setdefault(message.cluster_id, []).append((self.clock(), message))
        self._queued += 1
        if self.settings.batch_s is None or self._queued >= self.settings.batch_max:
            failed = self.failed
            await self.flush()
            if self.settings.batch_s is None and self.failed > failed:
                self.failed = failed  # counted by the caller (the gateway's handler_error)
                raise WriteFailed(f"message of {message.cluster_id} not written")

    @property
    def queued(self) -> int:
        return self._queued

    async def flush(self) -> None:
        """Write buffered messages: one transaction for the whole batch. Never raises."""
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._queued = self._pending, {}, 0
        births: list[str] = []
        try:
            births = await self._write(batch)
        except asyncio.CancelledError:  # stopping: keep the batch for the last flush
            for cluster_id, messages in batch.items():
                self._pending[cluster_id] = messages + self._pending.get(cluster_id, [])
            self._queued = sum(len(m) for m in self._pending.values())
            raise  # (written again if it had committed: every step is idempotent)
        except Exception:
            log.exception("writing messages of %d clusters failed: retrying each", len(batch))
            lost: list[str] = []
            for cluster_id, messages in batch.items():
                try:
                    births += await self._write({cluster_id: messages})
                except Exception as exc:
                    self.failed += len(messages)
                    lost.append(f"{cluster_id} ({len(messages)}: {exc!r:.100})")
            if lost:
                log.error("device messages not written: %s", "; ".join(lost[:20]))
        for cluster_id in births:
            for listener in self.birth_listeners:
                try:
                    listener(cluster_id)
                except Exception:
                    log.exception("birth listener failed for %s", cluster_id)

    async def _write(self, batch: dict[str, list[Received]]) -> list[str]:
        """One transaction: every buffered message, in order per cluster. Returns births."""
        for _attempt in range(RETIREMENT_RETRIES):
            births = await self._write_once(batch)
            if births is not None:
                return births
        raise RuntimeError(f"clusters of the batch kept being retired: {sorted(batch)[:10]}")

    async def _write_once(self, batch: dict[str, list[Received]]) -> list[str] | None:
        """None: a cluster was retired between our read and our write (rolled back)."""
        now = self.clock()
        ids = list(batch)
        beats = [(cid, at) for cid, ms in batch.items() for at, m in ms if isinstance(m, Heartbeat)]
        births: list[str] = []
        raised: list[Raised] = []
        async with self.sessions() as db:
            clusters = await db.exec(select(Cluster).where(col(Cluster.id).in_(ids)))
            known: dict[str, ClusterTelemetry] = {}
            usage: Counter[tuple[str, date]] = Counter()  # added in SQL: see add_data_use
            if beats:
                beating = list({cid for cid, _at in beats})
                telemetry = await db.exec(
                    select(ClusterTelemetry).where(col(ClusterTelemetry.cluster_id).in_(beating))
                )
                known = {t.cluster_id: t for t in telemetry.all()}
            open_alerts = await OpenAlerts.load_many(db, ids, now, raised)
            wills = [
                cid
                for cid, ms in batch.items()
                if any(isinstance(m, Status) and m.state != "online" for _at, m in ms)
            ]
            offline_times = await self._offline_times(db, wills, now)
            for cluster in clusters.all():
                if cluster.status == ClusterStatus.RETIRED:
                    continue
                alerts = open_alerts[cluster.id]
                telemetry_row: ClusterTelemetry | None = None
                for at, message in batch[cluster.id]:
                    alerts.now = at
                    before = snapshot(cluster)
                    if isinstance(message, Heartbeat):
                        if telemetry_row is None:
                            telemetry_row = known.get(cluster.id) or ClusterTelemetry(
                                cluster_id=cluster.id
                            )
                        used = self._apply(cluster, telemetry_row, alerts, message)
                        cluster.last_seen_at = at
                        if used > 0:
                            usage[(cluster.id, at.astimezone(self._tz).date())] += used
                        reason = "heartbeat"
                    elif isinstance(message, Status):
                        cluster.last_seen_at = at
                        if message.state == "online":
                            self._birth(cluster, alerts, message)
                            births.append(cluster.id)
                            reason = "birth"
                        else:
                            times = offline_times.setdefault(cluster.id, [])
                            self._set_offline(cluster, alerts, "will: connection lost", times)
                            reason = "will: connection lost"
                    else:
                        assert isinstance(message, Event)
                        reason = self._fault_event(cluster, alerts, message)
                    note_status_change(db, cluster, before, reason, at)
                if telemetry_row is not None:
                    db.add(telemetry_row)
                db.add(cluster)
            await add_data_use(db, usage)
            if await retired_meanwhile(db, ids):
                await db.rollback()
                return None
            await db.commit()
        self.alert_log.emit(raised)  # once written: a failed batch is raised again on retry
        return births

    def _birth(self, cluster: Cluster, alerts: OpenAlerts, message: Status) -> None:
        cluster.firmware = message.firmware or cluster.firmware
        cluster.model = message.model or cluster.model
        if message.capabilities is not None:
            cluster.capabilities = message.capabilities.model_dump()
        self._set_online(cluster, alerts)

    def _fault_event(self, cluster: Cluster, alerts: OpenAlerts, message: Event) -> str:
        code = str(getattr(message, "fault", None) or getattr(message, "code", None) or "unknown")
        if str(message.type) == "fault_raised":
            alerts.raise_(AlertKind.FAULT, f"fault: {code}", code)
        else:
            alerts.clear(AlertKind.FAULT, code)
        self._update_faulty(cluster, alerts)
        return f"{message.type}: {code}"

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

    async def on_unknown_cluster(self, cluster_id: str, message: DeviceMessage) -> bool:
        """A cluster the gateway does not know yet: taken if it is registered (by the CLI in
        another process, say: the gateway learns of it here), or auto-registered on its birth
        when that is on."""
        async with self.sessions() as db:
            registered = await db.get(Cluster, cluster_id)
            if registered is not None:
                return registered.status != ClusterStatus.RETIRED
            if not self.auto_register or not isinstance(message, Status):
                return False
            cluster = Cluster(id=cluster_id, name=cluster_id)
            db.add(cluster)
            await db.flush()
            note_status_change(db, cluster, None, "auto-registered on birth", self.clock())
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
        for _attempt in range(RETIREMENT_RETRIES):
            went_offline = await self._sweep_once()
            if went_offline is not None:
                return went_offline
        raise RuntimeError("clusters kept being retired during the sweep")

    async def _sweep_once(self) -> list[str] | None:
        """None: a silent cluster was retired between our read and our write (rolled back)."""
        now = self.clock()
        went_offline = []
        raised: list[Raised] = []
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
            silent: dict[str, int] = {}
            for cluster_id, last_seen, interval in rows.all():
                interval_s = interval or self.settings.heartbeat_interval_s
                if heartbeat_overdue(last_seen, interval_s, now, missed):
                    silent[cluster_id] = int(missed * interval_s)
            if silent:
                ids = list(silent)
                clusters = await db.exec(select(Cluster).where(col(Cluster.id).in_(ids)))
                open_alerts = await OpenAlerts.load_many(db, ids, now, raised)
                offline_times = await self._offline_times(db, ids, now)
                for cluster in clusters.all():
                    before = snapshot(cluster)
                    why = f"no heartbeat for {silent[cluster.id]} s"
                    times = offline_times.setdefault(cluster.id, [])
                    self._set_offline(cluster, open_alerts[cluster.id], why, times)
                    note_status_change(db, cluster, before, why, now)
                    went_offline.append(cluster.id)
            flapping = await db.exec(
                select(Alert).where(
                    Alert.kind == AlertKind.FLAPPING, col(Alert.cleared_at).is_(None)
                )
            )
            flaps = [a for a in flapping.all() if a.cluster_id is not None]  # clusters' kind
            if flaps:
                times_of = await self._offline_times(db, [a.cluster_id or "" for a in flaps], now)
                for alert in flaps:
                    if not self._flapping(times_of.get(alert.cluster_id or "", []), now):
                        alert.cleared_at = now
                        db.add(alert)
            if silent and await retired_meanwhile(db, list(silent)):
                await db.rollback()
                return None
            await db.commit()
        self.alert_log.emit(raised)  # also logs a tally that came due without new alerts
        if went_offline:
            shown = ", ".join(went_offline[:SWEEP_LOG_IDS])
            more = ", ..." if len(went_offline) > SWEEP_LOG_IDS else ""
            n = len(went_offline)
            count = f"{n:,} cluster{'s' if n != 1 else ''}"
            log.warning("%s silent, marked offline: %s%s", count, shown, more)
        return went_offline

    # -- helpers (inside the caller's transaction) -----------------------------------------

    def _set_online(self, cluster: Cluster, alerts: OpenAlerts) -> None:
        cluster.online = True
        if cluster.status != ClusterStatus.FAULTY:
            cluster.status = ClusterStatus.ONLINE
        alerts.db.add(cluster)
        alerts.clear(AlertKind.OFFLINE)

    def _set_offline(
        self, cluster: Cluster, alerts: OpenAlerts, why: str, offline_times: list[datetime]
    ) -> None:
        """``offline_times``: when this cluster's offline alerts of the flap window were
        raised (loaded by the caller); a new one is appended."""
        was_online = cluster.online
        cluster.online = False
        if cluster.status != ClusterStatus.FAULTY:
            cluster.status = ClusterStatus.OFFLINE
        alerts.db.add(cluster)
        raised = alerts.raise_(AlertKind.OFFLINE, why)
        if raised:
            offline_times.append(alerts.now)
        if not (was_online or raised):
            return
        if self._flapping(offline_times, alerts.now):
            n, window = self.settings.flap_count, self.settings.flap_window
            detail = f"{n}+ disconnections within {int(window.total_seconds() // 60)} min"
            alerts.raise_(AlertKind.FLAPPING, detail)

    def _flapping(self, offline_times: Iterable[datetime], now: datetime) -> bool:
        return is_flapping(offline_times, now, self.settings.flap_count, self.settings.flap_window)

    async def _offline_times(
        self, db: AsyncSession, cluster_ids: list[str], now: datetime
    ) -> dict[str, list[datetime]]:
        """Raise times of the offline alerts within the flap window, per cluster (one query)."""
        if not cluster_ids:
            return {}
        since = now - self.settings.flap_window
        rows = await db.exec(
            select(Alert.cluster_id, Alert.raised_at).where(
                col(Alert.cluster_id).in_(cluster_ids),
                Alert.kind == AlertKind.OFFLINE,
                col(Alert.raised_at) >= since,
            )
        )
        found: dict[str, list[datetime]] = {}
        for cluster_id, raised_at in rows.all():
            found.setdefault(cluster_id or "", []).append(raised_at)  # selected by cluster
        return found

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
    """One ``devices.DeviceHandler`` from the two halves: proof of play and fleet state.

    Acks and playback events are buffered like the monitor's messages and written in one
    transaction per batch (``PlayoutStore.apply_proof``), in arrival order; with the monitor's
    ``batch_s`` None each is written at once. The gateway calls
    ``flush()`` every ``flush_interval_s`` and once more when it stops.
    """

    def __init__(self, store: PlayoutStore, monitor: FleetMonitor) -> None:
        self.store = store
        self.monitor = monitor
        self.batch_s = monitor.settings.batch_s
        self.batch_max = monitor.settings.batch_max
        self._proof: list[ProofUpdate] = []
        self._proof_lock = asyncio.Lock()
        self.failed = 0  # acks/events whose write failed (logged)
        self._reported = 0
        monitor.birth_listeners.append(store.cluster_online)  # re-send its schedule list
        if self.batch_s is not None:
            store.proof_sink = self._queue_proof

    @property
    def flush_interval_s(self) -> float | None:
        return self.batch_s

    async def on_status(self, message: Status) -> None:
        await self.monitor.on_status(message)

    async def on_heartbeat(self, message: Heartbeat) -> None:
        await self.monitor.on_heartbeat(message)

    async def on_ack(self, message: Ack) -> None:
        await self.store.on_ack(message)  # into _queue_proof when batching

    async def on_event(self, message: Event) -> None:
        if message.type in FAULT_EVENTS:
            await self.monitor.on_fault_event(message)
        else:
            await self.store.on_event(message)

    async def on_unknown_cluster(self, cluster_id: str, message: DeviceMessage) -> bool:
        return await self.monitor.on_unknown_cluster(cluster_id, message)

    async def _queue_proof(self, update: ProofUpdate) -> None:
        self._proof.append(update)
        if len(self._proof) >= self.batch_max:
            await self._flush_proof()

    async def flush(self) -> int:
        """Write everything buffered (monitor first, then proof of play); never raises.
        Returns how many messages failed to be written since the last call (logged)."""
        await self.monitor.flush()
        await self._flush_proof()
        total = self.failed + self.monitor.failed
        new, self._reported = total - self._reported, total
        return new

    async def _flush_proof(self) -> None:
        async with self._proof_lock:
            if not self._proof:
                return
            batch, self._proof = self._proof, []
            try:
                await self.store.apply_proof(batch)
                return
            except asyncio.CancelledError:  # stopping: keep them for the last flush
                self._proof[:0] = batch
                raise
            except Exception:
                log.exception("writing %d acks/events failed: retrying one by one", len(batch))
            lost = []
            for update in batch:
                try:
                    await self.store.apply_proof([update])
                except Exception as exc:
                    self.failed += 1
                    lost.append(f"{update.session_id}/{update.cluster_id} ({exc!r:.100})")
            if lost:
                log.error("proof of play not written: %s", "; ".join(lost[:20]))
