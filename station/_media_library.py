"""The media library [thư viện âm thanh]: items with metadata, topics, renditions, usage.

Shared by the CLI, the demo and the REST API. Inputs are validated before any work is done;
each database change is one transaction; files are stored before their rows exist and removed
after their rows are gone, so a row never names a missing file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.config import Settings
from station.db import (
    MediaDownload,
    MediaItem,
    MediaRendition,
    MediaTopic,
    Programme,
    ProgrammeItem,
    Schedule,
    ScheduleStatus,
    Topic,
)
from station.media import IngestResult, MediaSettings, MediaStore, MediaWorker
from station.media._store import sha256_file

from ._services import Sessions, StationError

log = logging.getLogger(__name__)

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_TITLE_MAX = 300
_UPLOADER_MAX = 128


@dataclass(frozen=True)
class MediaUser:
    """A programme that plays an item, with its upcoming (pending or active) schedules."""

    programme_id: int
    title: str
    pending: list[int]  # one-off schedules still to air
    active: list[int]  # recurring schedules still running

    @property
    def schedules(self) -> list[int]:
        return sorted(self.pending + self.active)

    def describe(self) -> str:
        parts = [
            f"{status} schedule {', '.join(map(str, ids))}"
            for status, ids in (("pending", self.pending), ("active", self.active))
            if ids
        ]
        when = f" ({'; '.join(parts)})" if parts else ""
        return f"programme {self.programme_id} “{self.title}”{when}"


class MediaInUse(StationError):
    """Deleting an item that a programme (and maybe an upcoming schedule) still uses."""

    code = "media_in_use"

    def __init__(self, message: str, users: list[MediaUser], *, media_id: int, name: str) -> None:
        super().__init__(message, media_id=media_id, name=name)
        self.users = users


@dataclass(frozen=True)
class LibraryEntry:
    """An item with its topics and renditions (what ``media list/show`` print)."""

    item: MediaItem
    topics: list[str]
    renditions: list[MediaRendition]


def media_settings(settings: Settings) -> MediaSettings:
    media = settings.media
    return MediaSettings(
        max_bytes=media.max_upload_mb * 1024 * 1024,
        max_duration_s=media.max_duration_s,
        target_lufs=media.target_lufs,
        true_peak_db=media.true_peak_db,
        speech_filter=media.speech_filter,
        opus_bitrate=media.opus_bitrate,
        mp3_bitrate=media.mp3_bitrate,
        renditions=tuple(media.renditions),
    )


# -- topics ----------------------------------------------------------------------------------


async def list_topics(sessions: Sessions, *, include_inactive: bool = False) -> list[Topic]:
    query = select(Topic)
    if not include_inactive:
        query = query.where(col(Topic.active))
    async with sessions() as db:
        rows = list((await db.exec(query)).all())
    return sorted(rows, key=lambda t: topic_sort_key(t.code))


def topic_sort_key(code: str) -> tuple[int, int, str]:
    """``I.9`` before ``I.10`` before ``II.1``."""
    group, _, number = code.partition(".")
    roman = {"I": 1, "II": 2, "III": 3, "IV": 4}.get(group, 99)
    return roman, int(number) if number.isdigit() else 9999, code


async def _check_topics(db: AsyncSession, codes: Sequence[str]) -> list[str]:
    wanted = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    if not wanted:
        return []
    rows = (await db.exec(select(Topic).where(col(Topic.code).in_(wanted)))).all()
    known = {t.code: t for t in rows}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise StationError(
            f"unknown topic(s): {', '.join(unknown)} (see `loaxa media topics` for the catalogue)",
            code="topic_unknown",
            topics=unknown,
        )
    retired = [c for c in wanted if not known[c].active]
    if retired:
        raise StationError(
            f"topic(s) no longer in use: {', '.join(retired)}", code="topic_retired", topics=retired
        )
    return wanted


def _check_metadata(title: str, language: str, uploader: str) -> None:
    if not title.strip():
        raise StationError("a media item needs a title", code="media_title_needed")
    if len(title) > _TITLE_MAX:
        raise StationError(
            f"title too long: {len(title)} > {_TITLE_MAX} characters",
            code="media_title_too_long",
            max=_TITLE_MAX,
        )
    if not _LANGUAGE.match(language):
        raise StationError(
            f"invalid language code {language[:20]!r}: use e.g. vi, ctu, vi-VN",
            code="language_invalid",
            language=language[:20],
        )
    if len(uploader) > _UPLOADER_MAX:
        raise StationError(f"uploader too long: {len(uploader)} > {_UPLOADER_MAX} characters")


# -- add -------------------------------------------------------------------------------------


async def add_media(
    sessions: Sessions,
    store: MediaStore,
    worker: MediaWorker,
    settings: Settings,
    source: Path,
    title: str,
    progress: Callable[[float], None] | None = None,
    *,
    topics: Sequence[str] = (),
    language: str = "vi",
    uploader: str = "",
) -> tuple[MediaItem, bool]:
    """Ingest an audio file; returns (item, created). An identical upload is not stored twice.

    Raises StationError for bad metadata (before any processing), MediaRejected for unusable
    audio; nothing is stored in either case.
    """
    _check_metadata(title, language, uploader)
    async with sessions() as db:
        codes = await _check_topics(db, topics)
    source_sha = await asyncio.to_thread(sha256_file, source)
    async with sessions() as db:
        query = select(MediaItem).where(MediaItem.source_sha256 == source_sha)
        if (existing := (await db.exec(query)).first()) is not None:
            return existing, False
    result = await worker.ingest(source, store, media_settings(settings), progress)
    try:
        return await _insert(sessions, result, title.strip(), codes, language, uploader)
    except BaseException:
        await _discard_unreferenced(sessions, store, result)
        raise


async def _insert(
    sessions: Sessions,
    result: IngestResult,
    title: str,
    topics: list[str],
    language: str,
    uploader: str,
) -> tuple[MediaItem, bool]:
    async with sessions() as db:
        same = (await db.exec(select(MediaItem).where(MediaItem.sha256 == result.sha256))).first()
        if same is not None:
            return same, False
        item = MediaItem(
            sha256=result.sha256,
            source_sha256=result.source_sha256,
            title=title,
            duration_ms=result.duration_ms,
            codec=result.codec,
            size_bytes=result.size_bytes,
            loudness_in_lufs=round(result.loudness_in_lufs, 2),
            loudness_out_lufs=round(result.loudness_out_lufs, 2),
            true_peak_out_db=(
                None if result.true_peak_out_db is None else round(result.true_peak_out_db, 2)
            ),
            language=language,
            uploader=uploader,
        )
        db.add(item)
        try:
            await db.flush()
        except IntegrityError:  # a concurrent upload of the same audio won the race
            await db.rollback()
            same = (await db.exec(select(MediaItem).where(MediaItem.sha256 == result.sha256))).one()
            return same, False
        assert item.id is not None
        db.add_all(
            MediaRendition(
                media_id=item.id,
                codec=r.codec,
                sha256=r.sha256,
                size_bytes=r.size_bytes,
                bitrate_kbps=int(r.bitrate.rstrip("k")),
            )
            for r in result.renditions
        )
        db.add_all(MediaTopic(media_id=item.id, topic_code=code) for code in topics)
        await db.commit()
        await db.refresh(item)
        return item, True


async def _discard_unreferenced(
    sessions: Sessions, store: MediaStore, result: IngestResult
) -> None:
    """Remove freshly stored files that no row names (the insert failed)."""
    shas = [r.sha256 for r in result.renditions]
    async with sessions() as db:
        used = set((await db.exec(select(MediaRendition.sha256).where(
            col(MediaRendition.sha256).in_(shas)
        ))).all())  # fmt: skip
    for rendition in result.renditions:
        if rendition.sha256 not in used:
            await asyncio.to_thread(rendition.path.unlink, True)


# -- read ------------------------------------------------------------------------------------


async def _entries(db: AsyncSession, items: Sequence[MediaItem]) -> list[LibraryEntry]:
    ids = [i.id for i in items if i.id is not None]
    topic_rows = (await db.exec(select(MediaTopic).where(col(MediaTopic.media_id).in_(ids)))).all()
    rendition_rows = (
        await db.exec(
            select(MediaRendition)
            .where(col(MediaRendition.media_id).in_(ids))
            .order_by(col(MediaRendition.id))
        )
    ).all()
    topics: dict[int, list[str]] = {}
    for t in topic_rows:
        topics.setdefault(t.media_id, []).append(t.topic_code)
    renditions: dict[int, list[MediaRendition]] = {}
    for r in rendition_rows:
        renditions.setdefault(r.media_id, []).append(r)
    return [
        LibraryEntry(
            item,
            sorted(topics.get(item.id or 0, []), key=topic_sort_key),
            renditions.get(item.id or 0, []),
        )
        for item in items
    ]


async def list_media(
    sessions: Sessions, *, topic: str | None = None, query: str | None = None
) -> list[LibraryEntry]:
    stmt = select(MediaItem).order_by(col(MediaItem.id))
    if topic:
        stmt = stmt.join(MediaTopic, col(MediaTopic.media_id) == col(MediaItem.id)).where(
            MediaTopic.topic_code == topic
        )
    if query:
        stmt = stmt.where(func.lower(MediaItem.title).contains(query.lower()))
    async with sessions() as db:
        items = list((await db.exec(stmt)).all())
        return await _entries(db, items)


async def get_media(sessions: Sessions, media_id: int) -> LibraryEntry:
    async with sessions() as db:
        item = await db.get(MediaItem, media_id)
        if item is None:
            raise StationError(f"unknown media item {media_id}")
        return (await _entries(db, [item]))[0]


# -- edit ------------------------------------------------------------------------------------


async def edit_media(
    sessions: Sessions,
    media_id: int,
    *,
    title: str | None = None,
    topics: Sequence[str] | None = None,
    language: str | None = None,
    check: Callable[[LibraryEntry], None] | None = None,
) -> LibraryEntry:
    """Change an item's title, topics (the set is replaced) and/or language in one transaction.

    ``check`` sees the current entry first (the API's If-Match) and may raise to refuse."""
    async with sessions() as db:
        item = await db.get(MediaItem, media_id)
        if item is None:
            raise StationError(f"unknown media item {media_id}")
        if check is not None:
            check((await _entries(db, [item]))[0])
        new_title = item.title if title is None else title.strip()
        _check_metadata(new_title, item.language if language is None else language, "")
        item.title = new_title
        if language is not None:
            item.language = language
        db.add(item)
        if topics is not None:
            codes = await _check_topics(db, topics)
            await db.exec(sa.delete(MediaTopic).where(col(MediaTopic.media_id) == media_id))
            db.add_all(MediaTopic(media_id=media_id, topic_code=code) for code in codes)
        await db.commit()
        await db.refresh(item)
        return (await _entries(db, [item]))[0]


async def topics_of(db: AsyncSession, media_ids: Sequence[int]) -> dict[int, list[str]]:
    """Item id -> its topic codes (catalogue order), for lists."""
    rows = (
        await db.exec(select(MediaTopic).where(col(MediaTopic.media_id).in_(list(media_ids))))
    ).all()
    found: dict[int, list[str]] = {}
    for row in rows:
        found.setdefault(row.media_id, []).append(row.topic_code)
    return {k: sorted(v, key=topic_sort_key) for k, v in found.items()}


# -- delete ----------------------------------------------------------------------------------


UPCOMING = (ScheduleStatus.PENDING, ScheduleStatus.ACTIVE)


async def media_users(db: AsyncSession, media_id: int) -> list[MediaUser]:
    """The programmes that use an item, each with its upcoming schedules ([] when unused)."""
    programmes = (
        await db.exec(
            select(Programme.id, Programme.title)  # not every column: JSON has no DISTINCT
            .join(ProgrammeItem, col(ProgrammeItem.programme_id) == col(Programme.id))
            .where(ProgrammeItem.media_id == media_id)
            .distinct()
            .order_by(col(Programme.id))
        )
    ).all()
    users: list[MediaUser] = []
    for programme_id, title in programmes:
        upcoming = (
            await db.exec(
                select(Schedule.id, Schedule.status)
                .where(
                    Schedule.programme_id == programme_id,
                    col(Schedule.status).in_(UPCOMING),
                )
                .order_by(col(Schedule.id))
            )
        ).all()
        if programme_id is not None:  # always: a primary key (the type allows None)
            pending = [i for i, status in upcoming if i is not None and status == "pending"]
            active = [i for i, status in upcoming if i is not None and status == "active"]
            users.append(MediaUser(programme_id, title, pending, active))
    return users


async def delete_media(sessions: Sessions, store: MediaStore, media_id: int) -> LibraryEntry:
    """Delete an item and its rendition files; refused while a programme uses it."""
    async with sessions() as db:
        item = await db.get(MediaItem, media_id)
        if item is None:
            raise StationError(f"unknown media item {media_id}")
        entry = (await _entries(db, [item]))[0]
        if users := await media_users(db, media_id):
            raise MediaInUse(
                f"media {media_id} “{item.title}” is used by "
                f"{', '.join(u.describe() for u in users)}: remove it from the programme first",
                users,
                media_id=media_id,
                name=item.title,
            )
        # Bulk statements, children first (no reliance on ON DELETE CASCADE being enforced).
        await db.exec(sa.delete(MediaRendition).where(col(MediaRendition.media_id) == media_id))
        await db.exec(sa.delete(MediaTopic).where(col(MediaTopic.media_id) == media_id))
        await db.exec(sa.delete(MediaItem).where(col(MediaItem.id) == media_id))
        try:
            await db.commit()
        except IntegrityError:  # a programme took it up meanwhile
            raise StationError(
                f"media {media_id} was just added to a programme: not deleted",
                code="media_just_used",
                media_id=media_id,
            ) from None
    files = _files_of(entry)
    async with sessions() as db:  # identical audio under another item keeps its files
        still = set((await db.exec(select(MediaRendition.sha256).where(
            col(MediaRendition.sha256).in_([sha for sha, _ in files])
        ))).all())  # fmt: skip
    for sha, ext in files:
        if sha not in still:
            await asyncio.to_thread(_remove, store, sha, ext)
    return entry


def _files_of(entry: LibraryEntry) -> list[tuple[str, str]]:
    files = {(r.sha256, r.codec) for r in entry.renditions}  # the codec names the extension
    files.add((entry.item.sha256, entry.item.codec))
    return sorted(files)


def _remove(store: MediaStore, sha256: str, ext: str) -> None:
    path = store.path_for(sha256, ext)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when the shard is empty


# -- usage -----------------------------------------------------------------------------------


async def usage(
    sessions: Sessions, *, since: date | None = None, clusters: Iterable[str] = ()
) -> list[MediaDownload]:
    """Media bytes served per cluster per day (flushed rows; the last minute may be pending)."""
    stmt = select(MediaDownload).order_by(col(MediaDownload.day), col(MediaDownload.cluster_id))
    if since is not None:
        stmt = stmt.where(MediaDownload.day >= since)
    wanted = list(clusters)
    if wanted:
        stmt = stmt.where(col(MediaDownload.cluster_id).in_(wanted))
    async with sessions() as db:
        return list((await db.exec(stmt)).all())
