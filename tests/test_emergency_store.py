"""The emergency's rows: one record per targeted cluster, and on start the failed sends marked
(set-based writes, so a thousand-cluster emergency costs a few statements)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from station._emergency import EmergencyRequest, EmergencyStore, start_emergency, stop_emergency
from station._services import Sessions, register_clusters
from station.db import (
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
)
from station.demo import demo_settings
from tests.db_support import seeded

IDS = [f"K{i:04d}" for i in range(1, 1201)]  # more than one 500-row batch of failures


@asynccontextmanager
async def _relay_emergency(
    tmp_path: Path, database_url: str, clusters: list[str]
) -> AsyncIterator[tuple[Sessions, PlaySession]]:
    """``clusters`` registered and a relay emergency started on them all (no station runs:
    nothing is sent); the database's sessions and the emergency."""
    settings = demo_settings(tmp_path, database_url=database_url, station_id="xa-store")
    async with seeded(database_url) as sessions:
        await register_clusters(sessions, [(cid, cid) for cid in clusters])
        request = EmergencyRequest({"all": True}, relay_url="http://radio.invalid/", duration_s=60)
        yield sessions, await start_emergency(sessions, settings, request, "tester")


async def test_start_marks_only_failed_sends_and_moves_every_record(
    tmp_path: Path, database_url: str
) -> None:
    async with _relay_emergency(tmp_path, database_url, IDS) as (sessions, session):
        async with sessions() as db:
            rows = (
                await db.exec(select(PlayRecord).where(PlayRecord.session_id == session.id))
            ).all()
            assert sorted(r.cluster_id for r in rows) == IDS
            assert {r.status for r in rows} == {PlayRecordStatus.SENT}
            # One cluster already reported back before the start was recorded.
            early = next(r for r in rows if r.cluster_id == "K0002")
            early.status = PlayRecordStatus.STARTED
            db.add(early)
            await db.commit()

        failed = {cid: "timeout" for cid in IDS[1::2]}  # 600 failures incl. K002
        start_at = datetime.now(UTC) + timedelta(seconds=1)
        await EmergencyStore(sessions).record_emergency_start(session.id, start_at, failed)

        async with sessions() as db:
            rows = (
                await db.exec(select(PlayRecord).where(PlayRecord.session_id == session.id))
            ).all()
            row = await db.get(PlaySession, session.id)
        assert row is not None and row.start_at is not None
        by_id = {r.cluster_id: r for r in rows}
        assert all(
            abs((r.scheduled_start - start_at).total_seconds()) < 0.001 for r in rows
        )  # every record moved to the real start
        assert by_id["K0002"].status == PlayRecordStatus.STARTED  # never downgraded
        assert by_id["K0002"].error_code is None
        marked = {cid for cid, r in by_id.items() if r.status == PlayRecordStatus.FAILED}
        assert marked == set(failed) - {"K0002"}
        assert {by_id[cid].error_code for cid in marked} == {"send_failed"}
        assert {r.status for cid, r in by_id.items() if cid not in failed} == {
            PlayRecordStatus.SENT
        }


async def test_an_emergency_stopped_while_pending_is_still_stopped_on_its_clusters(
    tmp_path: Path, database_url: str
) -> None:
    """A start whose record failed after its commands went out leaves the session pending: a
    stop then must still reach the clusters, not be written off as never sent."""
    async with _relay_emergency(tmp_path, database_url, IDS[:3]) as (sessions, session):
        assert await stop_emergency(sessions, "tester", session.id) == [session.id]

        work = await EmergencyStore(sessions).emergency_work()
        assert work.to_start == [] and work.on_air == []
        assert [p.session.session_id for p in work.to_stop] == [session.id]
        assert work.to_stop[0].session.cluster_ids == IDS[:3]

        await EmergencyStore(sessions).record_emergency_stop(session.id)
        assert (await EmergencyStore(sessions).emergency_work()).to_stop == []


async def test_record_interrupted_never_overwrites_a_finished_record(
    tmp_path: Path, database_url: str
) -> None:
    async with _relay_emergency(tmp_path, database_url, IDS[:2]) as (sessions, session):
        async with sessions() as db:
            done = (
                await db.exec(
                    select(PlayRecord).where(
                        PlayRecord.session_id == session.id, PlayRecord.cluster_id == IDS[0]
                    )
                )
            ).one()
            done.status = PlayRecordStatus.FINISHED  # a proof flush got there first
            db.add(done)
            await db.commit()
        store = EmergencyStore(sessions)
        for cid in IDS[:2]:
            await store.record_interrupted(session.id, cid, "other")
        async with sessions() as db:
            rows = (
                await db.exec(select(PlayRecord).where(PlayRecord.session_id == session.id))
            ).all()
        by_id = {r.cluster_id: r for r in rows}
        assert by_id[IDS[0]].status == PlayRecordStatus.FINISHED
        assert by_id[IDS[0]].interrupted_by is None
        assert by_id[IDS[1]].status == PlayRecordStatus.INTERRUPTED
        assert by_id[IDS[1]].interrupted_by == "other"
