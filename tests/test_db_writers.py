"""Concurrent writers on one database, and migrations that fail halfway on SQLite.

The station writes from several tasks at once (FleetMonitor's batches, PlayoutStore's proof of
play, the emergency runner). On SQLite in WAL mode a transaction that reads, lets another
writer commit, and then writes can fail at once with "database is locked" if its reads hold a
snapshot (a plain deferred BEGIN before the reads): SQLite cannot move that snapshot forward to
write. These tests pin that our engine never fails that way, and show that the choreography
they use does trigger it with such a BEGIN, so they would notice the change.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import Ack, Event, Status
from station._delivery_state import DownloadMeter
from station._monitor import DeviceHandlers, FleetMonitor, MonitorSettings, add_data_use
from station._playout_store import PlayoutStore
from station._services import Sessions, register_clusters
from station.config import async_driver_url
from station.db import (
    Cluster,
    DataUse,
    MediaDownload,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Programme,
    create_engine_for,
    session_factory,
    upgrade,
    upgrade_async,
)

CLUSTERS = [f"C{n:03d}" for n in range(120)]
SESSIONS = ("s1-1", "s1-2")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_async(database_url)
    eng = create_engine_for(database_url)
    try:
        yield eng
    finally:
        await eng.dispose()


async def _play_sessions(sessions: Sessions, at: datetime) -> None:
    async with sessions() as db:
        programme = Programme(title="writers")
        db.add(programme)
        await db.flush()
        assert programme.id is not None
        for sid in SESSIONS:
            db.add(PlaySession(id=sid, programme_id=programme.id, start_at=at, expires_at=at))
        await db.flush()
        db.add_all(
            PlayRecord(
                session_id=sid, cluster_id=cid, status=PlayRecordStatus.SENT, scheduled_start=at
            )
            for sid in SESSIONS
            for cid in CLUSTERS
        )
        await db.commit()


async def test_batched_writers_at_once_write_everything(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A will storm, then births, flushed while proof of play is flushed: every batch commits
    (no per-cluster retry) and every row is written."""
    caplog.set_level(logging.WARNING, logger="station")
    sessions = session_factory(engine)
    await register_clusters(sessions, [(cid, cid) for cid in CLUSTERS])
    at = datetime.now(UTC)
    await _play_sessions(sessions, at)
    monitor = FleetMonitor(sessions, MonitorSettings(batch_s=0.25))
    handlers = DeviceHandlers(PlayoutStore(sessions), FleetMonitor(sessions, MonitorSettings()))
    failed = 0
    for sid, state in zip(SESSIONS, ("offline", "online"), strict=True):
        for cid in CLUSTERS:
            await monitor.on_status(Status(cluster_id=cid, state=state))  # type: ignore[arg-type]
            await handlers.on_ack(Ack(cluster_id=cid, cmd_id=f"{sid}.{cid}.play", ok=True, ts=at))
            await handlers.on_event(
                Event(cluster_id=cid, type="playback_started", session_id=sid, ts=at,
                      started_at=at, clock_offset_ms=3)
            )  # fmt: skip
        _, proof_failed = await asyncio.gather(monitor.flush(), handlers.flush())
        failed += proof_failed
    assert (monitor.failed, failed) == (0, 0)
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    async with sessions() as db:
        online = await db.exec(select(func.count()).where(col(Cluster.online)))
        started = await db.exec(
            select(func.count()).where(PlayRecord.status == PlayRecordStatus.STARTED)
        )
        assert (online.one(), started.one()) == (len(CLUSTERS), len(CLUSTERS) * len(SESSIONS))


