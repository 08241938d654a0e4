"""A throwaway PostgreSQL schema per test, so parallel runs on one database never collide;
a migrated database with a few rows in it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager

import sqlalchemy as sa

from station._services import Sessions
from station.config import sync_driver_url
from station.db import MediaItem, create_engine_for, session_factory, upgrade_async


def with_search_path(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def postgres_schema(base_url: str, prefix: str = "loaxa_t") -> Iterator[str]:
    """A URL whose search_path is a fresh schema in ``base_url``'s database, dropped after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sync_driver_url(base_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield with_search_path(base_url, schema)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@asynccontextmanager
async def seeded(database_url: str, *batches: Sequence[object]) -> AsyncIterator[Sessions]:
    """Sessions on ``database_url`` migrated to the head, with the rows of ``batches`` added in
    turn (each flushed before the next: rows that refer to earlier ones) and committed."""
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    factory = session_factory(engine)
    async with factory() as db:
        for rows in batches:
            db.add_all(rows)
            await db.flush()
        await db.commit()
    try:
        yield factory
    finally:
        await engine.dispose()


def media_row(char: str, duration_ms: int, size_bytes: int) -> MediaItem:
    """A library row "Tin" (no file behind it) whose hashes are ``char`` * 64."""
    return MediaItem(
        sha256=char * 64,
        source_sha256=char * 64,
        title="Tin",
        duration_ms=duration_ms,
        size_bytes=size_bytes,
    )


async def library_rows(
    sessions: Sessions, titles: list[str], duration_ms: int, size_bytes: int, source_from: int
) -> list[int]:
    """Library rows (no file behind them, no ffmpeg) titled ``titles``, their hashes numbered
    from 0 and their sources' from ``source_from``: their ids, in order."""
    async with sessions() as db:
        items = [
            MediaItem(
                sha256=f"{i:064x}",
                source_sha256=f"{i + source_from:064x}",
                title=title,
                duration_ms=duration_ms,
                size_bytes=size_bytes,
            )
            for i, title in enumerate(titles)
        ]
        db.add_all(items)
        await db.commit()
        ids = []
        for item in items:
            assert item.id is not None
            ids.append(item.id)
    return ids
