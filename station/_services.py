"""Station operations shared by the CLI, the demo and (later) the REST API.

Each is one transaction; inputs are validated before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
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
    """An operation refused with a message for the user.

    ``code`` (one of ``station.api._problems.CODES``) and ``params`` (ids, names) let the API
    answer with a problem the console says in the user's language; the message stays English.
    """

    code: str | None = None

    def __init__(self, message: str = "", *, code: str | None = None, **params: object) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.params: dict[str, object] = params


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
        raise StationError(
            "a programme needs at least one media item", code="programme_items_needed"
        )
    async with sessions() as db:
        found = set(
            (await db.exec(select(MediaItem.id).where(col(MediaItem.id).in_(media_ids)))).all()
        )
        missing = [m for m in media_ids if m not in found]
        if missing:
            raise StationError(
                f"unknown media item(s): {', '.join(map(str, missing))}",
                code="media_unknown",
                media_ids=list(missing),
            )
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


async def register_clusters(
    sessions: Sessions, clusters: Iterable[tuple[str, str]], *, at: datetime | None = None
) -> list[str]:
    """Register (id, name) pairs that are not yet known; returns the ids added. Each new
    cluster's status history starts with its registration (``at``, default now).

    Every id is checked before anything is written: an invalid one, or one given twice, refuses
    the whole call (a second name for the same id would be a guess)."""
    from ._registry import note_status_change  # _registry imports this module

    wanted = list(clusters)
    seen: set[str] = set()
    for cluster_id, _name in wanted:
        if not is_valid_id(cluster_id):
            raise StationError(
                f"invalid cluster id {cluster_id!r}: letters, digits, '_', '.', '-' only",
                code="cluster_invalid",
                cluster_id=cluster_id,
            )
        if cluster_id in seen:
            raise StationError(
                f"cluster id {cluster_id!r} is given more than once",
                code="cluster_id_repeated",
                cluster_id=cluster_id,
            )

        seen.add(cluster_id)
    added: list[Cluster] = []
    async with sessions() as db:
        for cluster_id, name in wanted:
            if await db.get(Cluster, cluster_id) is None:
                cluster = Cluster(id=cluster_id, name=name)
                db.add(cluster)
                added.append(cluster)
        await db.flush()  # the history rows refer to the clusters
        when = at or datetime.now(UTC)
        for cluster in added:
            note_status_change(db, cluster, None, "registered", when)
        await db.commit()
    return [c.id for c in added]
