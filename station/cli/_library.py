"""Media, programmes, schedules and proof of play."""

from __future__ import annotations

import argparse

from station.config import Settings

from ._common import Sessions, Subparsers, with_station_db


def cmd_plays(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from station.db import PlayRecord

    async def body(sessions: Sessions, _settings: Settings) -> int:
        query = select(PlayRecord).order_by(col(PlayRecord.id))
        if args.session:
            query = query.where(PlayRecord.session_id == args.session)
        async with sessions() as db:
            rows = (await db.exec(query)).all()
        print(f"{'session':<22} {'cluster':<10} {'status':<12} {'skew ms':>8} {'bytes':>9}")
        for r in rows:
            skew = "" if r.skew_ms is None else str(r.skew_ms)
            print(
                f"{r.session_id:<22} {r.cluster_id:<10} {r.status:<12} {skew:>8} "
                f"{r.bytes_downloaded or 0:>9}"
            )
        return 0

    return with_station_db(args, body)


def register(sub: Subparsers) -> None:
    # `loaxa media ...` lives in _media.py, `loaxa schedule ...` lives in _schedules.py

    # `loaxa plays` (this listing with --session, by day with --date) lives in _playout.py
    del sub
