"""The open alerts of one cluster inside one transaction: loaded once, raised/cleared in memory.

One query per device message instead of one per check keeps heartbeat handling cheap at fleet
scale. At most one alert is open per (cluster, kind, code).

Every alert is a row; the log gets a bounded number of lines (``AlertLog``): a will storm of
10,000 clusters must not print 10,000 lines.

Live mounts have alerts too (subject ``mount`` instead of ``cluster_id``): the live hub queues
``MountAlertEvent``s and its writer applies them in batches (``write_mount_alerts``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import Alert, AlertKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Raised:
    """An alert raised in a batch, to be logged once the batch is written."""

    kind: AlertKind
    cluster_id: str
    detail: str


ALERT_LINE = "alert on %s: %s %s"  # cluster, kind, detail


class AlertLog:
    """Logs raised alerts in a bounded way.

    At most ``lines`` alerts per ``interval_s`` get a line of their own (a single alert still
    names its cluster); beyond that, alerts are tallied per kind and logged as one summary line
    per kind ("alerts: offline on 1,000 clusters (990 not logged one by one), e.g. C0990, ..."),
    at most once every ``summary_s``; ``flush()`` logs a tally that came due without new
    alerts. A storm therefore costs at most ``lines`` lines per ``interval_s`` plus one line per
    kind per ``summary_s``, whatever the fleet size. ``clock`` is monotonic (durations only).
    """

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        lines: int = 10,
        interval_s: float = 60.0,
        summary_s: float = 5.0,
        examples: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.lines, self.interval_s, self.summary_s = lines, interval_s, summary_s
        self.examples = examples
        self.clock = clock
        self._window_start: float | None = None
        self._left = lines  # lines of their own left in the current interval
        self._last_summary: float | None = None
        # Since the last summary, by kind: every alert, those only tallied, the first of those.
        self._total: Counter[AlertKind] = Counter()
        self._tallied: Counter[AlertKind] = Counter()
        self._examples: dict[AlertKind, list[str]] = {}

    def emit(self, raised: Sequence[Raised]) -> None:
        """Log a written batch's alerts (lines of their own while the interval allows, the
        rest tallied), then the tally if a summary is due."""
        now = self.clock()
        if self._window_start is None or now - self._window_start >= self.interval_s:
            self._window_start, self._left = now, self.lines
            if not self._tallied:
                self._total.clear()  # the summary's count starts with the interval
        for alert in raised:
            self._total[alert.kind] += 1
            if self._left > 0:
                self._left -= 1
                self.logger.warning(ALERT_LINE, alert.cluster_id, alert.kind, alert.detail)
                continue
            self._tallied[alert.kind] += 1
            examples = self._examples.setdefault(alert.kind, [])
            if len(examples) < self.examples:
                examples.append(alert.cluster_id)
        self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Log the tally, one line per kind, if there is one and no summary was logged within
        ``summary_s``."""
        now = self.clock() if now is None else now
        if not self._tallied:
            return
        if self._last_summary is not None and now - self._last_summary < self.summary_s:
            return
        total, tallied, examples = self._total, self._tallied, self._examples
        self._total, self._tallied, self._examples = Counter(), Counter(), {}
        self._last_summary = now
        for kind, count in tallied.items():
            more = ", ..." if count > len(examples[kind]) else ""
            self.logger.warning(
                "alerts: %s on %s (%s not logged one by one), e.g. %s%s",
                kind,
                f"{total[kind]:,} cluster{'' if total[kind] == 1 else 's'}",
                f"{count:,}",
                ", ".join(examples[kind]),
                more,
            )


