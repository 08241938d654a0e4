"""Prometheus ``GET /metrics``, collected at scrape time from what already counts.

Each app has its own ``CollectorRegistry`` (never the global default), so several stations in
one process do not collide. A scrape first reads the database (async), then renders a snapshot
through one custom collector; in-process counters (gateway, MQTT link, media worker) are read
directly from their objects.

Plays: on time when ``|skew| <= metrics.on_time_ms``, late when beyond it (early starts count as
late too), missed when a play record never started and its play command has expired
(``scheduled_start + scheduler.play_expiry_s`` has passed) or it failed / was refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import (
    Cluster,
    ClusterStatus,
    OutboxMessage,
    PlayRecord,
    PlayRecordStatus,
    UpstreamExchange,
)

from . import _keys as keys

__all__ = [
    "SKEW_BUCKETS_S",
    "Snapshot",
    "StationMetrics",
    "gather",
    "metrics_ctx",
    "metrics_view",
]

SKEW_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ACKED = (
    PlayRecordStatus.ACKED,
    PlayRecordStatus.STARTED,
    PlayRecordStatus.FINISHED,
    PlayRecordStatus.INTERRUPTED,
)


@dataclass
class Snapshot:
    clusters: dict[str, int] = field(default_factory=dict)  # online/offline
    commands_sent: int = 0
    acks_received: int = 0
    play_commands: dict[str, int] = field(default_factory=dict)  # acked/failed/unacked
    plays: dict[str, int] = field(default_factory=dict)  # on_time/late/missed
    skew_buckets: list[int] = field(default_factory=list)  # cumulative, per SKEW_BUCKETS_S
    skew_count: int = 0
    skew_sum_s: float = 0.0
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, reason)
    outbox: dict[str, int] = field(default_factory=dict)
    exchanges: dict[tuple[str, str, str], int] = field(default_factory=dict)
    ingest_pending: int = 0


class StationMetrics(Collector):
    """The station's collector; ``render(snapshot)`` produces the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._snapshot = Snapshot()
        self.registry.register(self)

    def render(self, snapshot: Snapshot) -> bytes:
        self._snapshot = snapshot  # no await between this and generate_latest
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot
        clusters = GaugeMetricFamily("loaxa_clusters", "Clusters by link state", labels=["state"])
        for state in ("online", "offline"):
            clusters.add_metric([state], s.clusters.get(state, 0))
        yield clusters
        yield CounterMetricFamily(
            "loaxa_commands_sent",
            "Commands published to clusters (this process)",
            value=s.commands_sent,
        )
        yield CounterMetricFamily(
            "loaxa_command_acks",
            "Command acks received from clusters (this process)",
            value=s.acks_received,
        )
        play_cmds = GaugeMetricFamily(
            "loaxa_play_commands", "Play commands by outcome (proof of play)", labels=["result"]
        )
        for result in ("acked", "failed", "unacked"):
            play_cmds.add_metric([result], s.play_commands.get(result, 0))
        yield play_cmds
        plays = CounterMetricFamily(
            "loaxa_plays", "Plays by punctuality (proof of play)", labels=["result"]
        )
        for result in ("on_time", "late", "missed"):
            plays.add_metric([result], s.plays.get(result, 0))
        yield plays
        skew = HistogramMetricFamily(
            "loaxa_play_start_skew_seconds", "Absolute start skew of plays that started"
        )
        buckets = [(str(b), c) for b, c in zip(SKEW_BUCKETS_S, s.skew_buckets, strict=False)]
        skew.add_metric([], [*buckets, ("+Inf", s.skew_count)], s.skew_sum_s)
        yield skew
        dropped = CounterMetricFamily(
            "loaxa_mqtt_dropped", "MQTT messages dropped", labels=["source", "reason"]
        )
        for (source, reason), count in sorted(s.dropped.items()):
            dropped.add_metric([source, reason], count)
        yield dropped
        outbox = GaugeMetricFamily(
            "loaxa_upstream_outbox", "Upstream outbox rows by status", labels=["status"]
        )
        for status in ("pending", "sent", "failed"):
            outbox.add_metric([status], s.outbox.get(status, 0))
        yield outbox
        exchanges = CounterMetricFamily(
            "loaxa_upstream_exchanges",
            "Exchanges with the upstream system",
            labels=["direction", "kind", "status"],
        )
        for labels, count in sorted(s.exchanges.items()):
            exchanges.add_metric(list(labels), count)
        yield exchanges
        yield GaugeMetricFamily(
            "loaxa_media_ingest_pending",
            "Media ingests waiting or running",
            value=s.ingest_pending,
        )


