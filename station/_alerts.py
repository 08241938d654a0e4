"""The open alerts of one cluster inside one transaction: loaded once, raised/cleared in memory.

One query per device message instead of one per check keeps heartbeat handling cheap at fleet
scale. At most one alert is open per (cluster, kind, code).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import Alert, AlertKind

log = logging.getLogger(__name__)


class OpenAlerts:
    def __init__(self, db: AsyncSession, cluster_id: str, now: datetime, rows: list[Alert]):
        self.db = db
        self.cluster_id = cluster_id
        self.now = now
        self._rows = rows

    @classmethod
    async def load(cls, db: AsyncSession, cluster_id: str, now: datetime) -> OpenAlerts:
        rows = await db.exec(
            select(Alert).where(Alert.cluster_id == cluster_id, col(Alert.cleared_at).is_(None))
        )
        return cls(db, cluster_id, now, list(rows.all()))

    @classmethod
    async def load_many(
        cls, db: AsyncSession, cluster_ids: list[str], now: datetime
    ) -> dict[str, OpenAlerts]:
        rows = await db.exec(
            select(Alert).where(
                col(Alert.cluster_id).in_(cluster_ids), col(Alert.cleared_at).is_(None)
            )
        )
        found: dict[str, list[Alert]] = {cid: [] for cid in cluster_ids}
        for alert in rows.all():
            found[alert.cluster_id].append(alert)
        return {cid: cls(db, cid, now, alerts) for cid, alerts in found.items()}

    def find(self, kind: AlertKind, code: str | None = None) -> list[Alert]:
        return [a for a in self._rows if a.kind == kind and (code is None or a.code == code)]

    def raise_(self, kind: AlertKind, detail: str, code: str = "") -> bool:
        """Open an alert unless the same one is open; True if a new one was raised."""
        if self.find(kind, code):
            return False
        alert = Alert(
            cluster_id=self.cluster_id, kind=kind, code=code, detail=detail, raised_at=self.now
        )
        self.db.add(alert)
        self._rows.append(alert)
        log.warning("alert on %s: %s %s", self.cluster_id, kind, detail)
        return True

    def clear(self, kind: AlertKind, code: str | None = None) -> None:
        for alert in self.find(kind, code):
            alert.cleared_at = self.now
            self.db.add(alert)
            self._rows.remove(alert)


async def open_alert_counts(db: AsyncSession) -> dict[str, int]:
    """Cluster id -> number of open alerts."""
    rows = await db.exec(
        select(Alert.cluster_id, func.count())
        .where(col(Alert.cleared_at).is_(None))
        .group_by(col(Alert.cluster_id))
    )
    return {cid: int(n) for cid, n in rows.all()}
