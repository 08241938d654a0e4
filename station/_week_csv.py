"""A week of programmes from a CSV plan (one row per item and weekday set) -> schedules.

Columns: weekday,start,end,slot,kind,title,topic,language,targets, for example
``mon-fri,05:30,05:45,morning,relay,Tiếp âm thời sự VOV1,,vi,all`` (times are local,
``HH:MM``, seconds allowed: ``HH:MM:SS[.ffffff]``). Each row becomes one
programme of one item and one weekly schedule. Media rows use the library item with the same
title; relay rows need a stream URL per title. ``targets``: ``all``, or ids separated by
spaces or ``;``: village ids, or ``zone:ID`` / ``cluster:ID``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlmodel import col, select

from scheduler import ItemKind
from station._programmes import ItemInput, add_programme
from station._schedules import (
    OnConflict,
    ScheduleRequest,
    ScheduleResult,
    create_schedule,
    make_recurrence,
)
from station._services import Sessions, StationError
from station.config import Settings
from station.db import MediaItem

COLUMNS = ("weekday", "start", "end", "slot", "kind", "title", "topic", "language", "targets")
# What each kind of row competes as on the priority ladder.
PRIORITY_OF = {ItemKind.MEDIA: "scheduled", ItemKind.RELAY: "relay", ItemKind.LIVE: "live"}


@dataclass(frozen=True, slots=True)
class WeekRow:
    line: int
    weekdays: str
    start: time
    end: time
    slot: str
    kind: ItemKind
    title: str
    topic: str
    language: str
    targets: dict[str, Any]

    @property
    def duration_s(self) -> float:
        day = date(2000, 1, 3)
        span = datetime.combine(day, self.end) - datetime.combine(day, self.start)
        return span.total_seconds()  # times may carry seconds and fractions (tests compress)


def parse_week_csv(text: str) -> list[WeekRow]:
    """Rows of the plan, validated; StationError names the line and the problem."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise StationError(f"week plan: the header must be {','.join(COLUMNS)}", code="csv_invalid")
    return [_row(n, raw) for n, raw in enumerate(reader, start=2)]


def _row(line: int, raw: dict[str, str]) -> WeekRow:
    """One row; a refusal names the line (English) and carries a code with its parameters
    (``line`` and what was wrong) for the console and the API's import report."""
    where = f"week plan line {line}"
    times = {}
    for column in ("start", "end"):
        try:
            times[column] = time.fromisoformat(raw[column])
        except ValueError as exc:
            raise StationError(
                f"{where}: {exc}", code="week_time_invalid", line=line, column=column,
                value=raw[column],
            ) from None  # fmt: skip
    start, end = times["start"], times["end"]
    try:
        kind = ItemKind(raw["kind"].strip())
    except ValueError as exc:
        raise StationError(
            f"{where}: {exc}", code="week_kind_invalid", line=line, value=raw["kind"].strip()
        ) from None
    try:
        make_recurrence("weekly", time_of_day=start, weekdays=raw["weekday"])
    except StationError as exc:
        raise StationError(
            f"{where}: {exc}", code="week_weekdays_invalid", line=line, value=raw["weekday"]
        ) from None
    if kind not in PRIORITY_OF:
        raise StationError(
            f"{where}: kind must be media, relay or live",
            code="week_kind_invalid", line=line, value=str(kind),
        )  # fmt: skip
    if end <= start:
        raise StationError(
            f"{where}: end {raw['end']} is not after start {raw['start']}",
            code="week_end_not_after_start", line=line, start=raw["start"], end=raw["end"],
        )  # fmt: skip
    if not raw["title"].strip():
        raise StationError(f"{where}: a title is needed", code="week_title_needed", line=line)
    try:
        targets = parse_targets(raw["targets"])
    except StationError as exc:
        raise StationError(f"{where}: {exc}", code=exc.code, line=line, **exc.params) from None
    return WeekRow(
        line,
        raw["weekday"].strip(),
        start,
        end,
        raw["slot"].strip(),
        kind,
        raw["title"].strip(),
        raw["topic"].strip(),
        raw["language"].strip() or "vi",
        targets,
    )


