"""Station operations shared by the CLI, the demo and (later) the REST API.

Each is one transaction; inputs are validated before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import is_valid_id
from station.config import Settings
from station.db import Cluster, MediaItem, Programme, ProgrammeItem, Schedule
from station.media import MediaSettings, MediaStore, MediaWorker

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


class StationError(Exception):
    """An operation refused with a message for the user."""


def media_settings(settings: Settings) -> MediaSettings:
    from ._media_library import media_settings as library_media_settings

    return library_media_settings(settings)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def add_media(
    sessions: Sessions,
    store: MediaStore,
    worker: MediaWorker,
    settings: Settings,
    source: Path,
    title: str,
    progress: Callable[[float], None] | None = None,
) -> tuple[MediaItem, bool]:
    """Ingest an audio file; returns (item, created). An identical upload is not stored twice.

    The library (``station._media_library.add_media``) does the work; it also takes topics,
    language and uploader.
    """
    from ._media_library import add_media as add_library_media

    return await add_library_media(sessions, store, worker, settings, source, title, progress)


async def create_programme(sessions: Sessions, title: str, media_ids: Sequence[int]) -> Programme:
    if not media_ids:
        raise StationError("a programme needs at least one media item")
    async with sessions() as db:
        found = set(
            (await db.exec(select(MediaItem.id).where(col(MediaItem.id).in_(media_ids)))).all()
        )
        missing = [m for m in media_ids if m not in found]
        if missing:
            raise StationError(f"unknown media item(s): {', '.join(map(str, missing))}")
        programme = Programme(title=title)
        db.add(programme)
        await db.flush()
        assert programme.id is not None
        db.add_all(
            ProgrammeItem(programme_id=programme.id, position=i, media_id=m)
            for i, m in enumerate(media_ids)
        )
        await db.commit()
        await db.refresh(programme)
        return programme


async def schedule_once(
    sessions: Sessions,
    programme_id: int,
    start_at: datetime,
    targets: dict[str, Any],
) -> Schedule:
    if start_at.tzinfo is None:
        raise StationError("start time must carry a time zone")
    async with sessions() as db:
        if await db.get(Programme, programme_id) is None:
            raise StationError(f"unknown programme {programme_id}")
        wanted = targets.get("clusters")
        if wanted:
            found = set(
                (await db.exec(select(Cluster.id).where(col(Cluster.id).in_(wanted)))).all()
            )
            unknown = [c for c in wanted if c not in found]
            if unknown:
                raise StationError(f"unknown cluster(s): {', '.join(unknown)}")
        schedule = Schedule(programme_id=programme_id, start_at=start_at, targets=targets)
        db.add(schedule)
        await db.commit()
        await db.refresh(schedule)
        return schedule


async def register_clusters(sessions: Sessions, clusters: Iterable[tuple[str, str]]) -> list[str]:
    """Register (id, name) pairs that are not yet known; returns the ids added."""
    added: list[str] = []
    async with sessions() as db:
        for cluster_id, name in clusters:
            if not is_valid_id(cluster_id):
                raise StationError(
                    f"invalid cluster id {cluster_id!r}: letters, digits, '_', '.', '-' only"
                )
            if await db.get(Cluster, cluster_id) is None:
                db.add(Cluster(id=cluster_id, name=name))
                added.append(cluster_id)
        await db.commit()
    return added
