"""``loaxa topics list|add|rename|retire``: the topic catalogue (Phụ lục 01), editable each year.

Every change is written to the audit log, in the change's transaction, as the operator
(``cli:<login>``, or the account named with ``--as``, which needs the API's ``approve``).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING

from station.config import Settings

from ._common import CommandBody, Sessions, Subparsers, add_command, add_group, with_station_db
from ._operator import OperatorBody, add_operator, with_operator

if TYPE_CHECKING:
    from station._audit import Actor
    from station.db import Topic

WRITE = "approve"  # the API's permission for topic changes


def _line(t: Topic) -> str:
    from station.reports._topics import kind_of

    span = ""
    if t.valid_from or t.valid_to:
        span = f" [{t.valid_from or '…'} – {t.valid_to or '…'}]"
    state = "" if t.active else " (retired)"
    return f"{t.code:<7} {kind_of(t):<9} {t.title_vi}{span}{state}\n{'':<17}{t.title_en}".rstrip()


def _run(args: argparse.Namespace, body: CommandBody) -> int:
    from station._services import StationError
    from station.reports._topics import TopicError

    async def guarded(sessions: Sessions, settings: Settings) -> int:
        try:
            return await body(sessions, settings)
        except TopicError as exc:
            raise StationError(exc.detail) from None

    return with_station_db(args, guarded)


def _change(args: argparse.Namespace, body: OperatorBody) -> int:
    from station._services import StationError
    from station.reports._topics import TopicError

    async def guarded(sessions: Sessions, settings: Settings, who: Actor) -> int:
        try:
            return await body(sessions, settings, who)
        except TopicError as exc:
            raise StationError(exc.detail) from None

    return with_operator(args, WRITE, guarded)


def cmd_list(args: argparse.Namespace) -> int:
    from station.reports._topics import list_topics

    async def body(sessions: Sessions, settings: Settings) -> int:
        for t in await list_topics(sessions, include_retired=args.all, on=args.on):
            print(_line(t))
        return 0

    return _run(args, body)


def cmd_add(args: argparse.Namespace) -> int:
    from station.reports._topics import TopicInput, add_topic

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        first, last = args.valid_from, args.valid_to
        if args.year is not None:
            first, last = first or date(args.year, 1, 1), last or date(args.year, 12, 31)
        topic = await add_topic(
            sessions,
            who,
            TopicInput(args.code, args.title_vi, args.title_en, args.kind, first, last),
        )
        print(f"added {_line(topic)}")
        return 0

    return _change(args, body)


def cmd_rename(args: argparse.Namespace) -> int:
    from station.reports._topics import rename_topic

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        topic = await rename_topic(
            sessions, who, args.code, title_vi=args.title_vi, title_en=args.title_en
        )
        print(f"renamed {_line(topic)}")
        return 0

    return _change(args, body)


def cmd_retire(args: argparse.Namespace) -> int:
    from station.reports._topics import retire_topic

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        topic = await retire_topic(sessions, who, args.code, on=args.on)
        print(f"retired {topic.code}: kept for history, no longer offered for new items")
        return 0

    return _change(args, body)


def register(sub: Subparsers) -> None:
    group = add_group(sub, "topics", "the topic catalogue (Phụ lục 01), editable each year")
    p = add_command(group, "list", cmd_list, "topics in catalogue order")
    p.add_argument("--all", action="store_true", help="include retired topics")
    p.add_argument("--on", type=date.fromisoformat, help="only topics valid on YYYY-MM-DD")
    p = add_command(group, "add", cmd_add, "add a topic (codes are never reused)")
    p.add_argument("code", help="e.g. II.10")
    p.add_argument("title_vi", help="Vietnamese title")
    p.add_argument("--en", dest="title_en", default="", help="English title")
    p.add_argument("--kind", choices=("period", "thematic"), default="thematic")
    p.add_argument("--year", type=int, help="valid for this calendar year")
    p.add_argument("--from", dest="valid_from", type=date.fromisoformat, help="YYYY-MM-DD")
    p.add_argument("--to", dest="valid_to", type=date.fromisoformat, help="YYYY-MM-DD")
    add_operator(p)
    p = add_command(group, "rename", cmd_rename, "new titles (the code stays)")
    p.add_argument("code")
    p.add_argument("--vi", dest="title_vi", help="new Vietnamese title")
    p.add_argument("--en", dest="title_en", help="new English title")
    add_operator(p)
    p = add_command(group, "retire", cmd_retire, "retire a topic (kept for history)")
    p.add_argument("code")
    p.add_argument("--on", type=date.fromisoformat, help="last valid day (YYYY-MM-DD)")
    add_operator(p)
