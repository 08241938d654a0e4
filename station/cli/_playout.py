"""Emergency broadcasts and proof of play: ``loaxa emergency start|stop``, ``loaxa plays``."""

from __future__ import annotations

import argparse
import getpass
from datetime import date

from station._services import StationError
from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db


def _targets(args: argparse.Namespace) -> dict[str, object]:
    if args.all:
        return {"all": True}
    targets = {k: v for k in ("zones", "villages", "clusters") if (v := getattr(args, k))}
    if not targets:
        raise StationError("say where: --all, or --zones/--villages/--clusters")
    return targets


def cmd_emergency_start(args: argparse.Namespace) -> int:
    from station._emergency import EmergencyRequest, start_emergency

    request = EmergencyRequest(
        _targets(args),
        media_id=args.media,
        relay_url=args.relay,
        live=args.live,
        repeat=args.repeat,
        duration_s=args.duration,
        volume=args.volume,
    )

    async def body(sessions: Sessions, settings: Settings) -> int:
        who = args.by or f"cli:{getpass.getuser()}"
        session = await start_emergency(sessions, settings, request, who)
        print(f"emergency {session.id}: the running station airs it within a second")
        return 0

    return with_station_db(args, body)


def cmd_emergency_stop(args: argparse.Namespace) -> int:
    from station._emergency import stop_emergency

    async def body(sessions: Sessions, settings: Settings) -> int:
        who = args.by or f"cli:{getpass.getuser()}"
        stopped = await stop_emergency(sessions, who, args.id)
        print(f"stopped: {', '.join(stopped) or 'none running'}")
        return 0

    return with_station_db(args, body)


def cmd_plays(args: argparse.Namespace) -> int:
    from station._plays import plays_on, ratios

    if not args.date:  # every record, or one session's
        from ._library import cmd_plays as cmd_records

        return cmd_records(args)

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        raise StationError(f"bad date {args.date!r}: use YYYY-MM-DD") from None

    async def body(sessions: Sessions, settings: Settings) -> int:
        rows = await plays_on(sessions, day, settings.station.timezone, schedule_id=args.schedule)
        print(f"{'session':<22} {'cluster':<10} {'status':<11} {'skew ms':>8} {'played s':>8}")
        for row in rows:
            r = row.record
            skew = "" if r.skew_ms is None else str(r.skew_ms)
            played = "" if r.played_ms is None else f"{r.played_ms / 1000:.1f}"
            why = r.interrupted_by or r.error_code or ""
            print(
                f"{r.session_id:<22} {r.cluster_id:<10} {r.status:<11} {skew:>8} {played:>8} {why}"
            )
        for ratio in ratios(rows):
            print(f"{ratio.key}: {ratio.on_time}/{ratio.targeted} on time ({ratio.ratio:.0%})")
        return 0

    return with_station_db(args, body)


def register(sub: Subparsers) -> None:
    emergency = add_group(sub, "emergency", "emergency broadcast [phát khẩn cấp]")
    p = add_command(emergency, "start", cmd_emergency_start, "air an emergency now, everywhere")
    where = p.add_argument_group("where")
    where.add_argument("--all", action="store_true", help="every cluster")
    where.add_argument("--zones", nargs="+")
    where.add_argument("--villages", nargs="+")
    where.add_argument("--clusters", nargs="+")
    what = p.add_argument_group("what (one)")
    what.add_argument("--media", type=int, help="media item id")
    what.add_argument("--relay", help="stream URL to relay")
    what.add_argument("--live", action="store_true", help="the station's live stream")
    p.add_argument("--repeat", type=int, default=1, help="times to play it (default 1)")
    p.add_argument("--duration", type=float, default=600.0, help="relay/live seconds")
    p.add_argument("--volume", type=int, help="0-100 (default: playout.emergency_volume)")
    p.add_argument("--by", help="who triggers it (recorded; default: cli:<user>)")
    p = add_command(emergency, "stop", cmd_emergency_stop, "stop emergencies on air")
    p.add_argument("id", nargs="?", help="one emergency id (default: all running)")
    p.add_argument("--by", help="who stops it (recorded)")
    p = add_command(sub, "plays", cmd_plays, "proof of play of a day [nhật ký phát]")
    p.add_argument("--date", help="YYYY-MM-DD (station time zone), with on-time ratios")
    p.add_argument("--schedule", type=int, help="with --date: one schedule only")
    p.add_argument("--session", default="", help="without --date: one session's records")
