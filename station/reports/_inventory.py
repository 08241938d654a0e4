"""The inventory report: clusters by kind and status, installations in the period, coverage.

Statuses are **as of the period end**, read from the status history (``cluster_status_changes``,
migration ``fleet_2``): the last change before the end; a cluster whose history starts after
the end had the status that first change left (or, registered after the end, is left out
unless it was installed by then); a cluster with no history (registered before ``fleet_2``, or
imported) counts with its current status. Availability is the fraction of the period (up to
now) a reporting cluster was online, over the part of the period its history covers.

Coverage follows the registry's rule (``station._registry_import``): a village is covered when
it has a working cluster; a legacy FM/wired cluster works only while its bridge works.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station._registry import LEGACY, NOT_WORKING
from station._registry_import import VillageCoverage
from station.db import Cluster, ClusterKind, ClusterStatus, InstalledAs, Village
from station.db.models_fleet import ClusterStatusChange

from ._model import Cell, Report, Table
from ._periods import Period

__all__ = ["AsOf", "clusters_as_of", "inventory_report"]

Sessions = async_sessionmaker[AsyncSession]
KINDS = [k.value for k in (ClusterKind.ICT, ClusterKind.FM, ClusterKind.WIRED, ClusterKind.BRIDGE)]


@dataclass(frozen=True)
class AsOf:
    """A cluster's status at the period end, and its time online within the period."""

    status: ClusterStatus
    availability: float | None  # None: no history covers the period, or never connects