class OpenAlerts:
    """``raised``: where new alerts go to be logged after the write (``AlertLog.emit``); None
    logs each at once."""

    def __init__(
        self,
        db: AsyncSession,
        cluster_id: str,
        now: datetime,
        rows: list[Alert],
        raised: list[Raised] | None = None,
    ):
        self.db = db
        self.cluster_id = cluster_id
        self.now = now
        self._rows = rows
        self._raised = raised

    @classmethod
    async def load(cls, db: AsyncSession, cluster_id: str, now: datetime) -> OpenAlerts:
        rows = await db.exec(
            select(Alert).where(Alert.cluster_id == cluster_id, col(Alert.cleared_at).is_(None))
        )
        return cls(db, cluster_id, now, list(rows.all()))

    @classmethod
    async def load_many(
        cls,
        db: AsyncSession,
        cluster_ids: list[str],
        now: datetime,
        raised: list[Raised] | None = None,
    ) -> dict[str, OpenAlerts]:
        """Open alerts of many clusters in one query; ``raised`` collects the batch's new
        alerts for one bounded log (see ``AlertLog``)."""
        rows = await db.exec(
            select(Alert).where(
                col(Alert.cluster_id).in_(cluster_ids), col(Alert.cleared_at).is_(None)
            )
        )
        found: dict[str, list[Alert]] = {cid: [] for cid in cluster_ids}
        for alert in rows.all():
            found[alert.cluster_id or ""].append(alert)  # never None: selected by cluster
        return {cid: cls(db, cid, now, alerts, raised) for cid, alerts in found.items()}

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
        if self._raised is None:
            log.warning(ALERT_LINE, self.cluster_id, kind, detail)
        else:
            self._raised.append(Raised(kind, self.cluster_id, detail))
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
        .where(col(Alert.cleared_at).is_(None), col(Alert.cluster_id).is_not(None))
        .group_by(col(Alert.cluster_id))
    )
    return {cid: int(n) for cid, n in rows.all() if cid is not None}


# --------------------------------------------------------------------------- live mounts


@dataclass(frozen=True)
class MountAlertEvent:
    """A live mount's alert raised (or cleared) at ``at``, queued by the live hub."""

    mount: str
    kind: AlertKind
    detail: str
    raised: bool
    at: datetime


async def write_mount_alerts(db: AsyncSession, events: Sequence[MountAlertEvent]) -> int:
    """Apply ``events`` in order in ``db``'s transaction: a raise opens an alert unless the
    same (mount, kind) is open, a clear closes the open one. One query loads the open alerts
    of the batch's mounts. Returns how many alerts were opened."""
    if not events:
        return 0
    mounts = sorted({e.mount for e in events})
    rows = await db.exec(
        select(Alert).where(col(Alert.mount).in_(mounts), col(Alert.cleared_at).is_(None))
    )
    open_: dict[tuple[str, AlertKind], Alert] = {}
    for alert in rows.all():
        open_[(alert.mount or "", alert.kind)] = alert  # never None: selected by mount
    opened = 0
    for event in events:
        key = (event.mount, event.kind)
        found = open_.get(key)
        if event.raised and found is None:
            alert = Alert(mount=event.mount, kind=event.kind, detail=event.detail,
                          raised_at=event.at)  # fmt: skip
            db.add(alert)
            open_[key] = alert
            opened += 1
        elif not event.raised and found is not None:
            found.cleared_at = event.at
            db.add(found)
            del open_[key]
    return opened


async def clear_mount_alerts(db: AsyncSession, at: datetime) -> int:
    """Close every open mount alert as of ``at`` (in ``db``'s transaction). A station that
    starts runs no mount yet: what alerts left open by the previous run said is over."""
    result = await db.exec(
        update(Alert)
        .where(col(Alert.mount).is_not(None), col(Alert.cleared_at).is_(None))
        .values(cleared_at=at)
    )
    return int(result.rowcount or 0)


async def mount_alerts(
    db: AsyncSession, *, open_only: bool = False, limit: int = 200
) -> list[Alert]:
    """The newest ``limit`` alerts of live mounts (only the open ones if ``open_only``),
    oldest first."""
    query = select(Alert).where(col(Alert.mount).is_not(None))
    if open_only:
        query = query.where(col(Alert.cleared_at).is_(None))
    query = query.order_by(col(Alert.raised_at).desc(), col(Alert.id).desc()).limit(limit)
    rows = list((await db.exec(query)).all())
    rows.reverse()
    return rows
