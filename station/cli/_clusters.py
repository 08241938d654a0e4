"""Cluster registry commands."""

from __future__ import annotations

import argparse

from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db


def cmd_cluster_add(args: argparse.Namespace) -> int:
    from station._services import register_clusters

    async def body(sessions: Sessions, _settings: Settings) -> int:
        added = await register_clusters(sessions, [(cid, args.name or cid) for cid in args.ids])
        print(f"registered: {', '.join(added) or 'none (all already known)'}")
        return 0

    return with_station_db(args, body)


def cmd_clusters(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from station.db import Cluster

    async def body(sessions: Sessions, settings: Settings) -> int:
        async with sessions() as db:
            rows = (await db.exec(select(Cluster).order_by(Cluster.id))).all()
        print(f"{'id':<12} {'kind':<7} {'status':<11} {'online':<7} {'last seen':<20} name")
        for c in rows:
            seen = "-"
            if c.last_seen_at:
                seen = f"{c.last_seen_at.astimezone(settings.station.tzinfo):%Y-%m-%d %H:%M:%S}"
            online = "yes" if c.online else "no"
            print(f"{c.id:<12} {c.kind:<7} {c.status:<11} {online:<7} {seen:<20} {c.name}")
        return 0

    return with_station_db(args, body)


def register(sub: Subparsers) -> None:
    cluster = add_group(sub, "cluster", "register and manage clusters")
    p = add_command(cluster, "add", cmd_cluster_add, "register clusters by id")
    p.add_argument("ids", nargs="+")
    p.add_argument("--name", default="")
    add_command(sub, "clusters", cmd_clusters, "list clusters and their status")