async def _read_then_write_crossed(sessions: Sessions) -> None:
    """Two transactions read; the first writes and commits; then the second writes."""
    both_read = asyncio.Event()
    first_done = asyncio.Event()
    readers = 0

    async def transaction(cluster_id: str, first: bool) -> None:
        nonlocal readers
        async with sessions() as db:
            (await db.exec(select(func.count()).select_from(Cluster))).one()
            readers += 1
            if readers == 2:
                both_read.set()
            await both_read.wait()
            if not first:
                await first_done.wait()
            db.add(Cluster(id=cluster_id, name=cluster_id))
            await db.commit()
        if first:
            first_done.set()

    results = await asyncio.gather(
        transaction("A", True), transaction("B", False), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def test_read_then_write_transactions_crossing_both_commit(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    for _round in range(3):
        async with sessions() as db:
            await db.exec(sa.delete(Cluster))  # type: ignore[call-overload]
            await db.commit()
        await _read_then_write_crossed(sessions)
        async with sessions() as db:
            ids = (await db.exec(select(Cluster.id).order_by(col(Cluster.id)))).all()
        assert list(ids) == ["A", "B"]


def _deferred_begin_engine(url: str) -> AsyncEngine:
    """SQLAlchemy's recipe for full SQLite transactions with a plain (deferred) BEGIN."""
    eng = create_async_engine(async_driver_url(url))

    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    def begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    sa.event.listen(eng.sync_engine, "connect", connect)
    sa.event.listen(eng.sync_engine, "begin", begin)
    return eng


async def test_a_deferred_begin_would_fail_the_crossing_writer(tmp_path: Path) -> None:
    """The choreography above does race: with reads inside a deferred transaction the second
    writer fails at once, busy_timeout notwithstanding."""
    url = f"sqlite:///{tmp_path}/deferred.db"
    await upgrade_async(url)
    real = create_engine_for(url)  # puts the file in WAL mode (it stays so)
    async with real.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
    await real.dispose()
    eng = _deferred_begin_engine(url)
    try:
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            await _read_then_write_crossed(session_factory(eng))
    finally:
        await eng.dispose()


# --------------------------------------------------------------------------- migrations


def _revision(path: Path) -> str | None:
    eng = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        eng.dispose()


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def test_sqlite_migration_failing_halfway_leaves_nothing_behind(tmp_path: Path) -> None:
    """fleet_2 creates a table, then an index: if the index fails, the table goes too, the
    revision stays, and once the cause is gone the same upgrade simply runs again."""
    path = tmp_path / "loaxa.db"
    url = f"sqlite:///{path}"
    upgrade(url, "accounts_2")  # fleet_2's parent
    with sqlite3.connect(path) as conn:  # a name clash the index creation trips on
        conn.execute("CREATE INDEX ix_cluster_status_changes_cluster_at ON clusters (id)")
    with pytest.raises(sa.exc.OperationalError, match="already exists"):
        upgrade(url, "fleet_2")
    assert "cluster_status_changes" not in _tables(path)
    assert _revision(path) == "accounts_2"
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX ix_cluster_status_changes_cluster_at")
    upgrade(url, "fleet_2")
    assert "cluster_status_changes" in _tables(path)
    assert _revision(path) == "fleet_2"


# --------------------------------------------------------------------------- lost updates
#
# Reads in our transactions are not isolated (SQLite: BEGIN comes with the first write;
# PostgreSQL: READ COMMITTED), so a counter read, changed in Python and written back loses
# what another writer added in between. These tests cross two writers on one row: both read,
# the first writes and commits, then the second writes. The counters are added in SQL, so
# both additions stay; the first test shows the choreography does lose a read-add-write.


class _Crossing:
    """Holds each transaction at its first write until both have read; the second writes
    only once the first has committed."""

    def __init__(self) -> None:
        self.arrived = 0
        self.first_arrived = asyncio.Event()
        self.both_read = asyncio.Event()
        self.first_done = asyncio.Event()

    def sessions(self, engine: AsyncEngine) -> Sessions:
        crossing = self

        class CrossingSession(AsyncSession):
            turn = 0

            async def _write_turn(self) -> None:
                if self.turn:
                    return
                crossing.arrived += 1
                self.turn = crossing.arrived
                crossing.first_arrived.set()
                if crossing.arrived == 2:
                    crossing.both_read.set()
                await crossing.both_read.wait()
                if self.turn == 2:
                    await crossing.first_done.wait()

            async def exec(self, statement: Any, **kwargs: Any) -> Any:
                if not isinstance(statement, sa.Select):
                    await self._write_turn()
                return await super().exec(statement, **kwargs)

            async def commit(self) -> None:
                await self._write_turn()
                await super().commit()
                if self.turn == 1:
                    crossing.first_done.set()

        return async_sessionmaker(engine, class_=CrossingSession, expire_on_commit=False)


async def _both(*writers: Awaitable[object]) -> None:
    for result in await asyncio.gather(*writers, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


DAY = date(2026, 11, 27)


async def _data_use(sessions: Sessions) -> list[tuple[str, date, int]]:
    async with sessions() as db:
        rows = await db.exec(select(DataUse).order_by(col(DataUse.cluster_id)))
        return [(r.cluster_id, r.day, r.bytes) for r in rows]


async def test_the_crossing_loses_a_read_add_write(engine: AsyncEngine) -> None:
    """The control: ``row.bytes += n`` in both writers keeps only the second one's bytes."""
    plain = session_factory(engine)
    await register_clusters(plain, [("A", "A")])
    async with plain() as db:
        db.add(DataUse(cluster_id="A", day=DAY, bytes=100))
        await db.commit()

    async def read_add_write(sessions: Sessions, used: int) -> None:
        async with sessions() as db:
            row = await db.get(DataUse, ("A", DAY))
            assert row is not None
            row.bytes += used
            db.add(row)
            await db.commit()

    crossed = _Crossing().sessions(engine)
    await _both(read_add_write(crossed, 5), read_add_write(crossed, 7))
    assert await _data_use(plain) == [("A", DAY, 107)]  # the 5 is lost


async def test_data_use_of_crossing_writers_is_the_sum(engine: AsyncEngine) -> None:
    """The monitor's upsert (``add_data_use``): on an existing row and on a new one (both
    writers insert it), after each transaction read the rows first, as the monitor does."""
    plain = session_factory(engine)
    await register_clusters(plain, [("A", "A"), ("B", "B")])
    async with plain() as db:
        db.add(DataUse(cluster_id="A", day=DAY, bytes=100))
        await db.commit()

    async def add(sessions: Sessions, used: int) -> None:
        async with sessions() as db:
            (await db.exec(select(DataUse))).all()
            await add_data_use(db, {("A", DAY): used, ("B", DAY): used * 10})
            await db.commit()

    crossed = _Crossing().sessions(engine)
    await _both(add(crossed, 5), add(crossed, 7))
    assert await _data_use(plain) == [("A", DAY, 112), ("B", DAY, 120)]


async def test_media_downloads_of_crossing_meters_are_the_sum(engine: AsyncEngine) -> None:
    """Two download meters (two flushes) add to one (cluster, day): on an existing row and on a
    new one that both insert; each reads the rows first, as a read-add-write flush did."""
    plain = session_factory(engine)
    async with plain() as db:
        db.add(MediaDownload(cluster_id="A", day=DAY, bytes=100, requests=1))
        await db.commit()

    async def flush(sessions: Sessions, served: int) -> None:
        meter = DownloadMeter(zone=UTC)
        at = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
        for cluster_id in ("A", "B"):
            meter.add(cluster_id, served, at)
            meter.add(cluster_id, served, at)
        real = sessions

        def reading() -> AsyncSession:  # reads the rows before writing, then crosses
            db = real()
            original = db.exec

            async def exec_(statement: Any, **kwargs: Any) -> Any:
                if not isinstance(statement, sa.Select):
                    (await original(select(MediaDownload))).all()
                return await original(statement, **kwargs)

            db.exec = exec_  # type: ignore[method-assign]
            return db

        assert await meter.flush(reading) == 2  # type: ignore[arg-type]

    crossed = _Crossing().sessions(engine)
    await _both(flush(crossed, 5), flush(crossed, 7))
    async with plain() as db:
        rows = (await db.exec(select(MediaDownload).order_by(col(MediaDownload.cluster_id)))).all()
    assert [(r.cluster_id, r.day, r.bytes, r.requests) for r in rows] == [
        ("A", DAY, 124, 5),
        ("B", DAY, 24, 4),
    ]


async def test_segment_ends_of_crossing_proof_writers_are_summed(engine: AsyncEngine) -> None:
    """Two proof-of-play writers count two segment ends of one record: both read it with no
    end yet; the second adds to what the first wrote instead of replacing it."""
    plain = session_factory(engine)
    await register_clusters(plain, [("C000", "C000")])
    at = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    async with plain() as db:
        programme = Programme(title="sums")
        db.add(programme)
        await db.flush()
        assert programme.id is not None
        db.add(PlaySession(id="s1-1", programme_id=programme.id, start_at=at, expires_at=at))
        await db.flush()
        db.add(
            PlayRecord(
                session_id="s1-1",
                cluster_id="C000",
                status=PlayRecordStatus.STARTED,
                scheduled_start=at,
                bytes_downloaded=3,  # so far, from the start: the first end replaces it
            )
        )
        await db.commit()

    def end(segment: str, minutes: int, played_ms: int, nbytes: int) -> Event:
        return Event(
            cluster_id="C000", type="playback_finished", session_id=segment, ts=at,
            finished_at=at + timedelta(minutes=minutes), played_ms=played_ms,
            bytes_downloaded=nbytes,
        )  # fmt: skip

    crossing = _Crossing()
    crossed = crossing.sessions(engine)
    first, second = PlayoutStore(crossed), PlayoutStore(crossed)
    # A cluster's segments end in order: the earlier end is the one that writes first (the
    # crossing orders writers by arrival, which the loop would otherwise leave to chance).
    earlier = asyncio.create_task(first.on_event(end("s1-1", 1, 60_000, 1_000)))
    async with asyncio.timeout(10):  # a hang guard only
        await crossing.first_arrived.wait()
    await _both(earlier, second.on_event(end("s1-1~1", 3, 120_000, 2_000)))
    await PlayoutStore(plain).on_event(end("s1-1~1", 3, 120_000, 2_000))  # redelivered
    async with plain() as db:
        record = (await db.exec(select(PlayRecord))).one()
    assert record.status == PlayRecordStatus.FINISHED
    assert (record.played_ms, record.bytes_downloaded) == (180_000, 3_000)
    assert record.finished_at == at + timedelta(minutes=3)
