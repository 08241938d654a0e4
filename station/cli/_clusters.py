"""Read-only views of the fleet: clusters, alerts, coverage, data use, villages, zones, stats."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from station.config import Settings

from ._common import Sessions, Subparsers, add_command, settings_from, with_station_db


def _when(value: datetime | None, settings: Settings) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(settings.station.tzinfo):%Y-%m-%d %H:%M:%S}"


def cmd_clusters(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from station._alerts import open_alert_counts
    from station.db import Cluster, ClusterStatus, ClusterTelemetry

    async def body(sessions: Sessions, settings: Settings) -> int:
        async with sessions() as db:
            query = (
                select(Cluster, ClusterTelemetry)
                .join(
                    ClusterTelemetry,
                    col(ClusterTelemetry.cluster_id) == col(Cluster.id),
                    isouter=True,
                )
                .order_by(col(Cluster.id))
            )
            if not args.all:
                query = query.where(col(Cluster.status) != ClusterStatus.RETIRED)
            rows = (await db.exec(query)).all()
            alerts = await open_alert_counts(db)
        print(
            f"{'id':<10} {'kind':<6} {'status':<11} {'online':<6} {'last seen':<19} "
            f"{'village':<8} {'signal':<9} {'alerts':>6}  name"
        )
        for c, t in rows:
            online = "-" if c.kind in ("fm", "wired") else ("yes" if c.online else "no")
            signal = "-"
            if t is not None and t.signal_dbm is not None:
                signal = f"{t.signal_dbm}dBm {t.network or ''}".strip()
            print(
                f"{c.id:<10} {c.kind:<6} {c.status:<11} {online:<6} "
                f"{_when(c.last_seen_at, settings):<19} {c.village_id or '-':<8} "
                f"{signal:<9} {alerts.get(c.id, 0):>6}  {c.name}"
            )
        return 0

    return with_station_db(args, body)


def cmd_alerts(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from station.db import Alert

    async def body(sessions: Sessions, settings: Settings) -> int:
        query = select(Alert).order_by(col(Alert.raised_at).desc()).limit(args.limit)
        if not args.all:
            query = query.where(col(Alert.cleared_at).is_(None))
        async with sessions() as db:
            rows = (await db.exec(query)).all()
        if not rows:
            print("no open alerts" if not args.all else "no alerts")
            return 0
        print(f"{'cluster':<10} {'kind':<10} {'raised':<19} {'cleared':<19} detail")
        for a in rows:
            subject = a.cluster_id or f"live:{a.mount}"  # a live mount's alert (docs/live.md)
            print(
                f"{subject:<10} {a.kind:<10} {_when(a.raised_at, settings):<19} "
                f"{_when(a.cleared_at, settings):<19} {a.detail}"
            )
        return 0

    return with_station_db(args, body)


def cmd_coverage(args: argparse.Namespace) -> int:
    from station._registry_import import coverage

    async def body(sessions: Sessions, _settings: Settings) -> int:
        report = await coverage(sessions)
        shown = report if args.all else [v for v in report if not v.covered]
        uncovered = sum(not v.covered for v in report)
        print(f"{uncovered} of {len(report)} villages have no working cluster")
        for v in shown:
            mark = "covered" if v.covered else "NOT COVERED"
            working = ", ".join(v.working) or "-"
            broken = ", ".join(v.not_working) or "-"
            print(f"{v.village_id:<8} {mark:<12} {v.name}  (working: {working}; broken: {broken})")
        return 0

    return with_station_db(args, body)


def cmd_data_use(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from station.db import DataUse

    async def body(sessions: Sessions, settings: Settings) -> int:
        since = datetime.now(settings.station.tzinfo).date() - timedelta(days=args.days - 1)
        query = select(DataUse).where(col(DataUse.day) >= since)
        async with sessions() as db:
            rows = (await db.exec(query.order_by(col(DataUse.cluster_id), col(DataUse.day)))).all()
        print(f"{'cluster':<10} {'day':<10} {'MB':>10}")
        for r in rows:
            print(f"{r.cluster_id:<10} {r.day.isoformat():<10} {r.bytes / 1e6:>10.2f}")
        print(f"total {sum(r.bytes for r in rows) / 1e6:.2f} MB in {args.days} day(s)")
        return 0

    return with_station_db(args, body)


def cmd_village_list(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from station.db import Village

    async def body(sessions: Sessions, _settings: Settings) -> int:
        async with sessions() as db:
            rows = (await db.exec(select(Village).order_by(Village.id))).all()
        for v in rows:
            households = "-" if v.households is None else str(v.households)
            print(f"{v.id:<8} {households:>6}  {v.name}")
        return 0

    return with_station_db(args, body)


def cmd_zone_list(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from station.db import ClusterZone, Zone

    async def body(sessions: Sessions, _settings: Settings) -> int:
        async with sessions() as db:
            zones = (await db.exec(select(Zone).order_by(Zone.id))).all()
            members = (await db.exec(select(ClusterZone))).all()
        for z in zones:
            ids = sorted(m.cluster_id for m in members if m.zone_id == z.id)
            print(f"{z.id:<10} {z.name}: {', '.join(ids) or '-'}")
        return 0

    return with_station_db(args, body)


def cmd_stats(args: argparse.Namespace) -> int:
    """Counters of the running station (drops, messages, commands) over its HTTP API."""
    from ._live import station_tls, station_url

    settings = settings_from(args)
    url = station_url(args, settings, "/api/v1/stats")
    try:
        context = station_tls(settings)
    except ValueError as exc:
        print(f"loaxa stats: {exc}")
        return 1
    token = args.token or os.environ.get("LOAXA_API_TOKEN", "")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            stats = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            print(f"the station refused the request ({exc.code}): give an API token with --token "
                  "or LOAXA_API_TOKEN")  # fmt: skip
        else:
            print(f"the station answered {exc.code} for {url}")
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"the station is not reachable at {url} ({exc}): is `loaxa serve` running?")
        return 1
    for key, value in stats.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
            print(f"{key}: {inner}")
        else:
            print(f"{key}: {value}")
    return 0


def register(sub: Subparsers) -> None:
    p = add_command(sub, "clusters", cmd_clusters, "list clusters: status, online, alerts")
    p.add_argument("--all", action="store_true", help="include retired clusters")
    p = add_command(sub, "alerts", cmd_alerts, "open alerts [cảnh báo]: clusters, live mounts")
    p.add_argument("--all", action="store_true", help="include cleared alerts")
    p.add_argument("--limit", type=int, default=200)
    p = add_command(sub, "coverage", cmd_coverage, "villages with no working cluster")
    p.add_argument("--all", action="store_true", help="list covered villages too")
    p = add_command(sub, "data-use", cmd_data_use, "bytes downloaded per cluster and day")
    p.add_argument("--days", type=int, default=7)
    p = add_command(sub, "stats", cmd_stats, "counters of the running station (drops etc.)")
    p.add_argument("--url", help="station base URL (default: from the config)")
    p.add_argument("--token", help="API token (default: $LOAXA_API_TOKEN)")
