"""``loaxa report activity|inventory|push``: the half-yearly and yearly reports."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db
from ._operator import add_operator, with_operator

if TYPE_CHECKING:
    from station._audit import Actor
    from station.reports import Period


def _period(args: argparse.Namespace) -> Period:
    from station._services import StationError
    from station.reports import choose_period

    try:
        return choose_period(args.period, args.from_, args.to)
    except ValueError as exc:
        raise StationError(str(exc)) from None


def cmd_export(args: argparse.Namespace) -> int:
    from station.reports import build_report, write_report

    period = _period(args)
    fmt = args.format or (args.output.suffix.lstrip(".") if args.output else "json")

    async def body(sessions: Sessions, settings: Settings) -> int:
        from station._services import StationError
        from station.reports import FORMATS, render

        if fmt not in FORMATS:
            raise StationError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
        report = await build_report(
            sessions,
            args.kind,
            period,
            settings.station.tzinfo,
            on_time_ms=settings.metrics.on_time_ms,
        )
        if args.output is None:
            if fmt == "xlsx":
                raise StationError("xlsx needs -o FILE")
            print(render(report, fmt, args.lang).decode("utf-8-sig"))
            return 0
        size = await write_report(report, fmt, args.output, args.lang)
        print(f"{args.kind} report {period.label} ({fmt}, {size} bytes) -> {args.output}")
        return 0

    return with_station_db(args, body)


def cmd_push(args: argparse.Namespace) -> int:
    from station.reports import KINDS, build_report, push_report

    period = _period(args)

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        from station._audit import record_action

        for kind in KINDS if args.kind == "all" else (args.kind,):
            report = await build_report(
                sessions, kind, period, settings.station.tzinfo,
                on_time_ms=settings.metrics.on_time_ms,
            )  # fmt: skip
            key, added = await push_report(sessions, report)
            if added:  # the same numbers again queue nothing
                await record_action(sessions, who, "report.push", f"report:{key}", {"kind": kind})
            print(f"{key}: {'queued' if added else 'already queued (same numbers)'}")
        return 0

    return with_operator(args, None, body)


def _period_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", help="2024H1 (1/12/2023-30/5/2024) or 2024Y (.. 30/11/2024)")
    parser.add_argument("--from", dest="from_", type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--to", type=date.fromisoformat, help="YYYY-MM-DD (included)")


def register(sub: Subparsers) -> None:
    group = add_group(sub, "report", "activity and inventory reports (báo cáo)")
    for kind, help_ in (
        ("activity", "what aired: broadcasts, hours, plays, by topic/source/cluster/village"),
        ("inventory", "clusters by kind and status, installations, village coverage"),
    ):
        parser = add_command(group, kind, cmd_export, help_)
        parser.set_defaults(kind=kind)
        _period_args(parser)
        parser.add_argument("--format", choices=("csv", "xlsx", "json", "html"))
        parser.add_argument("--lang", choices=("vi", "en"), default="vi")
        parser.add_argument("-o", "--output", type=Path, help="file (default: stdout)")
    push = add_command(group, "push", cmd_push, "queue reports for the Source Information System")
    _period_args(push)
    push.add_argument("--kind", choices=("activity", "inventory", "all"), default="all")
    add_operator(push)
