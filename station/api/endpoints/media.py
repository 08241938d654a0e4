"""Media library [thư viện âm thanh]: list, read, upload (streamed to disk, size-limited), edit
the metadata (title, topics, language), delete (refused while a programme uses the item), usage.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, BinaryIO

from aiohttp import BodyPartReader, MultipartReader
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from station import _keys as keys
from station import _media_library as library
from station._media_library import (
    UPCOMING,
    LibraryEntry,
    MediaInUse,
    MediaUser,
    add_media,
    delete_media,
    edit_media,
    media_users,
    topics_of,
)
from station._services import StationError
from station.db import MediaItem, Schedule
from station.media import MediaRejected

from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import not_found, refused, sessions_of

router = ApiRouter("media", "Audio files, normalised and encoded for the clusters")

_MULTIPART_OVERHEAD = 64 * 1024
_CHUNK = 256 * 1024


_TOPIC = r"^[A-Za-z0-9.]{1,16}$"


class MediaOut(BaseModel):
    id: int
    sha256: str
    title: str
    duration_ms: int
    codec: str
    size_bytes: int
    loudness_in_lufs: float | None
    loudness_out_lufs: float | None
    created_at: datetime
    language: str = Field(description="e.g. vi, or an ethnic language code such as ctu")
    topics: list[str] = Field(default_factory=list, description="topic codes, e.g. I.9")


class MediaPatch(BaseModel):
    """The fields to change; ``topics`` replaces the set ([] removes every topic)."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, max_length=300)
    topics: list[Annotated[str, Field(pattern=_TOPIC)]] | None = Field(default=None, max_length=50)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class UsageSchedule(BaseModel):
    id: int
    status: str
    start_at: datetime
    recurrence: str


class UsageProgramme(BaseModel):
    id: int
    title: str
    schedules: list[UsageSchedule] = Field(description="upcoming: pending or active")


class MediaUsage(BaseModel):
    media_id: int
    in_use: bool = Field(description="true: a programme uses it, so it cannot be deleted")
    programmes: list[UsageProgramme]


class MediaUploaded(MediaOut):
    created: bool = Field(description="false: the same audio was already in the library")


class MediaQuery(ListQuery):
    q: str | None = Field(default=None, max_length=100, description="title contains")


def _out(m: MediaItem, topics: list[str] | None = None) -> MediaOut:
    out = MediaOut.model_validate(m, from_attributes=True)
    return out.model_copy(update={"topics": topics or []})


def _entry_out(entry: LibraryEntry) -> MediaOut:
    return _out(entry.item, entry.topics)


@router.get(
    "/media",
    summary="List media items",
    permission=Permission.READ,
    query=MediaQuery,
    response=Page[MediaOut],
)
async def list_media(call: Call, query: MediaQuery) -> Page[MediaOut]:
    stmt = select(MediaItem).order_by(col(MediaItem.id).desc())
    if query.q:
        stmt = stmt.where(col(MediaItem.title).ilike(f"%{query.q}%"))
    async with sessions_of(call)() as db:
        page = await paginate(db, stmt, query, _out)
        topics = await topics_of(db, [m.id for m in page.items])
    for m in page.items:
        m.topics = topics.get(m.id, [])
    return page


@router.get(
    "/media/{media_id:int}",
    summary="Read a media item",
    permission=Permission.READ,
    response=MediaOut,
)
async def get_media(call: Call) -> Reply:
    out = _entry_out(await _entry(call))
    return Reply(out, etag=etag_of(out))


async def _entry(call: Call) -> LibraryEntry:
    try:
        return await library.get_media(sessions_of(call), call.path_int("media_id"))
    except StationError:
        raise not_found("media item", media_id=call.path_int("media_id")) from None


@router.patch("/media/{media_id:int}", summary="Edit a media item's title, topics, language",
              permission=Permission.MEDIA_WRITE, body=MediaPatch, response=MediaOut,
              if_match=True)  # fmt: skip
async def edit_media_item(call: Call, body: MediaPatch) -> Reply:
    """Unknown or retired topic codes and bad language codes are 422. Send ``If-Match`` with
    the ETag you read: 412 with ``current_etag`` when someone changed it meanwhile."""
    media_id = (await _entry(call)).item.id
    assert media_id is not None

    def check(entry: LibraryEntry) -> None:
        call.check_if_match(etag_of(_entry_out(entry)))

    try:
        entry = await edit_media(
            sessions_of(call),
            media_id,
            title=body.title,
            topics=body.topics,
            language=body.language,
            check=check,
        )
    except StationError as exc:
        raise _field_refusal(exc) from None
    await audit(call, "media.update", f"media:{media_id}", body.model_dump(exclude_none=True))
    out = _entry_out(entry)
    return Reply(out, etag=etag_of(out))


def _field_refusal(exc: StationError) -> ApiError:
    text = str(exc)
    for name in ("topic", "language", "title"):
        if name in text:
            field = "topics" if name == "topic" else name
            return field_error(field, text, code=exc.code, params=exc.params)
    return refused(exc)


@router.delete("/media/{media_id:int}",
               summary="Delete a media item and its files (refused while a programme uses it)",
               permission=Permission.MEDIA_WRITE, errors=(409,))  # fmt: skip
async def delete_media_item(call: Call) -> None:
    """409 "Media in use" lists the ``programmes`` that use the item, each with its upcoming
    (pending or active) ``schedules``: take it out of those programmes first."""
    media_id = (await _entry(call)).item.id
    assert media_id is not None
    try:
        entry = await delete_media(sessions_of(call), call.app[keys.MEDIA_STORE], media_id)
    except MediaInUse as exc:
        raise ApiError(409, str(exc), title="Media in use", code=exc.code, params=exc.params,
                       programmes=[_user_json(u) for u in exc.users]) from None  # fmt: skip
    except StationError as exc:
        raise refused(exc, 409) from None
    await audit(call, "media.delete", f"media:{media_id}", {"title": entry.item.title})


