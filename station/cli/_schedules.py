"""Programmes, recurring schedules, timeline: ``loaxa programme ...``, ``loaxa schedule ...``."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from scheduler import RecurrenceKind
from station._services import StationError
from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db
from ._operator import add_operator, with_operator

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


# --------------------------------------------------------------------------- parsing


def parse_duration_s(text: str) -> float:
    """``90s``, ``15m``, ``1.5h`` -> seconds."""
    m = _DURATION.match(text.strip().lower())
    if m is None:
        raise StationError(f"bad duration {text!r}: use e.g. 90s, 15m or 1h")
    return float(m[1]) * _UNIT_S[m[2]]


def parse_item(text: str) -> Any:
    """``media:12``, ``jingle:3``, ``relay:15m:http://host/vov1``, ``live:10m``, ``silence:5s``."""
    from station._programmes import ItemInput

    kind, _, rest = text.partition(":")
    if kind in ("media", "jingle"):
        if not rest.isdigit():
            raise StationError(f"bad item {text!r}: {kind}:<media id>")
        return ItemInput(kind, media_id=int(rest))
    if kind == "relay":
        duration, _, url = rest.partition(":")
        return ItemInput(kind, url=url, duration_s=parse_duration_s(duration))
    if kind in ("live", "silence"):
        return ItemInput(kind, duration_s=parse_duration_s(rest))
    raise StationError(f"bad item {text!r}: start with media:, jingle:, relay:, live: or silence:")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise StationError(f"bad date {text!r}: use YYYY-MM-DD") from None


