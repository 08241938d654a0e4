"""Emergency broadcasts and proof of play: ``loaxa emergency start|stop``, ``loaxa plays``.

Emergencies follow the API's rule: the operator needs the emergency permission (``--as``),
and with ``auth.emergency_two_person`` a second, different user with that permission confirms
(``--confirmed-by``); both give their own passwords, since a command line proves no identity
by itself. Starts and stops are audited like the API's (``emergency.start``/``.stop``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import date
from typing import TYPE_CHECKING, Any

from station._services import StationError
from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db
from ._operator import add_operator, with_operator

if TYPE_CHECKING:
    from station._audit import Actor

EMERGENCY = "emergency"  # the API's permission for start and stop


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

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        from station._audit import record_action

        second = await _second_person(sessions, settings, args, who)
        by = who.name if second is None else f"{who.name} + {second[1]}"
        session = await start_emergency(sessions, settings, request, by[:128])
        details: dict[str, Any] = {
            "targets": request.targets,
            "media_id": args.media,
            "relay_url": args.relay,
            "live": args.live,
            "repeat": args.repeat,
            "volume": session.volume,
        }
        if second is not None:
            details |= {"second_user_id": second[0], "second_username": second[1]}
        await record_action(sessions, who, "emergency.start", f"emergency:{session.id}", details)
        print(f"emergency {session.id}: the running station airs it within a second")
        return 0

    return with_operator(args, EMERGENCY, body)


async def _second_person(
    sessions: Sessions, settings: Settings, args: argparse.Namespace, who: Actor
) -> tuple[int, str] | None:
    """The confirming user (id, name) under ``auth.emergency_two_person``, else None."""
    from station.api._accounts import find_user
    from station.api._approval import confirm_second_person
    from station.api._auth import Principal
    from station.api._problems import ApiError
    from station.api._roles import permissions_of
    from station.api._secrets import verify_password

    if not settings.auth.emergency_two_person:
        return None
    if who.user_id is None or not args.confirmed_by:
        raise StationError(
            "a second user must confirm (auth.emergency_two_person): name yourself with "
            "--as USERNAME and the second user with --confirmed-by USERNAME"
        )
    own, theirs = _passwords(args, who.name, args.confirmed_by)
    user = await find_user(sessions, who.name)
    if user is None or not await verify_password(user.password_hash, own):
        raise StationError(f"--as {who.name}: wrong password")
    actor = Principal(
        user.id or 0, user.username, user.role, permissions_of(user.role), via="session"
    )
    try:
        second = await confirm_second_person(sessions, settings, actor, args.confirmed_by, theirs)
    except ApiError as exc:  # the API's 403, worded the same
        raise StationError(f"{exc.title}: {exc}") from None
    assert second is not None
    return second, args.confirmed_by.strip().lower()


def _passwords(args: argparse.Namespace, first: str, second: str) -> tuple[str, str]:
    """Two lines on stdin with --password-stdin (yours, then theirs); else asked on a tty."""
    if args.password_stdin:
        own = sys.stdin.readline().rstrip("\r\n")
        theirs = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        own = getpass.getpass(f"password of {first}: ")
        theirs = getpass.getpass(f"password of {second} (confirming): ")
    else:
        raise StationError("give both passwords on a terminal, or with --password-stdin")
    if not own or not theirs:
        raise StationError("both passwords are needed: yours, then the confirming user's")
    return own, theirs


def cmd_emergency_stop(args: argparse.Namespace) -> int:
    from station._emergency import stop_emergency

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        from station._audit import record

        stopped = await stop_emergency(sessions, who.name, args.id)
        async with sessions() as db:  # one entry per emergency stopped, as the API writes
            for emergency_id in stopped:
                record(db, who, "emergency.stop", f"emergency:{emergency_id}")
            await db.commit()
        print(f"stopped: {', '.join(stopped) or 'none running'}")
        return 0

    return with_operator(args, EMERGENCY, body)


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


def _operator_options(parser: argparse.ArgumentParser) -> None:
    add_operator(parser)
    # The former free-text --by now names an account, checked like --as.
    parser.add_argument("--by", dest="as_user", help=argparse.SUPPRESS)


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
    what.add_argument("--relay", help="stream URL to relay (fetched once by the live hub)")
    what.add_argument(
        "--live",
        action="store_true",
        help="the live hub's studio mount (live.studio_mount; playout.live_url overrides it)",
    )
    p.add_argument("--repeat", type=int, default=1, help="times to play it (default 1)")
    p.add_argument("--duration", type=float, default=600.0, help="relay/live seconds")
    p.add_argument("--volume", type=int, help="0-100 (default: playout.emergency_volume)")
    _operator_options(p)
    p.add_argument(
        "--confirmed-by",
        metavar="USERNAME",
        help="the second user who confirms (needed with auth.emergency_two_person)",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="two-person rule: read your password, then the second user's, from stdin",
    )
    p = add_command(emergency, "stop", cmd_emergency_stop, "stop emergencies on air")
    p.add_argument("id", nargs="?", help="one emergency id (default: all running)")
    _operator_options(p)
    p = add_command(sub, "plays", cmd_plays, "proof of play of a day [nhật ký phát]")
    p.add_argument("--date", help="YYYY-MM-DD (station time zone), with on-time ratios")
    p.add_argument("--schedule", type=int, help="with --date: one schedule only")
    p.add_argument("--session", default="", help="without --date: one session's records")