def _user_json(user: MediaUser) -> dict[str, object]:
    return {"id": user.programme_id, "title": user.title, "schedules": user.schedules}


@router.get("/media/{media_id:int}/usage",
            summary="Which programmes, and which of their upcoming schedules, use an item",
            permission=Permission.READ, response=MediaUsage)  # fmt: skip
async def media_usage(call: Call) -> MediaUsage:
    media_id = (await _entry(call)).item.id
    assert media_id is not None
    async with sessions_of(call)() as db:
        users = await media_users(db, media_id)
        ids = [i for u in users for i in u.schedules]
        rows = (await db.exec(select(Schedule).where(col(Schedule.id).in_(ids)))).all()
    schedules = {s.id: s for s in rows if s.status in UPCOMING}
    programmes = [
        UsageProgramme(
            id=u.programme_id,
            title=u.title,
            schedules=[_usage_schedule(schedules[i]) for i in u.schedules if i in schedules],
        )
        for u in users
    ]
    return MediaUsage(media_id=media_id, in_use=bool(programmes), programmes=programmes)


def _usage_schedule(s: Schedule) -> UsageSchedule:
    assert s.id is not None
    return UsageSchedule(
        id=s.id, status=str(s.status), start_at=s.start_at, recurrence=str(s.recurrence)
    )


def _temp_path(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False) as sink:
        return Path(sink.name)


@dataclass
class _Form:
    title: str = ""
    filename: str = ""
    size: int = -1
    topics: list[str] = field(default_factory=list)
    language: str = ""


async def _text(part: BodyPartReader, limit: int) -> str:
    return (await part.text()).replace("\x00", "")[:limit].strip()


async def _receive(call: Call, path: Path, limit: int) -> _Form:
    """Stream the multipart body: the ``file`` part into ``path``; the text fields as given
    (``topics`` repeated or comma-separated)."""
    form = _Form()
    reader = await call.request.multipart()
    out = await asyncio.to_thread(path.open, "wb")
    try:
        while (part := await _next_part(reader)) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and form.size < 0:
                form.filename = (part.filename or "").replace("\x00", "")
                form.size = await _save_part(part, out, limit)
            elif part.name == "title":
                form.title = await _text(part, 300)
            elif part.name in ("topics", "topic"):
                form.topics += [t.strip() for t in (await _text(part, 400)).split(",") if t]
            elif part.name == "language":
                form.language = await _text(part, 32)
            else:
                await part.release()
    finally:
        await asyncio.to_thread(out.close)
    if form.size < 0:
        raise field_error("file", "missing", code="upload_missing")
    if form.size == 0:
        raise field_error("file", "empty", code="upload_empty")
    return form


async def _next_part(reader: MultipartReader) -> BodyPartReader | MultipartReader | None:
    try:
        return await reader.next()
    except (HttpProcessingError, ValueError) as exc:
        raise ApiError(
            400, f"malformed multipart body: {exc}", title="Bad Request", code="multipart_malformed"
        ) from None


async def _save_part(part: BodyPartReader, sink: BinaryIO, limit: int) -> int:
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413,
                f"file over {limit // (1024 * 1024)} MB",
                title="Content Too Large",
                code="upload_too_large",
                max_mb=limit // (1024 * 1024),
            )
        await asyncio.to_thread(sink.write, chunk)
    return size


@router.post(
    "/media",
    summary="Upload an audio file (multipart: file, title, topics, language)",
    permission=Permission.MEDIA_WRITE,
    upload=True,
    response=MediaUploaded,
    status=201,
)
async def upload_media(call: Call) -> MediaUploaded:
    """The file is streamed to disk (never held in memory), then checked, loudness-normalised
    and encoded. Unusable audio gives 422 with ``reason`` (not_audio, corrupt, too_long, ...).
    ``topics`` (codes of the catalogue, repeated or comma-separated) and ``language`` (default
    vi) are checked before any processing: 422 naming the field."""
    settings = call.app[keys.SETTINGS]
    limit = settings.media.max_upload_mb * 1024 * 1024
    request = call.request
    if request.content_length is not None and request.content_length > limit + _MULTIPART_OVERHEAD:
        raise ApiError(
            413,
            f"file over {settings.media.max_upload_mb} MB",
            title="Content Too Large",
            code="upload_too_large",
            max_mb=settings.media.max_upload_mb,
        )
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(
            415, "send multipart/form-data with a 'file' part", code="file_part_required"
        )
    incoming = settings.media.dir / "incoming"
    path = await asyncio.to_thread(_temp_path, incoming)
    try:
        form = await _receive(call, path, limit)
        try:
            item, created = await add_media(
                sessions_of(call),
                call.app[keys.MEDIA_STORE],
                call.app[keys.MEDIA_WORKER],
                settings,
                path,
                form.title or Path(form.filename).stem or "untitled",
                topics=form.topics,
                language=form.language or "vi",
                uploader=call.user.username,
            )
        except MediaRejected as exc:
            await audit(call, "media.rejected", form.filename[:100], {"reason": exc.reason})
            raise ApiError(
                422, exc.message, title="Audio rejected", code="audio_rejected", reason=exc.reason
            ) from None

        except StationError as exc:
            raise _field_refusal(exc) from None
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    if created:
        await audit(call, "media.upload", f"media:{item.id}",
                    {"title": item.title, "bytes": form.size})  # fmt: skip
    entry = await library.get_media(sessions_of(call), item.id or 0)
    return MediaUploaded(**_entry_out(entry).model_dump(), created=created)