def status_as_of(
    cluster: Cluster,
    changes: Sequence[ClusterStatusChange],
    first_after: ClusterStatusChange | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> AsOf | None:
    """``changes``: the cluster's rows before ``end`` in order; ``first_after``: its first row
    at or after ``end``. None: the cluster was not registered (nor installed) by the end."""
    if changes:
        status = ClusterStatus(changes[-1].to_status)
    elif first_after is not None:
        if first_after.from_status is None:  # registered after the period
            installed = cluster.installed_on is not None and cluster.installed_on < end.date()
            if not installed:
                return None
            status = ClusterStatus(first_after.to_status)
        else:
            status = ClusterStatus(first_after.from_status)
    else:
        return AsOf(ClusterStatus(cluster.status), None)  # no history: the current status
    if cluster.kind in LEGACY:
        return AsOf(status, None)
    return AsOf(status, _availability(changes, start, min(end, now)))


def _availability(
    changes: Sequence[ClusterStatusChange], start: datetime, stop: datetime
) -> float | None:
    """Fraction of [start, stop) online, over the part the history covers: all of it when a
    row before ``start`` gives the state, else from the first row inside (the registration,
    or the first change recorded of a cluster older than the history)."""
    covered_from: datetime | None = None
    online, at, up = False, start, 0.0
    for row in changes:
        if row.at >= stop:
            break
        if row.at < start:
            covered_from, online = start, row.online
            continue
        if covered_from is None:
            covered_from = row.at
        elif online:
            up += (row.at - at).total_seconds()
        at, online = row.at, row.online
    if covered_from is None:
        return None
    if online:
        up += (stop - at).total_seconds()
    span = (stop - covered_from).total_seconds()
    return round(up / span, 4) if span > 0 else None


async def _history(
    db: AsyncSession, end: datetime
) -> tuple[dict[str, list[ClusterStatusChange]], dict[str, ClusterStatusChange]]:
    rows = await db.exec(
        select(ClusterStatusChange)
        .where(col(ClusterStatusChange.at) < end)
        .order_by(col(ClusterStatusChange.at), col(ClusterStatusChange.id))
    )
    before: dict[str, list[ClusterStatusChange]] = {}
    for row in rows.all():
        before.setdefault(row.cluster_id, []).append(row)
    first = (
        select(
            ClusterStatusChange.cluster_id,
            func.min(ClusterStatusChange.at).label("first_at"),
        )
        .where(col(ClusterStatusChange.at) >= end)
        .group_by(col(ClusterStatusChange.cluster_id))
        .subquery()
    )
    later = await db.exec(
        select(ClusterStatusChange)
        .join(
            first,
            (col(ClusterStatusChange.cluster_id) == first.c.cluster_id)
            & (col(ClusterStatusChange.at) == first.c.first_at),
        )
        .order_by(col(ClusterStatusChange.id))
    )
    after: dict[str, ClusterStatusChange] = {}
    for row in later.all():
        after.setdefault(row.cluster_id, row)
    return before, after


def _working(cluster: Cluster, status: dict[str, ClusterStatus]) -> bool:
    """``is_working`` of the registry, with statuses as of the period end."""
    if status[cluster.id] in NOT_WORKING:
        return False
    if cluster.kind in LEGACY:
        bridge = status.get(cluster.bridge_id or "")
        return bridge is not None and bridge not in NOT_WORKING
    return True


async def clusters_as_of(
    db: AsyncSession, start: datetime, end: datetime, now: datetime
) -> tuple[list[Cluster], dict[str, AsOf]]:
    """The clusters registered (or installed) by ``end``, in id order, with their status at
    ``end`` and availability in [start, end). The activity report's availability chart reads
    the same, so both reports show the same uptime."""
    everything = (await db.exec(select(Cluster).order_by(col(Cluster.id)))).all()
    before, after = await _history(db, end)
    as_of: dict[str, AsOf] = {}
    for c in everything:
        found = status_as_of(c, before.get(c.id, []), after.get(c.id), start, end, now)
        if found is not None:
            as_of[c.id] = found
    return [c for c in everything if c.id in as_of], as_of


async def inventory_report(sessions: Sessions, period: Period, tz: tzinfo) -> Report:
    start, end = period.bounds(tz)
    now = datetime.now(UTC)
    async with sessions() as db:
        clusters, as_of = await clusters_as_of(db, start, end, now)
        village_rows = (await db.exec(select(Village).order_by(col(Village.id)))).all()
    status = {cid: a.status for cid, a in as_of.items()}
    villages = [
        VillageCoverage(
            v.id,
            v.name,
            v.households,
            [c.id for c in mine if _working(c, status)],
            [c.id for c in mine if not _working(c, status)],
        )
        for v in village_rows
        for mine in [
            [c for c in clusters if c.village_id == v.id and status[c.id] != ClusterStatus.RETIRED]
        ]
    ]
    by_kind = Table(
        "by_kind", ["kind", "total", "working", "not_working", "retired"], coded=frozenset({"kind"})
    )
    for kind in KINDS:
        mine = [c for c in clusters if c.kind == kind]
        live = [c for c in mine if status[c.id] != ClusterStatus.RETIRED]
        ok = sum(_working(c, status) for c in live)
        by_kind.rows.append([kind, len(live), ok, len(live) - ok, len(mine) - len(live)])
    statuses = Counter((str(c.kind), str(status[c.id])) for c in clusters)
    by_status = Table("by_status", ["kind", "status", "count"], coded=frozenset({"kind"}))
    by_status.rows = [[k, s, n] for (k, s), n in sorted(statuses.items())]
    done = [
        c
        for c in clusters
        if c.installed_on is not None
        and c.installed_as is not None
        and period.first <= c.installed_on <= period.last
    ]
    installs = Table(
        "installations",
        ["cluster", "title", "kind", "village", "installed_as", "installed_on", "replaces"],
        coded=frozenset({"kind", "installed_as"}),
    )
    installs.rows = [
        [
            c.id,
            c.name,
            str(c.kind),
            c.village_id or "",
            str(c.installed_as),
            c.installed_on.isoformat() if c.installed_on else "",
            c.replaces or "",
        ]
        for c in sorted(done, key=lambda c: (c.installed_on or period.first, c.id))
    ]
    counts = Counter(str(c.installed_as) for c in done)
    cover = Table(
        "villages",
        ["village", "title", "households", "covered", "clusters_working", "not_working"],
        coded=frozenset({"covered"}),
    )
    cover.rows = [
        [
            v.village_id,
            v.name,
            v.households,
            "yes" if v.covered else "no",
            " ".join(v.working),
            " ".join(v.not_working),
        ]
        for v in villages
    ]
    per_cluster = Table(
        "by_cluster",
        ["cluster", "title", "kind", "village", "status", "availability"],
        coded=frozenset({"kind"}),
    )
    per_cluster.rows = [
        [c.id, c.name, str(c.kind), c.village_id or "", str(status[c.id]), as_of[c.id].availability]
        for c in clusters
    ]
    live_all = [c for c in clusters if status[c.id] != ClusterStatus.RETIRED]
    summary: dict[str, Cell] = {
        "clusters_total": len(live_all),
        "clusters_working": sum(_working(c, status) for c in live_all),
        **{k.value: counts.get(k.value, 0) for k in InstalledAs},
        "villages_total": len(villages),
        "villages_covered": sum(v.covered for v in villages),
        "villages_not_covered": sum(not v.covered for v in villages),
        "households_covered": sum(v.households or 0 for v in villages if v.covered),
    }
    return Report(
        "inventory",
        period,
        str(tz),
        summary,
        [by_kind, by_status, installs, cover, per_cluster],
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
