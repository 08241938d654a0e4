"""Media, programmes, schedules and proof of play."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db


def cmd_media_add(args: argparse.Namespace) -> int:
    from station._services import add_media
    from station.media import MediaStore, MediaWorker, ffmpeg_executable

    async def body(sessions: Sessions, settings: Settings) -> int:
        store = MediaStore(settings.media.dir)
        worker = MediaWorker(ffmpeg_executable(settings.media.ffmpeg), settings.media.workers)

        def progress(fraction: float) -> None:
            bar = "#" * int(fraction * 30)
            print(f"\r[{bar:<30}] {fraction * 100:5.1f}%", end="", file=sys.stderr, flush=True)

        source = Path(args.file)
        item, created = await add_media(
            sessions, store, worker, settings, source, args.title or source.stem, progress
        )
        print(file=sys.stderr)
        word = "added" if created else "already in the library"
        print(
            f"media {item.id} {word}: {item.title} ({item.duration_ms / 1000:.1f} s, "
            f"{item.loudness_in_lufs} -> {item.loudness_out_lufs} LUFS, sha256 {item.sha256})"
        )
        return 0

    return with_station_db(args, body)


def cmd_schedule_add(args: argparse.Namespace) -> int:
    from station._services import create_programme, schedule_once

    async def body(sessions: Sessions, settings: Settings) -> int:
        start = datetime.fromisoformat(args.at)
        if start.tzinfo is None:
            start = start.replace(tzinfo=settings.station.tzinfo)
        programme = await create_programme(sessions, args.title, args.media)
        assert programme.id is not None
        targets: dict[str, Any] = {"clusters": args.clusters} if args.clusters else {"all": True}
        schedule = await schedule_once(sessions, programme.id, start, targets)
        print(f"schedule {schedule.id}: programme {programme.id} at {start.isoformat()}")
        return 0

    return with_station_db(args, body)


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
    media = add_group(sub, "media", "media library")
    p = add_command(media, "add", cmd_media_add, "validate, normalise and store an audio file")
    p.add_argument("file")
    p.add_argument("--title", default="")

    schedule = add_group(sub, "schedule", "schedules")
    p = add_command(schedule, "add", cmd_schedule_add, "schedule media items once")
    p.add_argument("--at", required=True, help="start time, ISO 8601 (station time zone if none)")
    p.add_argument("--media", type=int, nargs="+", required=True, help="media item ids, in order")
    p.add_argument("--title", default="Chương trình")
    p.add_argument("--clusters", nargs="*", help="cluster ids (default: all)")

    p = add_command(sub, "plays", cmd_plays, "proof of play")
    p.add_argument("--session", default="")