def parse_targets(text: str) -> dict[str, Any]:
    tokens = text.replace(";", " ").split()
    if tokens == ["all"] or not tokens:
        return {"all": True}
    targets: dict[str, list[str]] = {}
    for token in tokens:
        kind, _, value = token.rpartition(":")
        key = {"": "villages", "zone": "zones", "cluster": "clusters"}.get(kind)
        if key is None or not value:
            raise StationError(
                f"bad target {token!r}: a village id, zone:ID or cluster:ID",
                code="week_target_invalid", value=token,
            )  # fmt: skip
        targets.setdefault(key, []).append(value)
    return dict(targets)


async def import_week(
    sessions: Sessions,
    settings: Settings,
    rows: list[WeekRow],
    now: datetime,
    *,
    relay_urls: Mapping[str, str],
    valid_from: date | None = None,
    on_conflict: OnConflict = "refuse",
) -> list[ScheduleResult]:
    """One programme and one weekly schedule per row, each checked like any new schedule.

    Media titles and relay URLs are checked for every row before anything is written. A row
    refused later (quota, conflict, targets) stops the import; the rows before it stay, and the
    message names the line and the schedules already made.
    """
    media = await _media_by_title(sessions, [r.title for r in rows if r.kind == ItemKind.MEDIA])
    items = []
    for row in rows:
        try:
            items.append(_item(row, media, relay_urls))
        except StationError as exc:
            raise StationError(
                f"week plan line {row.line} ({row.title}): {exc}", code=exc.code,
                **({"line": row.line} | exc.params),
            ) from None  # fmt: skip
    results: list[ScheduleResult] = []
    for row, item in zip(rows, items, strict=True):
        try:
            programme = await add_programme(
                sessions,
                row.title,
                [item],
                topics=[row.topic] if row.topic else [],
                language=row.language,
            )
            assert programme.id is not None
            recurrence = make_recurrence(
                "weekly",
                time_of_day=row.start,
                weekdays=row.weekdays,
                valid_from=valid_from,
                timezone=settings.station.timezone,
            )
            request = ScheduleRequest(
                programme.id,
                row.targets,
                recurrence,
                priority=PRIORITY_OF[row.kind],
                on_conflict=on_conflict,
            )
            results.append(await create_schedule(sessions, settings, request, now))
        except StationError as exc:
            made = ", ".join(str(r.schedule.id) for r in results)
            kept = f" (schedules {made} from the lines before were made)" if made else ""
            # The refusal's own code (quota, conflict, targets...) and parameters stay.
            raise StationError(
                f"week plan line {row.line} ({row.title}): {exc}{kept}", code=exc.code,
                **({"line": row.line} | exc.params),
            ) from None  # fmt: skip
    return results


def _item(row: WeekRow, media: Mapping[str, int], relay_urls: Mapping[str, str]) -> ItemInput:
    if row.kind == ItemKind.MEDIA:
        if row.title not in media:
            raise StationError(
                "no media item with this title: add it with `loaxa media add`",
                code="week_media_missing", title=row.title,
            )  # fmt: skip
        return ItemInput("media", media_id=media[row.title], title=row.title)
    if row.kind == ItemKind.RELAY:
        if row.title not in relay_urls:
            raise StationError(
                "no stream URL for this relay", code="week_relay_url_missing", title=row.title
            )
        return ItemInput("relay", url=relay_urls[row.title], duration_s=row.duration_s)
    return ItemInput("live", duration_s=row.duration_s, title=row.title)


async def _media_by_title(sessions: Sessions, titles: list[str]) -> dict[str, int]:
    async with sessions() as db:
        rows = await db.exec(
            select(MediaItem.title, MediaItem.id)
            .where(col(MediaItem.title).in_(titles))
            .order_by(col(MediaItem.id))
        )
        # The newest upload of a title wins (a re-recorded bulletin replaces the old one).
        return {title: media_id for title, media_id in rows.all() if media_id is not None}
