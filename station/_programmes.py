"""Programmes [chương trình]: ordered media, relay, live, silence and jingle items.

Validated before anything is written; ``programme_specs`` turns rows into the scheduler's view.
``edit_programme`` replaces a programme's content and bumps its version: approvals name one
version, so an edited programme needs approval again (docs/api.md, approval workflow).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from scheduler import ItemKind, ProgrammeItemSpec, ProgrammeSpec
from station._services import Sessions, StationError
from station.db import (
    MediaItem,
    Programme,
    ProgrammeApproval,
    ProgrammeItem,
    ProgrammeItemKind,
    Topic,
)

if TYPE_CHECKING:
    from station.api import Actor, Call

_RELAY_SCHEMES = ("http", "https", "rtmp", "rtsp")
# A live item may name the hub mount it airs (``live:<mount>``, as station/live/_routing.py
# routes it); the same rule as station/live/_hub.py MOUNT_NAME and ``live.studio_mount``.
MOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LIVE_PREFIX = "live:"
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")  # vi, ctu (Cơ Tu), en, vi-VN
MAX_ITEM_S = 24 * 3600


class ProgrammeRefused(StationError):
    """A refused programme, naming the offending field (``items.2.url``, ``topics``...)."""

    def __init__(self, field: str, message: str, *, code: str | None = None, **params: object):
        super().__init__(message, code=code, **params)
        self.field = field


@dataclass(frozen=True, slots=True)
class ItemInput:
    kind: str
    media_id: int | None = None
    url: str | None = None
    duration_s: float | None = None
    title: str = ""
    mount: str | None = None  # live items: the hub mount (None: the station's live source)


async def add_programme(
    sessions: Sessions,
    title: str,
    items: Sequence[ItemInput],
    *,
    topics: Sequence[str] = (),
    language: str = "vi",
    catalogue_only: bool = False,
) -> Programme:
    """A programme of media, relay, live, silence and jingle items, validated first.

    ``catalogue_only``: every topic must be a code of the catalogue (the API and console);
    the CLI and the week-plan import may also tag free text."""
    _check_head(title, items, language)
    async with sessions() as db:
        await _check_topics(db, topics, catalogue_only=catalogue_only)
        rows = await _item_rows(db, items)
        programme = Programme(title=title, topics=list(topics), language=language or "vi")
        db.add(programme)
        await db.flush()
        assert programme.id is not None
        for row in rows:
            row.programme_id = programme.id
        db.add_all(rows)
        await db.commit()
        await db.refresh(programme)
        return programme


@dataclass(frozen=True, slots=True)
class ProgrammeEdit:
    """What an edit changes; ``None`` keeps the current value (PATCH, ``programme edit``)."""

    title: str | None = None
    items: Sequence[ItemInput] | None = None
    topics: Sequence[str] | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Edited:
    programme: Programme
    from_version: int
    approval_reset: bool  # the version before the edit was approved: it needs approval again


async def edit_programme(
    sessions: Sessions,
    programme_id: int,
    change: ProgrammeEdit,
    who: Call | Actor,
    *,
    check: Callable[[Programme], None] | None = None,
) -> Edited:
    """Replace the programme's content in one transaction and bump its version.

    ``check`` sees the row as it is inside the transaction (the API's If-Match). Audited as
    ``programme.update``, plus ``programme.approval_reset`` when the old version was approved:
    schedules of the programme then wait for an approver (``require_approved``)."""
    from station.api._audit import audit_entry

    if change == ProgrammeEdit():  # a new version (and a lost approval) for nothing
        raise ProgrammeRefused(
            "title",
            "nothing to change: give a title, items, topics or language",
            code="programme_nothing_to_change",
        )
    async with sessions() as db:
        programme = await _locked(db, programme_id)
        if check is not None:
            check(programme)
        title = programme.title if change.title is None else change.title
        language = programme.language if change.language is None else change.language
        topics = list(programme.topics) if change.topics is None else list(change.topics)
        items = change.items if change.items is not None else await _current_items(db, programme_id)
        _check_head(title, items, language)
        # topics the programme already carried stay allowed after they are retired (history)
        added = [t for t in topics if t not in programme.topics]
        await _check_topics(db, added, catalogue_only=True)
        rows = await _item_rows(db, items)
        before = programme.version
        was_approved = await _approved(db, programme_id, before)
        await _replace_items(db, programme_id, rows)
        programme.title, programme.language, programme.topics = title, language, topics
        programme.version = before + 1
        db.add(programme)
        target = f"programme:{programme_id}"
        details: dict[str, Any] = {
            "title": title,
            "from_version": before,
            "version": programme.version,
            "items": len(rows),
            "topics": topics,
            "language": language,
            "approval_reset": was_approved,
        }
        db.add(audit_entry(who, "programme.update", target, details))
        if was_approved:
            reset = {"approved_version": before, "version": programme.version}
            db.add(audit_entry(who, "programme.approval_reset", target, reset))
        await db.commit()
        await db.refresh(programme)
        return Edited(programme, before, was_approved)


async def _locked(db: AsyncSession, programme_id: int) -> Programme:
    # FOR UPDATE (PostgreSQL): two edits of one programme queue instead of both reading v1
    query = select(Programme).where(Programme.id == programme_id).with_for_update()
    programme = (await db.exec(query)).first()
    if programme is None:
        raise ProgrammeRefused(
            "programme_id",
            f"unknown programme {programme_id}",
            code="programme_not_found",
            programme_id=programme_id,
        )
    return programme


async def _approved(db: AsyncSession, programme_id: int, version: int) -> bool:
    query = select(ProgrammeApproval.id).where(
        ProgrammeApproval.programme_id == programme_id, ProgrammeApproval.version == version
    )
    return (await db.exec(query)).first() is not None


async def _replace_items(db: AsyncSession, programme_id: int, rows: list[ProgrammeItem]) -> None:
    old = await db.exec(select(ProgrammeItem).where(ProgrammeItem.programme_id == programme_id))
    for row in old.all():
        await db.delete(row)
    await db.flush()  # (programme_id, position) is unique: old rows go before new ones come
    for row in rows:
        row.programme_id = programme_id
    db.add_all(rows)


async def _current_items(db: AsyncSession, programme_id: int) -> list[ItemInput]:
    rows = await db.exec(
        select(ProgrammeItem)
        .where(ProgrammeItem.programme_id == programme_id)
        .order_by(col(ProgrammeItem.position))
    )
    return [item_input(row) for row in rows.all()]


def item_input(row: ProgrammeItem) -> ItemInput:
    """A stored item as the input that would make it again (round trip of an edit)."""
    kind = ItemKind(row.kind)
    mount = None
    url = row.url
    if kind == ItemKind.LIVE:
        mount = (row.url or "").removeprefix(LIVE_PREFIX) or None
        url = None
    seconds = None if row.duration_ms is None else row.duration_ms / 1000
    return ItemInput(kind.value, row.media_id, url, seconds, row.title, mount)


def _check_head(title: str, items: Sequence[ItemInput], language: str) -> None:
    if not title.strip():
        raise ProgrammeRefused("title", "a programme needs a title", code="programme_title_needed")
    if not items:
        raise ProgrammeRefused(
            "items", "a programme needs at least one item", code="programme_items_needed"
        )
    if language and not LANGUAGE.match(language):
        raise ProgrammeRefused(
            "language",
            f"bad language {language!r}: use e.g. vi, ctu, en",
            code="language_invalid",
            language=language[:20],
        )


async def _check_topics(db: AsyncSession, topics: Sequence[str], *, catalogue_only: bool) -> None:
    from station.reports._topics import refuse_retired  # retired topics: history only

    try:
        await refuse_retired(db, topics)
    except StationError as exc:
        raise ProgrammeRefused("topics", str(exc), code=exc.code, **exc.params) from None
    wanted = sorted({t.strip() for t in topics if t.strip()})
    if not catalogue_only or not wanted:
        return
    known = set((await db.exec(select(Topic.code).where(col(Topic.code).in_(wanted)))).all())
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise ProgrammeRefused(
            "topics",
            f"unknown topic(s): {', '.join(unknown)}",
            code="topic_unknown",
            topics=unknown,
        )


async def _item_rows(db: AsyncSession, items: Sequence[ItemInput]) -> list[ProgrammeItem]:
    rows = [_item_row(n, item) for n, item in enumerate(items)]
    wanted = [(n, r.media_id) for n, r in enumerate(rows) if r.media_id is not None]
    await _media_exist(db, wanted)
    return rows


async def _media_exist(db: AsyncSession, wanted: list[tuple[int, int]]) -> None:
    ids = sorted({m for _, m in wanted})
    query = select(MediaItem.id).where(col(MediaItem.id).in_(ids))
    found = set((await db.exec(query)).all())
    missing = [m for m in ids if m not in found]
    if missing:
        first = next(n for n, m in wanted if m not in found)
        raise ProgrammeRefused(
            f"items.{first}.media_id",
            f"unknown media item(s): {', '.join(map(str, missing))}",
            code="item_media_unknown",
            item=first + 1,
            media_ids=missing,
        )


def _item_row(position: int, item: ItemInput) -> ProgrammeItem:
    where, field = f"item {position + 1}", f"items.{position}"
    try:
        kind = ItemKind(item.kind)
    except ValueError:
        raise ProgrammeRefused(
            f"{field}.kind",
            f"{where}: unknown kind {item.kind!r}",
            code="item_kind_unknown",
            item=position + 1,
        ) from None
    ms = _item_ms(kind, item, where, field)
    url = None
    if kind == ItemKind.RELAY:
        url = _relay_url(item.url, where, field)
    elif kind == ItemKind.LIVE and item.mount:
        if not MOUNT_NAME.match(item.mount):
            raise ProgrammeRefused(
                f"{field}.mount",
                f"{where}: mount names are 1-32 of a-z 0-9 _ - (starting with a letter/digit)",
                code="item_mount_invalid",
                item=position + 1,
            )
        url = LIVE_PREFIX + item.mount
    return ProgrammeItem(
        programme_id=0,
        position=position,
        media_id=item.media_id if kind in (ItemKind.MEDIA, ItemKind.JINGLE) else None,
        kind=ProgrammeItemKind(kind.value),
        duration_ms=ms,
        url=url,
        title=item.title.strip(),
    )


def _item_ms(kind: ItemKind, item: ItemInput, where: str, field: str) -> int | None:
    ms = None if item.duration_s is None else round(item.duration_s * 1000)
    if kind in (ItemKind.MEDIA, ItemKind.JINGLE):
        if item.media_id is None:
            raise ProgrammeRefused(
                f"{field}.media_id",
                f"{where}: a {kind} item needs a media id",
                code="item_media_needed",
                item=int(field.split(".")[1]) + 1,
            )
        if ms is not None:
            raise ProgrammeRefused(
                f"{field}.duration_s",
                f"{where}: a {kind} item plays its whole file: give no duration",
                code="item_no_duration",
                item=int(field.split(".")[1]) + 1,
            )
        return None
    if ms is None or ms <= 0:
        raise ProgrammeRefused(
            f"{field}.duration_s",
            f"{where}: a {kind} item needs a positive duration",
            code="item_duration_needed",
            item=int(field.split(".")[1]) + 1,
        )
    if ms > MAX_ITEM_S * 1000:
        raise ProgrammeRefused(
            f"{field}.duration_s",
            f"{where}: at most 24 hours",
            code="item_too_long",
            item=int(field.split(".")[1]) + 1,
        )
    return ms


def _relay_url(url: str | None, where: str, field: str) -> str:
    try:
        parts = urlsplit((url or "").strip())
        host = parts.hostname
    except ValueError:  # e.g. a broken IPv6 literal
        host = None
    if host is None or parts.scheme not in _RELAY_SCHEMES:
        raise ProgrammeRefused(
            f"{field}.url",
            f"{where}: a relay needs a stream URL (http://, https://, rtmp://)",
            code="item_relay_url",
            item=int(field.split(".")[1]) + 1,
        )

    return (url or "").strip()


async def programme_specs(db: AsyncSession, ids: Iterable[int]) -> dict[int, ProgrammeSpec]:
    """Programmes as the scheduler sees them; media items take their file's duration."""
    wanted = sorted(set(ids))
    programmes = (await db.exec(select(Programme).where(col(Programme.id).in_(wanted)))).all()
    rows = await db.exec(
        select(ProgrammeItem, MediaItem.duration_ms)
        .outerjoin(MediaItem, col(MediaItem.id) == col(ProgrammeItem.media_id))
        .where(col(ProgrammeItem.programme_id).in_(wanted))
        .order_by(col(ProgrammeItem.programme_id), col(ProgrammeItem.position))
    )
    items: dict[int, list[ProgrammeItemSpec]] = {}
    for item, media_ms in rows.all():
        ms = item.duration_ms if item.duration_ms is not None else media_ms or 0
        spec = ProgrammeItemSpec(
            ItemKind(item.kind), timedelta(milliseconds=ms), item.media_id, item.url, item.title
        )
        items.setdefault(item.programme_id, []).append(spec)
    result = {}
    for p in programmes:
        if p.id is not None and p.id in items:
            result[p.id] = ProgrammeSpec(
                p.id, p.title, tuple(items[p.id]), tuple(p.topics), p.language
            )
    return result


async def list_programmes(sessions: Sessions) -> list[tuple[Programme, ProgrammeSpec | None]]:
    async with sessions() as db:
        programmes = (await db.exec(select(Programme).order_by(col(Programme.id)))).all()
        specs = await programme_specs(db, [p.id for p in programmes if p.id is not None])
    return [(p, specs.get(p.id or 0)) for p in programmes]