def _time(text: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise StationError(f"bad time {text!r}: use HH:MM") from None


def _misfire(text: str | None) -> int | None:
    """``skip`` -> 0; ``start-late:N`` -> N minutes in seconds; None -> the station default."""
    if text is None:
        return None
    if text == "skip":
        return 0
    kind, _, minutes = text.partition(":")
    if kind != "start-late" or not minutes.isdigit():
        raise StationError(f"bad --misfire {text!r}: use start-late:MINUTES or skip")
    return int(minutes) * 60


def _targets(args: argparse.Namespace) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for key in ("clusters", "zones", "villages"):
        if getattr(args, key):
            targets[key] = list(getattr(args, key))
    return targets or {"all": True}


def _recurrence(args: argparse.Namespace, settings: Settings) -> Any:
    from station._schedules import make_recurrence

    tz = settings.station.timezone
    chosen = [n for n in ("at", "daily", "weekdays", "monthly") if getattr(args, n)]
    if len(chosen) != 1:
        raise StationError("give exactly one of --at, --daily, --weekdays, --monthly")
    if args.at:
        start = datetime.fromisoformat(args.at)
        if start.tzinfo is None:
            start = start.replace(tzinfo=settings.station.tzinfo)
        return make_recurrence("once", at=start, timezone=tz)
    if not args.time:
        raise StationError("a recurring schedule needs --time HH:MM")
    kind: RecurrenceKind = "daily" if args.daily else "weekly" if args.weekdays else "monthly"
    return make_recurrence(
        kind,
        time_of_day=_time(args.time),
        weekdays=args.weekdays or "",
        day_of_month=args.monthly,
        valid_from=_date(args.valid_from) if args.valid_from else None,
        valid_to=_date(args.valid_to) if args.valid_to else None,
        exceptions=[_date(d) for d in (args.exceptions or "").split(",") if d.strip()],
        timezone=tz,
    )


# --------------------------------------------------------------------------- commands


def cmd_programme_add(args: argparse.Namespace) -> int:
    from station._programmes import add_programme

    async def body(sessions: Sessions, _settings: Settings, who: Any) -> int:
        items = [parse_item(i) for i in args.items]
        programme = await add_programme(
            sessions, args.title, items, topics=args.topic or [], language=args.language
        )
        await _audit_programme(sessions, who, programme)
        print(f"programme {programme.id}: {programme.title} ({len(items)} items)")
        return 0

    return with_operator(args, "programmes:write", body)


async def _audit_programme(sessions: Sessions, who: Any, programme: Any) -> None:
    from station._audit import record_action

    details = {"title": programme.title, "version": programme.version}
    await record_action(sessions, who, "programme.create", f"programme:{programme.id}", details)


def cmd_programme_list(args: argparse.Namespace) -> int:
    from station._programmes import list_programmes

    async def body(sessions: Sessions, _settings: Settings) -> int:
        print(f"{'id':>4} {'lang':<5} {'length':>8} {'items':>5}  title [topics]")
        for programme, spec in await list_programmes(sessions):
            length = _hms(spec.duration) if spec else "-"
            count = len(spec.items) if spec else 0
            topics = f" [{'; '.join(programme.topics)}]" if programme.topics else ""
            print(
                f"{programme.id:>4} {programme.language:<5} {length:>8} {count:>5}  "
                f"{programme.title}{topics}"
            )
        return 0

    return with_station_db(args, body)


def cmd_programme_edit(args: argparse.Namespace) -> int:
    """Change a programme: a new version, so an approved one needs approval again."""
    from station._programmes import ProgrammeEdit, edit_programme

    async def body(sessions: Sessions, _settings: Settings, who: Any) -> int:
        topics = [] if args.no_topics else args.topic
        items = [parse_item(i) for i in args.items] if args.items else None
        change = ProgrammeEdit(args.title, items, topics, args.language)
        check = _version_check(args.version)
        edited = await edit_programme(sessions, args.id, change, who, check=check)
        programme = edited.programme
        print(f"programme {programme.id}: {programme.title}, version {programme.version}")
        if edited.approval_reset:
            print(f"  version {edited.from_version} was approved: this one needs approval again")
        return 0

    return with_operator(args, "programmes:write", body)


def _version_check(expected: int | None) -> Any:
    """``--version N``: refuse when someone changed the programme since you looked at it."""

    def check(programme: Any) -> None:
        if expected is not None and programme.version != expected:
            raise StationError(
                f"programme {programme.id} is at version {programme.version}, not {expected}: "
                "someone changed it; look again (loaxa programme list) and retry"
            )

    return check


def register_programme_edit(programme: Any) -> None:
    p = add_command(programme, "edit", cmd_programme_edit, "change a programme (new version)")
    p.add_argument("id", type=int)
    p.add_argument(
        "items", nargs="*", help="replace the items: media:ID relay:15m:URL live:10m ... (in order)"
    )
    p.add_argument("--title")
    p.add_argument("--topic", action="append", help="replace the topics (repeatable)")
    p.add_argument("--no-topics", action="store_true", help="remove every topic")
    p.add_argument("--language", help="vi, ctu (Cơ Tu), ...")
    p.add_argument("--version", type=int, help="the version you looked at: refused if changed")
    add_operator(p)


def cmd_schedule_add(args: argparse.Namespace) -> int:
    from station._programmes import add_programme
    from station._schedules import ScheduleRequest, create_schedule, require_approval

    async def body(sessions: Sessions, settings: Settings, who: Any) -> int:
        if (args.programme is None) == (not args.media):
            raise StationError("give --programme ID, or --media IDs to make a programme")
        recurrence = _recurrence(args, settings)
        programme_id = args.programme
        if programme_id is None:
            _refuse_new_programmes(settings, "--media makes a new programme")
            items = [parse_item(f"media:{m}") for m in args.media]
            programme = await add_programme(sessions, args.title, items)
            await _audit_programme(sessions, who, programme)
            programme_id = programme.id
        else:  # the API's rule and message (POST /schedules answers 409)
            await require_approval(sessions, settings, programme_id)
        request = ScheduleRequest(
            programme_id,
            _targets(args),
            recurrence,
            priority=args.priority,
            volume=args.volume,
            misfire_grace_s=_misfire(args.misfire),
            on_conflict=args.on_conflict,
        )
        result = await create_schedule(sessions, settings, request, datetime.now(UTC), who=who)
        row = result.schedule
        first = row.start_at.astimezone(settings.station.tzinfo).isoformat(timespec="minutes")
        print(f"schedule {row.id}: programme {programme_id}, {row.recurrence}, first {first}")
        if row.note:
            print(f"  {row.note}")
        return 0

    return with_operator(args, "schedules:write", body)


def _refuse_new_programmes(settings: Settings, why: str) -> None:
    """A programme made here has no approval yet: with approval required it cannot air."""
    from station._schedules import ApprovalRequired

    if settings.auth.approval_required:
        raise ApprovalRequired(
            f"{why}, which is not approved yet (auth.approval_required): make the programme "
            "(`loaxa programme add`), have an approver approve it, then schedule --programme ID"
        )


def cmd_schedule_list(args: argparse.Namespace) -> int:
    from station._schedules import list_schedules

    async def body(sessions: Sessions, settings: Settings) -> int:
        rows = await list_schedules(sessions, everything=args.all)
        print(f"{'id':>4} {'status':<10} {'prio':<10} {'when':<42} {'prog':>4}  targets")
        for r in rows:
            print(
                f"{r.id:>4} {r.status:<10} {r.priority:<10} {_when(r, settings):<42} "
                f"{r.programme_id:>4}  {_show_targets(r.targets)}"
            )
        return 0

    return with_station_db(args, body)


def cmd_schedule_cancel(args: argparse.Namespace) -> int:
    from station._schedules import cancel_schedule

    async def body(sessions: Sessions, _settings: Settings, who: Any) -> int:
        row = await cancel_schedule(sessions, args.id, who=who)
        print(f"schedule {row.id} cancelled")
        return 0

    return with_operator(args, "schedules:write", body)


def cmd_schedule_timeline(args: argparse.Namespace) -> int:
    from station._schedules import schedule_timeline, waiting_on

    async def body(sessions: Sessions, settings: Settings) -> int:
        tz = settings.station.tzinfo
        first = _date(args.day) if args.day else datetime.now(tz).date()
        if args.week:
            first -= timedelta(days=first.weekday())
        start = datetime.combine(first, time(), tz)
        end = start + timedelta(days=7 if args.week else 1)
        targets = {"zones": [args.zone]} if args.zone else {"clusters": [args.cluster]}
        found = await schedule_timeline(sessions, settings, targets, start, end)
        print_timeline(found, tz)
        for row, title in await waiting_on(sessions, settings, targets):
            print(f"  waiting for approval (not on air): #{row.id} {title} "
                  f"(programme {row.programme_id}) {_when(row, settings)}")  # fmt: skip
        return 0

    return with_station_db(args, body)


def cmd_schedule_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from station._week_csv import import_week, parse_week_csv

    text = Path(args.file).read_text(encoding="utf-8")

    async def body(sessions: Sessions, settings: Settings, who: Any) -> int:
        _refuse_new_programmes(settings, "a week plan makes a new programme per line")
        relays = {}
        for pair in args.relay or []:
            title, sep, url = pair.partition("=")
            if not sep:
                raise StationError(f"bad --relay {pair!r}: use 'TITLE=URL'")
            relays[title.strip()] = url.strip()
        rows = parse_week_csv(text)
        start = _date(args.valid_from) if args.valid_from else None
        results = await import_week(
            sessions,
            settings,
            rows,
            datetime.now(UTC),
            relay_urls=relays,
            valid_from=start,
            on_conflict=args.on_conflict,
        )
        await _audit_import(sessions, who, args.file, results)
        for result in results:
            row = result.schedule
            print(
                f"schedule {row.id}: programme {row.programme_id} {row.weekdays} {row.time_of_day}"
            )
        return 0

    return with_operator(args, "schedules:write", body)


async def _audit_import(sessions: Sessions, who: Any, file: str, results: list[Any]) -> None:
    """The import commits row by row (station/_week_csv.py): one entry per schedule made."""
    from pathlib import Path

    from station._audit import record

    name = Path(file).name
    async with sessions() as db:
        for result in results:
            row = result.schedule
            made = f"programme:{row.programme_id}"
            record(db, who, "programme.create", made, {"file": name})
            details = {"programme_id": row.programme_id, "file": name}
            details |= {"recurrence": str(row.recurrence), "targets": row.targets}
            record(db, who, "schedule.create", f"schedule:{row.id}", details)
        await db.commit()


# --------------------------------------------------------------------------- output


def print_timeline(found: dict[str, Any], tz: Any) -> None:
    """Clusters with the same timeline are shown once, day by day."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for cluster, line in found.items():
        groups.setdefault((line.slots, line.events), []).append(cluster)
    for (slots, events), clusters in groups.items():
        print(f"== {', '.join(clusters)}")
        day = None
        names = {sid: f"#{n}" for line in found.values() for sid, n in line.schedule_of.items()}
        rows = [(s.start, _slot_line(s, tz, names)) for s in slots]
        rows += [(e.at, _event_line(e, tz, names)) for e in events if e.action in _NOTED]
        for at, text in sorted(rows, key=lambda r: r[0]):
            local = at.astimezone(tz)
            if local.date() != day:
                day = local.date()
                print(f"  {local:%a %Y-%m-%d}")
            print(f"    {text}")
        if not rows:
            print("    (nothing scheduled)")


_NOTED = {"queue", "ignore", "interrupted", "skipped"}


def _slot_line(slot: Any, tz: Any, names: dict[str, str]) -> str:
    other = names.get(slot.other, slot.other)
    why = {"preempt": f" (cuts in over {other})", "resume": " (resumes)"}.get(slot.how, "")
    at = f" from {_hms(slot.position.offset)} of item {slot.position.item + 1}"
    where = at if slot.how == "resume" else ""
    return (
        f"{slot.start.astimezone(tz):%H:%M}-{slot.end.astimezone(tz):%H:%M}  "
        f"{slot.priority:<10} #{slot.schedule_id:<4} {slot.title}{why}{where}"
    )


def _event_line(event: Any, tz: Any, names: dict[str, str]) -> str:
    at = f"{event.at.astimezone(tz):%H:%M}        !"
    who = names.get(event.session_id, event.session_id)
    if event.action == "queue":
        when = f", expected at {event.expected.astimezone(tz):%H:%M}" if event.expected else ""
        return f"{at} {who} waits for {names.get(event.other, event.other)}{when}"
    reason = f": {event.reason}" if event.reason else ""
    return f"{at} {who} {event.action}{reason}"


def _hms(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _when(row: Any, settings: Settings) -> str:
    start = row.start_at.astimezone(settings.station.tzinfo)
    if row.recurrence == "once":
        return f"once {start:%Y-%m-%d %H:%M}"
    rule = {"daily": "daily", "weekly": row.weekdays, "monthly": f"monthly {row.day_of_month}"}
    span = ""
    if row.valid_from or row.valid_to:
        span = f" {row.valid_from or '…'}..{row.valid_to or '…'}"
    return f"{rule[str(row.recurrence)]} {row.time_of_day:%H:%M}{span}"


def _show_targets(targets: dict[str, Any]) -> str:
    if targets.get("all"):
        return "all"
    return " ".join(f"{k}={','.join(v)}" for k, v in targets.items() if v)


# --------------------------------------------------------------------------- registration


def register(sub: Subparsers) -> None:
    programme = add_group(sub, "programme", "programmes [chương trình]")
    p = add_command(programme, "add", cmd_programme_add, "make a programme of ordered items")
    p.add_argument(
        "items",
        nargs="+",
        help="media:ID jingle:ID relay:15m:URL live:10m silence:5s (in order)",
    )
    p.add_argument("--title", required=True)
    p.add_argument("--topic", action="append", help="topic tag (repeatable), e.g. 'II.7'")
    p.add_argument("--language", default="vi", help="vi, ctu (Cơ Tu), ...")
    add_operator(p)
    add_command(programme, "list", cmd_programme_list, "list programmes")
    register_programme_edit(programme)

    schedule = add_group(sub, "schedule", "schedules [lịch phát]")
    p = add_command(schedule, "add", cmd_schedule_add, "schedule a programme once or recurring")
    what = p.add_argument_group("what")
    what.add_argument("--programme", type=int, help="programme id")
    what.add_argument("--media", type=int, nargs="+", help="or media ids: makes a programme")
    what.add_argument("--title", default="Chương trình", help="title of that programme")
    when = p.add_argument_group("when (station time zone)")
    when.add_argument("--at", help="once: ISO 8601 start, e.g. 2026-12-01T06:00")
    when.add_argument("--daily", action="store_true", help="every day")
    when.add_argument("--weekdays", help="chosen weekdays: mon,wed,fri or mon-fri")
    when.add_argument("--monthly", type=int, metavar="DAY", help="day of the month")
    when.add_argument("--time", help="HH:MM for recurring schedules")
    when.add_argument("--from", dest="valid_from", help="first day, YYYY-MM-DD")
    when.add_argument("--to", dest="valid_to", help="last day, YYYY-MM-DD")
    when.add_argument("--except", dest="exceptions", help="skipped dates: 2026-09-02,...")
    where = p.add_argument_group("where (default: all clusters)")
    where.add_argument("--clusters", nargs="+")
    where.add_argument("--zones", nargs="+")
    where.add_argument("--villages", nargs="+")
    how = p.add_argument_group("how")
    how.add_argument("--priority", default="scheduled", help="a level of playout.priorities")
    how.add_argument("--volume", type=int, help="0-100")
    how.add_argument("--misfire", help="if the station was down: start-late:MINUTES or skip")
    how.add_argument(
        "--on-conflict",
        choices=("refuse", "before", "after"),
        default="refuse",
        help="when it overlaps a schedule of the same priority",
    )
    add_operator(p)
    p = add_command(schedule, "import", cmd_schedule_import, "a week plan (CSV) -> schedules")
    p.add_argument("file", help="weekday,start,end,slot,kind,title,topic,language,targets")
    p.add_argument("--relay", action="append", help="'TITLE=URL' stream of a relay row")
    p.add_argument("--from", dest="valid_from", help="first day, YYYY-MM-DD (default: today)")
    p.add_argument("--on-conflict", choices=("refuse", "before", "after"), default="refuse")
    add_operator(p)
    p = add_command(schedule, "list", cmd_schedule_list, "list schedules")
    p.add_argument("--all", action="store_true", help="also cancelled, done and missed ones")
    p = add_command(schedule, "cancel", cmd_schedule_cancel, "cancel a schedule")
    p.add_argument("id", type=int)
    add_operator(p)
    p = add_command(schedule, "timeline", cmd_schedule_timeline, "what plays when, and why")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--zone")
    target.add_argument("--cluster")
    p.add_argument("--day", help="YYYY-MM-DD (default: today); with --week, a day of that week")
    p.add_argument("--week", action="store_true", help="the whole week (Monday to Sunday)")
