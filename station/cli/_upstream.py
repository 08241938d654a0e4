"""``loaxa upstream status|log|inbox|retry|confirm``: the Source Information System adapter."""

from __future__ import annotations

import argparse
from datetime import datetime

from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db


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
    from station.upstream._queries import inbox

    async def body(sessions: Sessions, settings: Settings) -> int:
        rows = await inbox(sessions, include_done=args.all)
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

    async def body(sessions: Sessions, settings: Settings) -> int:
        count = await retry_failed(sessions, args.ids or None)
        print(f"{count} failed message(s) queued again")
        return 0

    return with_station_db(args, body)


def cmd_confirm(args: argparse.Namespace) -> int:
    from station.upstream._queries import confirm_emergency

    async def body(sessions: Sessions, settings: Settings) -> int:
        row = await confirm_emergency(sessions, args.id)
        print(f"bulletin {row.id} confirmed: the station triggers it on its next inbox tick")
        return 0

    return with_station_db(args, body)


def register(sub: Subparsers) -> None:
    group = add_group(sub, "upstream", "Source Information System (Hệ thống thông tin nguồn)")
    add_command(group, "status", cmd_status, "outbox depth, failures, last exchange")
    log = add_command(group, "log", cmd_log, "recent exchanges, both directions")
    log.add_argument("-n", "--limit", type=int, default=50)
    log.add_argument("--status", help="only this status (ok, retry, failed, duplicate, ...)")
    inbox = add_command(group, "inbox", cmd_inbox, "bulletins received from upstream")
    inbox.add_argument("--all", action="store_true", help="also handled bulletins")
    retry = add_command(group, "retry", cmd_retry, "queue failed outbox messages again")
    retry.add_argument("ids", nargs="*", type=int, help="outbox ids (default: every failed one)")
    confirm = add_command(group, "confirm", cmd_confirm, "confirm an emergency bulletin")
    confirm.add_argument("id", type=int)
