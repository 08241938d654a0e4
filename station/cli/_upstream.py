"""``loaxa upstream status|log|inbox|retry|confirm``: the Source Information System adapter.

``loaxa bulletins proposed|place|decline``: the operator orders priority bulletins.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

from station.config import Settings

from ._common import (
    CommandBody,
    Sessions,
    Subparsers,
    add_command,
    add_group,
    with_station_db,
)
from ._operator import OperatorBody, add_operator, with_operator

if TYPE_CHECKING:
    from station._audit import Actor


def _when(value: datetime | None, settings: Settings) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(settings.station.tzinfo):%Y-%m-%d %H:%M:%S}"


def cmd_status(args: argparse.Namespace) -> int:
    from station.upstream._queries import outbox_summary

    async def body(sessions: Sessions, settings: Settings) -> int:
        s = await outbox_summary(sessions)
        cfg = settings.upstream
        print(f"upstream: {'enabled' if cfg.enabled else 'disabled'} {cfg.base_url or ''}".rstrip())
        print(
            "outbox: "
            + "  ".join(f"{k}={s.by_status.get(k, 0)}" for k in ("pending", "sent", "failed"))
        )
        if s.head is not None:
            print(
                f"next: #{s.head.id} {s.head.kind} {s.head.key} attempts={s.head.attempts} "
                f"due {_when(s.head.next_attempt_at, settings)} {s.head.last_error}".rstrip()
            )
        for row in s.failed:
            print(f"failed: #{row.id} {row.kind} {row.key} HTTP {row.http_status} {row.last_error}")
        if s.last_exchange is not None:
            e = s.last_exchange
            print(f"last exchange: {_when(e.at, settings)} {e.direction} {e.kind} {e.status}")
        print(f"bulletin cursor: {s.bulletin_cursor or '-'}")
        return 0

    return with_station_db(args, body)


def cmd_log(args: argparse.Namespace) -> int:
    from station.upstream._queries import exchanges

    async def body(sessions: Sessions, settings: Settings) -> int:
        rows = await exchanges(sessions, args.limit, args.status)
        print(
            f"{'at':<19} {'dir':<4} {'kind':<14} {'status':<9} {'http':>4} {'try':>3}  key / error"
        )
        for e in rows:
            http = str(e.http_status) if e.http_status is not None else "-"
            tail = f"{e.key} {e.error}".strip()
            print(
                f"{_when(e.at, settings):<19} {e.direction:<4} {e.kind:<14} {e.status:<9} "
                f"{http:>4} {e.attempt:>3}  {tail}"
            )
        return 0

    return with_station_db(args, body)


def cmd_inbox(args: argparse.Namespace) -> int:
    from station._services import StationError
    from station.db import BulletinStatus
    from station.upstream._queries import inbox

    known = [s.value for s in BulletinStatus]
    if args.status is not None and args.status not in known:
        raise StationError(f"--status {args.status!r}: one of {', '.join(known)}")
    status = BulletinStatus(args.status) if args.status is not None else None

    async def body(sessions: Sessions, settings: Settings) -> int:
        rows = await inbox(sessions, include_done=args.all, status=status)
        print(f"{'id':>4} {'class':<9} {'status':<14} {'valid to':<19} {'audio':<9}  title")
        for b in rows:
            audio = (
                "media " + str(b.media_id)
                if b.media_id
                else ("error" if b.audio_error else ("pending" if b.audio_url else "text only"))
            )
            print(
                f"{b.id:>4} {b.bulletin_class:<9} {b.status:<14} {_when(b.valid_to, settings):<19} "
                f"{audio:<9}  {b.title} [{b.upstream_id}] {b.note}".rstrip()
            )
        return 0

    return with_station_db(args, body)


def cmd_retry(args: argparse.Namespace) -> int:
    from station.upstream import retry_failed

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        from station._audit import record_action

        count = await retry_failed(sessions, args.ids or None)
        details = {"ids": list(args.ids or []), "queued": count}
        await record_action(sessions, who, "upstream.retry", "upstream:outbox", details)
        print(f"{count} failed message(s) queued again")
        return 0

    return with_operator(args, "settings:write", body)


def cmd_confirm(args: argparse.Namespace) -> int:
    from station.upstream._queries import confirm_emergency

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        row = await confirm_emergency(sessions, args.id, who)  # audited in its transaction
        print(f"bulletin {row.id} confirmed: the station triggers it on its next inbox tick")
        return 0

    return with_operator(args, "emergency", body)


def _decisions(args: argparse.Namespace, body: CommandBody) -> int:
    from station._services import StationError
    from station.upstream._placement import PlacementError

    async def guarded(sessions: Sessions, settings: Settings) -> int:
        try:
            return await body(sessions, settings)
        except PlacementError as exc:
            raise StationError(exc.detail) from None

    return with_station_db(args, guarded)


def _decide(args: argparse.Namespace, body: OperatorBody) -> int:
    """Place or decline: the API's schedules:write; audited in the decision's transaction."""
    from station._services import StationError
    from station.upstream._placement import PlacementError

    async def guarded(sessions: Sessions, settings: Settings, who: Actor) -> int:
        try:
            return await body(sessions, settings, who)
        except PlacementError as exc:
            raise StationError(exc.detail) from None

    return with_operator(args, "schedules:write", guarded)


def cmd_proposed(args: argparse.Namespace) -> int:
    from station.upstream._placement import proposal, proposed_bulletins

    async def body(sessions: Sessions, settings: Settings) -> int:
        rows = await proposed_bulletins(sessions)
        if not rows:
            print("no proposed bulletins")
        for b in rows:
            assert b.id is not None
            p = await proposal(sessions, settings, b.id, limit=args.limit)
            audio = f"{p.duration_s:.0f} s" if p.duration_s is not None else "no audio yet"
            print(
                f"#{b.id} [{b.upstream_id}] {b.title} ({audio}) villages "
                f"{', '.join(b.villages) or 'all'}; valid {_when(p.window[0], settings)} .. "
                f"{_when(p.window[1], settings)}"
            )
            if p.problem:
                print(f"  {p.problem}")
            elif not p.clashes:
                print("  no programme on its clusters in its window: place it as a session")
            for c in p.clashes:
                print(
                    f"  clash {c.session_id}  {_when(c.start, settings)}-"
                    f"{c.end.astimezone(settings.station.tzinfo):%H:%M:%S}  {c.title} "
                    f"({c.priority}, schedule {c.schedule_id}) on {', '.join(c.clusters)}"
                )
                for i in c.items:
                    print(
                        f"    {i.item:>2}. {i.start.astimezone(settings.station.tzinfo):%H:%M:%S}"
                        f" {i.kind:<7} {i.duration_s:>6.0f} s  {i.title}".rstrip()
                    )
        return 0

    return _decisions(args, body)


def cmd_place(args: argparse.Namespace) -> int:
    from station._services import StationError
    from station.upstream._placement import place_bulletin

    if args.mode == "session" and args.at is None:
        raise StationError("an own session needs --at (e.g. 2026-11-27T06:30+07:00)")
    if args.mode != "session" and (args.session is None or args.item is None):
        raise StationError(f"{args.mode} needs --session SESSION_ID and --item N (see proposed)")
    if args.at is not None and args.at.tzinfo is None:
        raise StationError("--at needs a UTC offset, e.g. 2026-11-27T06:30+07:00")

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        row = await place_bulletin(
            sessions,
            settings,
            who,
            args.id,
            args.mode,
            session_id=args.session,
            item=args.item,
            at=args.at,
        )
        ids = ", ".join(map(str, row.schedule_ids))
        print(f"bulletin {row.id} scheduled ({args.mode}): schedule(s) {ids}")
        return 0

    return _decide(args, body)


def cmd_decline(args: argparse.Namespace) -> int:
    from station.upstream._placement import decline_bulletin

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        row = await decline_bulletin(sessions, who, args.id, args.reason)
        print(f"bulletin {row.id} {row.status}: queued for the upstream system as {row.status}")
        return 0

    return _decide(args, body)


def register(sub: Subparsers) -> None:
    _register_bulletins(sub)

    group = add_group(sub, "upstream", "Source Information System (Hệ thống thông tin nguồn)")
    add_command(group, "status", cmd_status, "outbox depth, failures, last exchange")
    log = add_command(group, "log", cmd_log, "recent exchanges, both directions")
    log.add_argument("-n", "--limit", type=int, default=50)
    log.add_argument("--status", help="only this status (ok, retry, failed, duplicate, ...)")
    inbox = add_command(group, "inbox", cmd_inbox, "bulletins received from upstream")
    inbox.add_argument("--all", action="store_true", help="also handled bulletins")
    inbox.add_argument(
        "--status",
        help="only this status, e.g. declined (the operator declined it) or dismissed (set aside)",
    )
    retry = add_command(group, "retry", cmd_retry, "queue failed outbox messages again")
    retry.add_argument("ids", nargs="*", type=int, help="outbox ids (default: every failed one)")
    add_operator(retry)
    confirm = add_command(group, "confirm", cmd_confirm, "confirm an emergency bulletin")
    confirm.add_argument("id", type=int)
    add_operator(confirm)


def _register_bulletins(sub: Subparsers) -> None:
    group = add_group(sub, "bulletins", "priority bulletins from upstream: clashes and order")
    p = add_command(group, "proposed", cmd_proposed, "proposed bulletins and what they clash with")
    p.add_argument("-n", "--limit", type=int, default=3, help="programmes shown per bulletin")
    p = add_command(group, "place", cmd_place, "place a proposed bulletin")
    p.add_argument("id", type=int, help="bulletin id (see proposed)")
    p.add_argument("mode", choices=("before", "after", "instead", "session"))
    p.add_argument("--session", help="the clashing programme's session id (see proposed)")
    p.add_argument("--item", type=int, help="item number in that programme (1 = first)")
    p.add_argument("--at", type=datetime.fromisoformat, help="own session start, with offset")
    add_operator(p)
    p = add_command(group, "decline", cmd_decline, "decline a proposed bulletin")
    p.add_argument("id", type=int)
    p.add_argument("--reason", default="", help="why (kept on the bulletin and in the audit log)")
    add_operator(p)
