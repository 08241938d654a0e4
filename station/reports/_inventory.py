"""The inventory report: clusters by kind and status, installations in the period, coverage.

Coverage is the registry's (``station._registry_import.coverage``): a village is covered when it
has a working cluster; a legacy FM/wired cluster works only while its bridge works.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, tzinfo

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station._registry_import import coverage, is_working
from station.db import Cluster, ClusterKind, ClusterStatus, InstalledAs

from ._model import Cell, Report, Table
from ._periods import Period

__all__ = ["inventory_report"]

Sessions = async_sessionmaker[AsyncSession]
KINDS = [k.value for k in (ClusterKind.ICT, ClusterKind.FM, ClusterKind.WIRED, ClusterKind.BRIDGE)]


async def inventory_report(sessions: Sessions, period: Period, tz: tzinfo) -> Report:
    async with sessions() as db:
        clusters = (await db.exec(select(Cluster).order_by(col(Cluster.id)))).all()
    villages = await coverage(sessions)
    bridges = {c.id: c for c in clusters if c.kind == ClusterKind.BRIDGE}
    by_kind = Table(
        "by_kind", ["kind", "total", "working", "not_working", "retired"], coded=frozenset({"kind"})
    )
    for kind in KINDS:
        mine = [c for c in clusters if c.kind == kind]
        live = [c for c in mine if c.status != ClusterStatus.RETIRED]
        ok = sum(is_working(c, bridges) for c in live)
        by_kind.rows.append([kind, len(live), ok, len(live) - ok, len(mine) - len(live)])
    statuses = Counter((str(c.kind), str(c.status)) for c in clusters)
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
    live_all = [c for c in clusters if c.status != ClusterStatus.RETIRED]
    summary: dict[str, Cell] = {
        "clusters_total": len(live_all),
        "clusters_working": sum(is_working(c, bridges) for c in live_all),
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
        [by_kind, by_status, installs, cover],
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
