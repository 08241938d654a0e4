"""Programmes [chương trình]: ordered media, relay, live, silence and jingle items.

Validated before anything is written; ``programme_specs`` turns rows into the scheduler's view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from scheduler import ItemKind, ProgrammeItemSpec, ProgrammeSpec
from station._services import Sessions, StationError
from station.db import MediaItem, Programme, ProgrammeItem, ProgrammeItemKind

_RELAY_SCHEMES = ("http", "https", "rtmp", "rtsp")


@dataclass(frozen=True, slots=True)
class ItemInput:
    kind: str
    media_id: int | None = None
    url: str | None = None
    duration_s: float | None = None
    title: str = ""


async def add_programme(
    sessions: Sessions,
    title: str,
    items: Sequence[ItemInput],
    *,
    topics: Sequence[str] = (),
    language: str = "vi",
) -> Programme:
    """A programme of media, relay, live, silence and jingle items, validated first."""
    if not title.strip():
        raise StationError("a programme needs a title")
    if not items:
        raise StationError("a programme needs at least one item")
    async with sessions() as db:
        durations = await _media_durations(db, [i.media_id for i in items if i.media_id])
        rows = [_item_row(n, item, durations) for n, item in enumerate(items)]
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


async def _media_durations(db: AsyncSession, ids: list[int]) -> dict[int, int]:
    query = select(MediaItem.id, MediaItem.duration_ms).where(col(MediaItem.id).in_(ids))
    found = {i: ms for i, ms in (await db.exec(query)).all() if i is not None}
    missing = sorted(set(ids) - set(found))
    if missing:
        raise StationError(f"unknown media item(s): {', '.join(map(str, missing))}")
    return found


def _item_row(position: int, item: ItemInput, durations: dict[int, int]) -> ProgrammeItem:
    where = f"item {position + 1}"
    try:
        kind = ItemKind(item.kind)
    except ValueError:
        raise StationError(f"{where}: unknown kind {item.kind!r}") from None
    ms = None if item.duration_s is None else round(item.duration_s * 1000)
    if kind in (ItemKind.MEDIA, ItemKind.JINGLE):
        if item.media_id is None:
            raise StationError(f"{where}: a {kind} item needs a media id")
        if ms is not None:
            raise StationError(f"{where}: a {kind} item plays its whole file: give no duration")
    elif ms is None or ms <= 0:
        raise StationError(f"{where}: a {kind} item needs a positive duration")
    if kind == ItemKind.RELAY and urlsplit(item.url or "").scheme not in _RELAY_SCHEMES:
        raise StationError(f"{where}: a relay needs a stream URL (http://, https://, rtmp://)")
    media_id = item.media_id if kind in (ItemKind.MEDIA, ItemKind.JINGLE) else None
    return ProgrammeItem(
        programme_id=0,
        position=position,
        media_id=media_id,
        kind=ProgrammeItemKind(kind.value),
        duration_ms=ms,
        url=item.url if kind == ItemKind.RELAY else None,
        title=item.title,
    )


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
