"""Media library [thư viện âm thanh]: list, read, upload (streamed to disk, size-limited)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, Field
from sqlmodel import col, select

from station import _keys as keys
from station._services import add_media
from station.db import MediaItem
from station.media import MediaRejected

from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import not_found, sessions_of

router = ApiRouter("media", "Audio files, normalised and encoded for the clusters")

_MULTIPART_OVERHEAD = 64 * 1024
_CHUNK = 256 * 1024


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


class MediaUploaded(MediaOut):
    created: bool = Field(description="false: the same audio was already in the library")


class MediaQuery(ListQuery):
    q: str | None = Field(default=None, max_length=100, description="title contains")


def _out(m: MediaItem) -> MediaOut:
    return MediaOut.model_validate(m, from_attributes=True)


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
        return await paginate(db, stmt, query, _out)


@router.get(
    "/media/{media_id:int}",
    summary="Read a media item",
    permission=Permission.READ,
    response=MediaOut,
)
async def get_media(call: Call) -> Reply:
    async with sessions_of(call)() as db:
        item = await db.get(MediaItem, call.path_int("media_id"))
    if item is None:
        raise not_found("media item")
    out = _out(item)
    return Reply(out, etag=etag_of(out))


def _temp_path(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False) as sink:
        return Path(sink.name)


async def _receive(call: Call, path: Path, limit: int) -> tuple[str, str, int]:
    """Stream the multipart body: the ``file`` part into ``path``; returns (title, name, size)."""
    title, filename, size = "", "", -1
    reader = await call.request.multipart()
    out = await asyncio.to_thread(path.open, "wb")
    try:
        while (part := await _next_part(reader)) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and size < 0:
                filename = (part.filename or "").replace("\x00", "")
                size = await _save_part(part, out, limit)
            elif part.name == "title":
                title = (await part.text()).replace("\x00", "")[:200].strip()
            else:
                await part.release()
    finally:
        await asyncio.to_thread(out.close)
    if size < 0:
        raise field_error("file", "missing")
    if size == 0:
        raise field_error("file", "empty")
    return title, filename, size


async def _next_part(reader: MultipartReader) -> BodyPartReader | MultipartReader | None:
    try:
        return await reader.next()
    except (HttpProcessingError, ValueError) as exc:
        raise ApiError(400, f"malformed multipart body: {exc}", title="Bad Request") from None


async def _save_part(part: BodyPartReader, sink: BinaryIO, limit: int) -> int:
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"file over {limit // (1024 * 1024)} MB", title="Content Too Large")
        await asyncio.to_thread(sink.write, chunk)
    return size


@router.post(
    "/media",
    summary="Upload an audio file (multipart: file, title)",
    permission=Permission.MEDIA_WRITE,
    upload=True,
    response=MediaUploaded,
    status=201,
)
async def upload_media(call: Call) -> MediaUploaded:
    """The file is streamed to disk (never held in memory), then checked, loudness-normalised
    and encoded. Unusable audio gives 422 with ``reason`` (not_audio, corrupt, too_long, ...)."""
    settings = call.app[keys.SETTINGS]
    limit = settings.media.max_upload_mb * 1024 * 1024
    request = call.request
    if request.content_length is not None and request.content_length > limit + _MULTIPART_OVERHEAD:
        raise ApiError(
            413, f"file over {settings.media.max_upload_mb} MB", title="Content Too Large"
        )
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send multipart/form-data with a 'file' part")
    incoming = settings.media.dir / "incoming"
    path = await asyncio.to_thread(_temp_path, incoming)
    try:
        title, filename, size = await _receive(call, path, limit)
        try:
            item, created = await add_media(
                sessions_of(call),
                call.app[keys.MEDIA_STORE],
                call.app[keys.MEDIA_WORKER],
                settings,
                path,
                title or Path(filename).stem or "untitled",
            )
        except MediaRejected as exc:
            await audit(call, "media.rejected", filename[:100], {"reason": exc.reason})
            raise ApiError(422, exc.message, title="Audio rejected", reason=exc.reason) from None
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    if created:
        await audit(call, "media.upload", f"media:{item.id}", {"title": item.title, "bytes": size})
    return MediaUploaded(**_out(item).model_dump(), created=created)
