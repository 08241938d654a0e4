"""The ``loaxa`` command line.

Errors a user can cause (bad config, unknown ids, rejected media) print one clear line on
stderr and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from station.config import ConfigError, Settings, load_config

log = logging.getLogger("loaxa")


def _settings(args: argparse.Namespace) -> Settings:
    return load_config(Path(args.config) if args.config else None)


def _setup_logging(settings: Settings) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if settings.logging.json_format:
        fmt = '{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'
    logging.basicConfig(level=settings.logging.level, format=fmt)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# -- commands ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from station.app import start_station

    settings = _settings(args)
    _setup_logging(settings)

    async def serve() -> None:
        station = await start_station(settings)
        print(f"loaxa station {settings.station.id} serving on {station.base_url} "
              f"(MQTT {station.runtime.mqtt_url})", flush=True)
        try:
            await _wait_for_signal()
        finally:
            await station.stop()

    asyncio.run(serve())
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from station.db import upgrade

    settings = _settings(args)
    upgrade(settings.database.url)
    print(f"database upgraded: {settings.redacted()['database']['url']}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from simulator import run_simulator

    logging.basicConfig(level=logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_simulator(args.mqtt, args.station, args.count, prefix=args.prefix,
                            speed=args.speed, stop_event=stop)

    asyncio.run(run())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from station.demo import main as demo_main

    return demo_main(keep_running=args.keep_running, clusters=args.clusters)


def _with_station_db(
    args: argparse.Namespace, body: Callable[[Any, Settings], Awaitable[int]]
) -> int:
    """Run ``body(sessions, settings)`` against the configured database (migrated first)."""
    from station.db import create_engine_for, session_factory, upgrade_async

    settings = _settings(args)
    logging.basicConfig(level=logging.WARNING)

    async def run() -> int:
        await upgrade_async(settings.database.url)
        engine = create_engine_for(settings.database.url)
        try:
            return await body(session_factory(engine), settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_cluster_add(args: argparse.Namespace) -> int:
    from station._services import register_clusters

    async def body(sessions: Any, _settings: Settings) -> int:
        added = await register_clusters(sessions, [(cid, args.name or cid) for cid in args.ids])
        print(f"registered: {', '.join(added) or 'none (all already known)'}")
        return 0

    return _with_station_db(args, body)


def cmd_clusters(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from station.db import Cluster

    async def body(sessions: Any, settings: Settings) -> int:
        async with sessions() as db:
            rows = (await db.exec(select(Cluster).order_by(Cluster.id))).all()
        print(f"{'id':<12} {'kind':<7} {'status':<11} {'online':<7} {'last seen':<20} name")
        for c in rows:
            seen = f"{c.last_seen_at.astimezone(settings.station.tzinfo):%Y-%m-%d %H:%M:%S}" \
                if c.last_seen_at else "-"
            print(f"{c.id:<12} {c.kind:<7} {c.status:<11} {'yes' if c.online else 'no':<7} "
                  f"{seen:<20} {c.name}")
        return 0

    return _with_station_db(args, body)


def cmd_media_add(args: argparse.Namespace) -> int:
    from station._services import add_media
    from station.media import MediaStore, MediaWorker, ffmpeg_executable

    async def body(sessions: Any, settings: Settings) -> int:
        store = MediaStore(settings.media.dir)
        worker = MediaWorker(ffmpeg_executable(settings.media.ffmpeg), settings.media.workers)

        def progress(fraction: float) -> None:
            bar = "#" * int(fraction * 30)
            print(f"\r[{bar:<30}] {fraction * 100:5.1f}%", end="", file=sys.stderr, flush=True)

        item, created = await add_media(sessions, store, worker, settings, Path(args.file),
                                        args.title or Path(args.file).stem, progress)
        print(file=sys.stderr)
        word = "added" if created else "already in the library"
        print(f"media {item.id} {word}: {item.title} ({item.duration_ms / 1000:.1f} s, "
              f"{item.loudness_in_lufs} -> {item.loudness_out_lufs} LUFS, sha256 {item.sha256})")
        return 0

    return _with_station_db(args, body)


def cmd_schedule_add(args: argparse.Namespace) -> int:
    from station._services import create_programme, schedule_once

    async def body(sessions: Any, settings: Settings) -> int:
        start = datetime.fromisoformat(args.at)
        if start.tzinfo is None:
            start = start.replace(tzinfo=settings.station.tzinfo)
        programme = await create_programme(sessions, args.title, args.media)
        assert programme.id is not None
        targets: dict[str, Any] = {"clusters": args.clusters} if args.clusters else {"all": True}
        schedule = await schedule_once(sessions, programme.id, start, targets)
        print(f"schedule {schedule.id}: programme {programme.id} at {start.isoformat()}")
        return 0

    return _with_station_db(args, body)


def cmd_plays(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from station.db import PlayRecord

    async def body(sessions: Any, _settings: Settings) -> int:
        query = select(PlayRecord).order_by(col(PlayRecord.id))
        if args.session:
            query = query.where(PlayRecord.session_id == args.session)
        async with sessions() as db:
            rows = (await db.exec(query)).all()
        print(f"{'session':<22} {'cluster':<10} {'status':<12} {'skew ms':>8} {'bytes':>9}")
        for r in rows:
            skew = "" if r.skew_ms is None else str(r.skew_ms)
            print(f"{r.session_id:<22} {r.cluster_id:<10} {r.status:<12} {skew:>8} "
                  f"{r.bytes_downloaded or 0:>9}")
        return 0

    return _with_station_db(args, body)


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loaxa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str,
            parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_)
        p.add_argument("-c", "--config", help="config YAML (default: built-in defaults)")
        p.set_defaults(func=func)
        return p

    add("serve", cmd_serve, "run the station")
    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db", required=True)
    add("upgrade", cmd_db_upgrade, "apply database migrations", db)

    sim = sub.add_parser("sim", help="run simulated clusters against a broker")
    sim.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker URL")
    sim.add_argument("--station", default="xa-demo", help="station id")
    sim.add_argument("--count", type=int, default=20)
    sim.add_argument("--prefix", default="SIM")
    sim.add_argument("--speed", type=float, default=1.0, help="playback speed factor")
    sim.set_defaults(func=cmd_sim)

    demo = sub.add_parser("demo", help="run everything on this machine and play a programme")
    demo.add_argument("--keep-running", action="store_true", help="leave the station up")
    demo.add_argument("--clusters", type=int, default=20)
    demo.set_defaults(func=cmd_demo)

    cluster = sub.add_parser("cluster", help="register clusters").add_subparsers(
        dest="cluster", required=True)
    p = add("add", cmd_cluster_add, "register clusters by id", cluster)
    p.add_argument("ids", nargs="+")
    p.add_argument("--name", default="")
    add("clusters", cmd_clusters, "list clusters and their status")

    media = sub.add_parser("media", help="media library").add_subparsers(dest="media", required=True)
    p = add("add", cmd_media_add, "validate, normalise and store an audio file", media)
    p.add_argument("file")
    p.add_argument("--title", default="")

    schedule = sub.add_parser("schedule", help="schedules").add_subparsers(
        dest="schedule", required=True)
    p = add("add", cmd_schedule_add, "schedule media items once", schedule)
    p.add_argument("--at", required=True, help="start time, ISO 8601 (station time zone if none)")
    p.add_argument("--media", type=int, nargs="+", required=True, help="media item ids, in order")
    p.add_argument("--title", default="Chương trình")
    p.add_argument("--clusters", nargs="*", help="cluster ids (default: all)")

    p = add("plays", cmd_plays, "proof of play")
    p.add_argument("--session", default="")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from station._services import StationError
    from station.media import MediaRejected

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (StationError, MediaRejected, ValueError, FileNotFoundError) as exc:
        print(f"loaxa: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