async def gather(app: web.Application, now: datetime | None = None) -> Snapshot:
    now = now or datetime.now(UTC)
    settings = app[keys.SETTINGS]
    s = Snapshot()
    if keys.GATEWAY in app:
        gateway = app[keys.GATEWAY]
        s.commands_sent = gateway.commands_sent
        s.acks_received = gateway.received.get("ack", 0)
        s.dropped.update({("gateway", r): n for r, n in gateway.dropped.items()})
    if keys.LINK in app:
        s.dropped[("link", "queue_full")] = 0  # always present: the one drop reason of the link
        s.dropped.update({("link", r): n for r, n in app[keys.LINK].dropped.items()})
    if keys.MEDIA_WORKER in app:
        s.ingest_pending = app[keys.MEDIA_WORKER].pending
    tolerance = settings.metrics.on_time_ms
    expired_before = now - timedelta(seconds=settings.scheduler.play_expiry_s)
    async with app[keys.SESSIONS]() as db:
        rows = await db.exec(
            select(Cluster.online, func.count())
            .where(Cluster.status != ClusterStatus.RETIRED)
            .group_by(col(Cluster.online))
        )
        for online, count in rows:
            s.clusters["online" if online else "offline"] = count
        rows2 = await db.exec(select(PlayRecord.status, func.count()).group_by(PlayRecord.status))
        for status, count in rows2:
            result = (
                "acked"
                if status in _ACKED
                else "failed"
                if status in (PlayRecordStatus.NACKED, PlayRecordStatus.FAILED)
                else "unacked"
            )
            s.play_commands[result] = s.play_commands.get(result, 0) + count
        s.plays = await _plays(db, tolerance, expired_before)
        await _skew(db, s)
        rows3 = await db.exec(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        s.outbox = {str(status): count for status, count in rows3}
        rows4 = await db.exec(
            select(
                UpstreamExchange.direction,
                UpstreamExchange.kind,
                UpstreamExchange.status,
                func.count(),
            ).group_by(UpstreamExchange.direction, UpstreamExchange.kind, UpstreamExchange.status)
        )
        s.exchanges = {(d, k, st): n for d, k, st, n in rows4}
    return s


async def _plays(db: AsyncSession, tolerance_ms: int, expired_before: datetime) -> dict[str, int]:
    skew = func.abs(col(PlayRecord.skew_ms))
    started = col(PlayRecord.skew_ms).is_not(None)
    never = col(PlayRecord.started_at).is_(None) & (
        col(PlayRecord.status).in_([PlayRecordStatus.FAILED, PlayRecordStatus.NACKED])
        | (col(PlayRecord.scheduled_start) < expired_before)
    )
    query = select(
        func.sum(sa.case((started & (skew <= tolerance_ms), 1), else_=0)),
        func.sum(sa.case((started & (skew > tolerance_ms), 1), else_=0)),
        func.sum(sa.case((never, 1), else_=0)),
    )
    on_time, late, missed = (await db.exec(query)).one()
    return {"on_time": int(on_time or 0), "late": int(late or 0), "missed": int(missed or 0)}


async def _skew(db: AsyncSession, s: Snapshot) -> None:
    skew = func.abs(col(PlayRecord.skew_ms))
    columns = [func.sum(sa.case((skew <= bound * 1000, 1), else_=0)) for bound in SKEW_BUCKETS_S]
    query = select(func.count(col(PlayRecord.skew_ms)), func.sum(skew), *columns)
    count, total_ms, *buckets = (await db.exec(query)).one()  # type: ignore[var-annotated]
    s.skew_count = int(count or 0)
    s.skew_sum_s = float(total_ms or 0) / 1000
    s.skew_buckets = [int(b or 0) for b in buckets]


async def metrics_view(request: web.Request) -> web.Response:
    app = request.app
    if not app[keys.SETTINGS].metrics.enabled:
        raise web.HTTPNotFound()
    body = app[keys.METRICS].render(await gather(app))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: this app's own registry and collector."""
    app[keys.METRICS] = StationMetrics()
    yield
