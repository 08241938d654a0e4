"""Database: migrations, models, time zones, constraints.

Runs on SQLite always, and on PostgreSQL when LOAXA_TEST_DATABASE_URL is set (each test gets its
own schema, dropped afterwards, so parallel runs on one database do not collide).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.config import sync_driver_url
from station.db import (
    Cluster,
    ClusterKind,
    ClusterStatus,
    MediaItem,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Programme,
    ProgrammeItem,
    Schedule,
    ScheduleStatus,
    Station,
    alembic_config,
    create_engine_for,
    metadata,
    session_factory,
    upgrade,
    upgrade_async,
)
from tests.db_support import postgres_schema

PG_URL = os.environ.get("LOAXA_TEST_DATABASE_URL", "")
ICT = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh, no DST

Sessions = async_sessionmaker[AsyncSession]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not PG_URL, reason="LOAXA_TEST_DATABASE_URL not set"),
        ),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/loaxa.db"
        return
    with postgres_schema(PG_URL, prefix="loaxa_test") as url:
        yield url


@pytest.fixture
def migrated_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine_for(migrated_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> Sessions:
    return session_factory(engine)


def _sync_engine(url: str) -> sa.Engine:
    return sa.create_engine(sync_driver_url(url), poolclass=sa.pool.NullPool)


def _schema_diff(url: str, target: sa.MetaData = metadata) -> list[Any]:
    eng = _sync_engine(url)
    try:
        with eng.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "target_metadata": target}
            )
            return list(compare_metadata(ctx, target))
    finally:
        eng.dispose()


def _current_revision(url: str) -> str | None:
    eng = _sync_engine(url)
    try:
        with eng.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        eng.dispose()


async def _programme_with_media(session: AsyncSession) -> tuple[Programme, MediaItem]:
    media = MediaItem(
        sha256="a" * 64,
        source_sha256="b" * 64,
        title="Bản tin sáng",
        duration_ms=61_000,
        size_bytes=190_000,
    )
    programme = Programme(title="Chương trình sáng")
    session.add_all([media, programme])
    await session.flush()
    return programme, media


# --------------------------------------------------------------------------- migrations


HEAD = "live_1"  # the newest migration; every new one revises it


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [HEAD]


def test_upgrade_creates_every_table(migrated_url: str) -> None:
    eng = _sync_engine(migrated_url)
    try:
        tables = set(sa.inspect(eng).get_table_names())
    finally:
        eng.dispose()
    assert tables == set(metadata.tables) | {"alembic_version"}
    assert set(metadata.tables) >= {
        "stations",
        "clusters",
        "media_items",
        "programmes",
        "programme_items",
        "schedules",
        "play_sessions",
        "play_records",
        # fleet_1
        "villages",
        "zones",
        "cluster_zones",
        "alerts",
        "cluster_telemetry",
        "data_use",
    }
    assert _current_revision(migrated_url) == HEAD


def test_migrations_match_models(migrated_url: str) -> None:
    assert _schema_diff(migrated_url) == []


def test_drift_check_would_notice_a_change(migrated_url: str) -> None:
    changed = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["clusters"].append_column(sa.Column("volume", sa.Integer()))
    diff = _schema_diff(migrated_url, changed)
    assert [d[0] for d in diff] == ["add_column"]


def test_upgrade_twice_is_a_noop(migrated_url: str) -> None:
    upgrade(migrated_url)
    assert _current_revision(migrated_url) == HEAD
    assert _schema_diff(migrated_url) == []


async def test_upgrade_async(db_url: str) -> None:
    await upgrade_async(db_url)
    assert _current_revision(db_url) == HEAD


# --------------------------------------------------------------------------- models


async def test_every_model_round_trips(sessions: Sessions) -> None:
    start = datetime(2026, 3, 1, 6, 0, tzinfo=ICT)
    async with sessions() as s:
        s.add(Station(id="xa-demo", name="Đài truyền thanh xã", timezone="Asia/Ho_Chi_Minh"))
        s.add(
            Cluster(
                id="C01",
                name="Thôn 1",
                kind=ClusterKind.ICT,
                village_id="thon-1",
                firmware="1.2.3",
                model="ICT-4",
                capabilities={"codecs": ["opus", "mp3"]},
                last_seen_at=start,
            )
        )
        programme, media = await _programme_with_media(s)
        assert programme.id is not None and media.id is not None
        s.add(ProgrammeItem(programme_id=programme.id, position=0, media_id=media.id))
        schedule = Schedule(programme_id=programme.id, start_at=start, targets={"all": True})
        s.add(schedule)
        await s.flush()
        session = PlaySession(
            schedule_id=schedule.id,
            programme_id=programme.id,
            start_at=start,
            expires_at=start + timedelta(seconds=60),
        )
        s.add(session)
        await s.flush()
        s.add(
            PlayRecord(
                session_id=session.id,
                cluster_id="C01",
                status=PlayRecordStatus.FINISHED,
                scheduled_start=start,
                started_at=start + timedelta(milliseconds=12),
                finished_at=start + timedelta(seconds=61),
                skew_ms=12,
                played_ms=61_000,
                bytes_downloaded=3_000_000_000,
                clock_offset_ms=-3,
                error_code=None,
            )
        )
        await s.commit()
        ids = (programme.id, media.id, schedule.id, session.id)

    async with sessions() as s:  # a new session: values come from the database
        station = await s.get(Station, "xa-demo")
        assert station is not None and station.name == "Đài truyền thanh xã"
        cluster = await s.get(Cluster, "C01")
        assert cluster is not None
        assert cluster.kind is ClusterKind.ICT and cluster.status is ClusterStatus.REGISTERED
        assert cluster.online is False
        assert cluster.capabilities == {"codecs": ["opus", "mp3"]}
        assert cluster.last_seen_at == start
        item = (await s.exec(select(ProgrammeItem))).one()
        assert (item.programme_id, item.position, item.media_id) == (ids[0], 0, ids[1])
        media_row = await s.get(MediaItem, ids[1])
        assert media_row is not None and media_row.codec == "opus"
        assert (media_row.title, media_row.duration_ms) == ("Bản tin sáng", 61_000)
        assert media_row.loudness_in_lufs is None
        schedule_row = await s.get(Schedule, ids[2])
        assert schedule_row is not None
        assert schedule_row.targets == {"all": True}
        assert schedule_row.status is ScheduleStatus.PENDING
        session_row = await s.get(PlaySession, ids[3])
        assert session_row is not None and session_row.status is PlaySessionStatus.PENDING
        assert len(session_row.id) == 32 and session_row.dispatched_at is None
        record = (await s.exec(select(PlayRecord))).one()
        assert record.status is PlayRecordStatus.FINISHED
        assert record.bytes_downloaded == 3_000_000_000  # BIGINT
        assert (record.skew_ms, record.clock_offset_ms) == (12, -3)
        assert record.finished_at == start + timedelta(seconds=61)


async def test_datetimes_come_back_aware_utc(sessions: Sessions) -> None:
    local = datetime(2026, 3, 1, 6, 30, 15, 123456, tzinfo=ICT)
    async with sessions() as s:
        programme, _ = await _programme_with_media(s)
        assert programme.id is not None
        s.add(Schedule(programme_id=programme.id, start_at=local, targets={}))
        await s.commit()
    async with sessions() as s:
        row = (await s.exec(select(Schedule))).one()
        assert row.start_at == local
        assert row.start_at.utcoffset() == timedelta(0)
        assert row.start_at.replace(tzinfo=None) == datetime(2026, 2, 28, 23, 30, 15, 123456)
        for value in (row.created_at, row.updated_at):
            assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        # comparisons against values in other zones use the instant, not the wall time
        just_before = local.astimezone(UTC) - timedelta(microseconds=1)
        later = (await s.exec(select(Schedule).where(col(Schedule.start_at) > just_before))).all()
        assert len(later) == 1
        not_yet = (await s.exec(select(Schedule).where(col(Schedule.start_at) > local))).all()
        assert not_yet == []


async def test_naive_datetime_rejected(sessions: Sessions) -> None:
    async with sessions() as s:
        programme, _ = await _programme_with_media(s)
        assert programme.id is not None
        s.add(Schedule(programme_id=programme.id, start_at=datetime(2026, 3, 1, 6, 0)))
        with pytest.raises(StatementError, match="naive datetime"):
            await s.flush()


async def test_updated_at_moves_on_update(sessions: Sessions) -> None:
    async with sessions() as s:
        programme, _ = await _programme_with_media(s)
        assert programme.id is not None
        schedule = Schedule(programme_id=programme.id, start_at=datetime.now(UTC))
        s.add(schedule)
        await s.commit()
        before = schedule.updated_at
        schedule.status = ScheduleStatus.DISPATCHED
        await s.commit()
        assert schedule.updated_at > before


async def test_json_top_level_changes_are_saved(sessions: Sessions) -> None:
    async with sessions() as s:
        s.add(Cluster(id="C01"))
        await s.commit()
    async with sessions() as s:
        cluster = await s.get(Cluster, "C01")
        assert cluster is not None and cluster.capabilities == {}
        cluster.capabilities["codecs"] = ["opus"]  # in place, no reassignment
        await s.commit()
    async with sessions() as s:
        cluster = await s.get(Cluster, "C01")
        assert cluster is not None and cluster.capabilities == {"codecs": ["opus"]}


# --------------------------------------------------------------------------- constraints


async def test_unique_media_sha256(sessions: Sessions) -> None:
    async with sessions() as s:
        await _programme_with_media(s)
        await s.commit()
        s.add(
            MediaItem(
                sha256="a" * 64, source_sha256="c" * 64, title="x", duration_ms=1, size_bytes=1
            )
        )
        with pytest.raises(IntegrityError):
            await s.commit()


async def test_unique_programme_position(sessions: Sessions) -> None:
    async with sessions() as s:
        programme, media = await _programme_with_media(s)
        assert programme.id is not None and media.id is not None
        s.add(ProgrammeItem(programme_id=programme.id, position=0, media_id=media.id))
        await s.commit()
        s.add(ProgrammeItem(programme_id=programme.id, position=0, media_id=media.id))
        with pytest.raises(IntegrityError):
            await s.commit()


async def test_unique_record_per_session_and_cluster(sessions: Sessions) -> None:
    now = datetime.now(UTC)
    async with sessions() as s:
        programme, _ = await _programme_with_media(s)
        assert programme.id is not None
        s.add(Cluster(id="C01"))
        play = PlaySession(programme_id=programme.id, start_at=now, expires_at=now)
        s.add(play)
        await s.flush()
        s.add(
            PlayRecord(
                session_id=play.id,
                cluster_id="C01",
                status="sent",  # type: ignore[arg-type]
                scheduled_start=now,
            )
        )
        await s.commit()
        s.add(
            PlayRecord(
                session_id=play.id,
                cluster_id="C01",
                status="acked",  # type: ignore[arg-type]
                scheduled_start=now,
            )
        )
        with pytest.raises(IntegrityError):
            await s.commit()


async def test_foreign_keys_enforced(sessions: Sessions) -> None:
    async with sessions() as s:
        s.add(ProgrammeItem(programme_id=999, position=0, media_id=999))
        with pytest.raises(IntegrityError):
            await s.commit()


async def test_deleting_a_programme_removes_its_items_but_keeps_media(sessions: Sessions) -> None:
    async with sessions() as s:
        programme, media = await _programme_with_media(s)
        assert programme.id is not None and media.id is not None
        s.add(ProgrammeItem(programme_id=programme.id, position=0, media_id=media.id))
        await s.commit()
        await s.exec(sa.delete(Programme))
        await s.commit()
        assert (await s.exec(select(ProgrammeItem))).all() == []
        assert len((await s.exec(select(MediaItem))).all()) == 1


async def test_media_in_use_cannot_be_deleted(sessions: Sessions) -> None:
    async with sessions() as s:
        programme, media = await _programme_with_media(s)
        assert programme.id is not None and media.id is not None
        s.add(ProgrammeItem(programme_id=programme.id, position=0, media_id=media.id))
        await s.commit()
        with pytest.raises(IntegrityError):  # RESTRICT: checked by the statement itself
            await s.exec(sa.delete(MediaItem))


async def test_unknown_status_rejected(sessions: Sessions, engine: AsyncEngine) -> None:
    async with sessions() as s:
        s.add(Cluster(id="C01", status="broken"))  # type: ignore[arg-type]
        with pytest.raises(StatementError):
            await s.flush()
    # the CHECK constraint holds even for writes that bypass the ORM
    async with engine.connect() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(
                sa.text(
                    "INSERT INTO clusters (id, name, kind, status, online, capabilities,"
                    " created_at) VALUES ('C02', '', 'ict', 'broken', false, '{}', :now)"
                ),
                {"now": datetime.now(UTC)},
            )


async def test_plain_strings_accepted_for_statuses(sessions: Sessions) -> None:
    async with sessions() as s:
        s.add(Cluster(id="C01", status="online", kind="bridge"))  # type: ignore[arg-type]
        await s.commit()
    async with sessions() as s:
        cluster = await s.get(Cluster, "C01")
        assert cluster is not None
        assert (cluster.status, cluster.kind) == (ClusterStatus.ONLINE, ClusterKind.BRIDGE)


# --------------------------------------------------------------------------- engine


async def test_sqlite_engine_pragmas_and_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/folder/loaxa.db"
    eng = create_engine_for(url)
    try:
        async with eng.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        await eng.dispose()
    assert (tmp_path / "new" / "folder" / "loaxa.db").exists()


async def test_session_objects_readable_after_commit(sessions: Sessions) -> None:
    async with sessions() as s:
        cluster = Cluster(id="C01", name="Thôn 1")
        s.add(cluster)
        await s.commit()
    assert cluster.name == "Thôn 1"  # expire_on_commit=False: no lazy reload needed
