"""The outbox delivers to the simulated provincial server through outages, 5xx, refusals and a
station restart: every message arrives exactly once, in order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from simulator.provincial import ProvincialServer
from station import _keys as keys
from station._services import register_clusters
from station.app import RunningStation, start_station
from station.config import Settings
from station.db import (
    MediaItem,
    OutboxMessage,
    OutboxStatus,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Programme,
    Schedule,
    UpstreamExchange,
    create_engine_for,
    session_factory,
)
from station.upstream import backoff_s, enqueue, retry_failed
from station.upstream._outbox import KEY_LIMIT, outbox_key
from station.upstream._queries import outbox_summary
from tests.upstream_support import provincial_server, upstream_settings

TOKEN = "t0k3n-for-tests"


def settings_for(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, base_url: str, **extra: Any
) -> Settings:
    return upstream_settings(
        tmp_path, database_url, mqtt_url, station_id, base_url, TOKEN,
        **{"retry_min_s": 0.05, "retry_max_s": 0.2, **extra},
    )  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[ProvincialServer]:
    async with provincial_server(TOKEN) as srv:
        yield srv


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def add_reports(station_or_url: RunningStation | str, keys_: list[str]) -> None:
    if isinstance(station_or_url, str):
        engine = create_engine_for(station_or_url)
        sessions = session_factory(engine)
    else:
        engine, sessions = None, station_or_url.app[keys.SESSIONS]
    try:
        async with sessions() as db:
            for key in keys_:
                assert await enqueue(db, "report", key, {"n": key})
            await db.commit()
    finally:
        if engine is not None:
            await engine.dispose()


async def exchange_count(station: RunningStation, status: str) -> int:
    async with station.app[keys.SESSIONS]() as db:
        rows = await db.exec(select(UpstreamExchange).where(UpstreamExchange.status == status))
        return len(rows.all())


async def all_sent(station: RunningStation) -> bool:
    async with station.app[keys.SESSIONS]() as db:
        rows = (await db.exec(select(OutboxMessage.status))).all()
    return bool(rows) and all(s == OutboxStatus.SENT for s in rows)


async def test_delivery_through_outage_503_and_restart(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    first = [f"report:a{i}" for i in range(6)]
    second = [f"report:b{i}" for i in range(4)]
    await server.go_down()
    station = await start_station(settings)
    try:
        await add_reports(station, first)
        station.app[keys.UPSTREAM].sender.wake()  # type: ignore[union-attr]
        await wait_for(lambda: _at_least(station, "retry", 3))
    finally:
        await station.stop()  # down with every row still pending

    await add_reports(database_url, second)  # written while the station is down
    await server.come_up()
    server.fail_next(3, 503)
    station = await start_station(settings)
    try:
        await wait_for(lambda: all_sent(station))
        summary = await outbox_summary(station.app[keys.SESSIONS])
        assert set(summary.by_status) == {"sent"}  # reports + a cluster status snapshot
        assert await exchange_count(station, "ok") == len(server.order)
        assert await exchange_count(station, "retry") >= 3 + 3  # down, then three 503s
        async with station.app[keys.SESSIONS]() as db:
            attempts = {m.key: m.attempts for m in await db.exec(select(OutboxMessage))}
            up = select(UpstreamExchange.key).where(UpstreamExchange.direction == "up")
            counted = Counter((await db.exec(up)).all())
        assert attempts == dict(counted)  # each attempt counted once, across the restart
        assert max(attempts.values()) >= 1 + 3 + 3  # the head of the queue: down, 503s, ok
    finally:
        await station.stop()
    reports = [k for k in server.order if k.startswith("report:")]
    assert reports == first + second  # each exactly once, in order
    assert len(set(server.order)) == len(server.order)
    assert server.duplicates == 0
    assert all(server.received[k]["station_id"] == station_id for k in server.order)


async def _at_least(station: RunningStation, status: str, count: int) -> bool:
    return await exchange_count(station, status) >= count


async def test_resend_after_lost_ack_is_counted_once(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    station = await start_station(settings)
    try:
        await add_reports(station, ["report:x"])
        await wait_for(lambda: all_sent(station))
        # as if the station crashed after the server accepted but before the row was marked
        async with station.app[keys.SESSIONS]() as db:
            query = select(OutboxMessage).where(OutboxMessage.key == "report:x")
            row = (await db.exec(query)).one()
            row.status = OutboxStatus.PENDING
            db.add(row)
            await db.commit()
        station.app[keys.UPSTREAM].sender.wake()  # type: ignore[union-attr]
        await wait_for(lambda: all_sent(station))
        assert await exchange_count(station, "duplicate") == 1
    finally:
        await station.stop()
    assert [k for k in server.order if k.startswith("report:")] == ["report:x"]
    assert server.duplicates == 1


async def test_refusal_marks_failed_and_queue_moves_on(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    station = await start_station(settings)
    try:
        await wait_for(lambda: all_sent(station))  # the start-up status snapshot
        server.fail_next(1, 400)
        await add_reports(station, ["report:bad", "report:good"])
        sessions = station.app[keys.SESSIONS]

        async def settled() -> bool:
            s = await outbox_summary(sessions)
            return s.by_status.get("failed") == 1 and not s.by_status.get("pending")

        await wait_for(settled)
        summary = await outbox_summary(sessions)
        assert [r.key for r in summary.failed] == ["report:bad"]
        assert summary.failed[0].http_status == 400
        assert "HTTP 400" in summary.failed[0].last_error
        assert _reports(server) == ["report:good"]

        assert await retry_failed(sessions) == 1
        await wait_for(lambda: all_sent(station))
    finally:
        await station.stop()
    assert _reports(server) == ["report:good", "report:bad"]


def _reports(server: ProvincialServer) -> list[str]:
    return [k for k in server.order if k.startswith("report:")]


async def test_wrong_token_is_a_refusal(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    settings = settings.model_copy(
        update={"upstream": settings.upstream.model_copy(update={"token": None})}
    )
    station = await start_station(settings)
    try:
        await add_reports(station, ["report:t"])
        await wait_for(lambda: _at_least(station, "failed", 1))
    finally:
        await station.stop()
    assert server.unauthorized >= 1 and server.order == []


async def test_collectors_are_idempotent_and_feed_the_outbox(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    station = await start_station(settings)
    now = datetime.now(UTC)
    try:
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [("C1", "one"), ("C2", "two")])
        async with sessions() as db:
            media = MediaItem(
                sha256="a" * 64, source_sha256="b" * 64, title="m", duration_ms=1000, size_bytes=10
            )
            programme = Programme(title="p")
            db.add_all([media, programme])
            await db.flush()
            assert programme.id is not None
            db.add(Schedule(programme_id=programme.id, start_at=now, targets={"all": True}))
            db.add(
                PlaySession(
                    id="s1",
                    programme_id=programme.id,
                    start_at=now,
                    expires_at=now + timedelta(minutes=1),
                )
            )
            await db.flush()
            db.add_all(
                [
                    PlayRecord(
                        session_id="s1",
                        cluster_id="C1",
                        status=PlayRecordStatus.FINISHED,
                        scheduled_start=now,
                        started_at=now,
                        skew_ms=12,
                    ),
                    PlayRecord(
                        session_id="s1",
                        cluster_id="C2",
                        status=PlayRecordStatus.ACKED,
                        scheduled_start=now,
                    ),
                ]
            )
            await db.commit()
        upstream = station.app[keys.UPSTREAM]
        assert await upstream.collect(now) == 2  # the schedule and the finished play
        assert await upstream.collect(now) == 0
        # the station took a snapshot at start; the next one comes with the next interval
        assert await upstream.collect_status(now) == 0
        next_bucket = now + timedelta(seconds=settings.upstream.status_interval_s)
        assert await upstream.collect_status(next_bucket) == 1
        assert await upstream.collect_status(next_bucket) == 0
        later = now + timedelta(seconds=settings.upstream.play_report_after_s + 1)
        assert await upstream.collect(later) == 1  # C2 never finished: reported after a while
        await wait_for(lambda: all_sent(station))
    finally:
        await station.stop()
    kinds = [server.received[k]["kind"] for k in server.order]
    assert sorted(kinds) == [
        "cluster_status",
        "cluster_status",
        "proof_of_play",
        "proof_of_play",
        "schedule",
    ]
    plays = {
        server.received[k]["data"]["cluster_id"]: server.received[k]["data"]
        for k in server.order
        if k.startswith("play:")
    }
    assert plays["C1"]["status"] == "finished" and plays["C1"]["skew_ms"] == 12
    assert plays["C2"]["status"] == "acked"
    status = [server.received[k] for k in server.order if k.startswith("status:")][-1]
    assert [c["cluster_id"] for c in status["data"]["clusters"]] == ["C1", "C2"]


async def test_enqueue_rejects_bad_input(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    station = await start_station(settings)
    try:
        async with station.app[keys.SESSIONS]() as db:
            with pytest.raises(ValueError, match="unknown upstream message kind"):
                await enqueue(db, "gossip", "k", {})
            with pytest.raises(ValueError, match="cannot be empty"):
                await enqueue(db, "report", "", {})
            assert await enqueue(db, "report", "same", {})
            await db.commit()
            assert not await enqueue(db, "report", "same", {"other": 1})
            query = select(OutboxMessage).where(OutboxMessage.kind == "report")
            rows = (await db.exec(query.order_by(col(OutboxMessage.id)))).all()
        assert [r.payload for r in rows] == [{}]
    finally:
        await station.stop()


def test_outbox_key_is_bounded_and_one_per_message() -> None:
    fits = "k" * KEY_LIMIT
    assert outbox_key(fits) == fits  # stored keys stay what they were
    long_a, long_b = "r" * 250 + "a", "r" * 250 + "b"  # the same head, different messages
    bounded = outbox_key(long_a)
    assert len(bounded) == KEY_LIMIT and bounded.startswith("r" * 100)
    assert outbox_key(long_a) == bounded  # the same message: the same key
    assert outbox_key(long_b) != bounded


async def test_long_keys_are_stored_bounded_and_deduplicated(
    tmp_path: Path, database_url: str, mqtt_url: str, station_id: str, server: ProvincialServer
) -> None:
    settings = settings_for(tmp_path, database_url, mqtt_url, station_id, server.base_url)
    station = await start_station(settings)
    long_a, long_b = "report:" + "x" * 250 + "a", "report:" + "x" * 250 + "b"
    try:
        async with station.app[keys.SESSIONS]() as db:
            assert await enqueue(db, "report", long_a, {"n": "a"})
            assert await enqueue(db, "report", long_b, {"n": "b"})
            await db.commit()
            assert not await enqueue(db, "report", long_a, {"n": "again"})
        station.app[keys.UPSTREAM].sender.wake()  # type: ignore[union-attr]
        await wait_for(lambda: all_sent(station))
        reports = [k for k in server.order if k.startswith("report:")]
        assert reports == [outbox_key(long_a), outbox_key(long_b)]
        assert [server.received[k]["data"] for k in reports] == [{"n": "a"}, {"n": "b"}]
    finally:
        await station.stop()


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff_s(1, 2.0, 600.0, lambda: 0.0) == 1.0
    assert backoff_s(1, 2.0, 600.0, lambda: 1.0) == 2.0
    assert backoff_s(4, 2.0, 600.0, lambda: 1.0) == 16.0
    assert backoff_s(4, 2.0, 600.0, lambda: 0.0) == 8.0
    assert backoff_s(30, 2.0, 600.0, lambda: 1.0) == 600.0


async def test_slow_server_times_out_and_is_retried(server: ProvincialServer) -> None:
    from station.upstream import Envelope, HttpUpstream, UpstreamUnavailable

    envelope = Envelope("report:slow", "report", "xa", datetime.now(UTC), {})
    server.delay_s = 1.0
    async with HttpUpstream(server.base_url, "xa", TOKEN, timeout_s=0.2) as adapter:
        with pytest.raises(UpstreamUnavailable, match="Timeout"):
            await adapter.push(envelope)
        server.delay_s = 0.0
        await asyncio.sleep(1.0)  # the slow handler still completes and records the message
        assert await adapter.push(envelope) is False  # so the retry is a duplicate: counted once
    assert server.order == ["report:slow"] and server.duplicates == 1


async def test_play_collector_works_in_batches(database_url: str) -> None:
    from station.db import Cluster, upgrade_async
    from station.upstream._collect import collect_plays

    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    try:
        async with sessions() as db:
            programme = Programme(title="p")
            db.add_all([programme, *(Cluster(id=f"K{i}") for i in range(5))])
            await db.flush()
            assert programme.id is not None
            db.add(PlaySession(id="s", programme_id=programme.id, start_at=now, expires_at=now))
            await db.flush()
            db.add_all(
                PlayRecord(
                    session_id="s",
                    cluster_id=f"K{i}",
                    scheduled_start=now,
                    status=PlayRecordStatus.FINISHED,
                )
                for i in range(5)
            )
            await db.commit()
        window, after = timedelta(days=1), timedelta(minutes=10)
        assert await collect_plays(sessions, now, window, after, batch=2) == 5
        assert await collect_plays(sessions, now, window, after, batch=2) == 0
        async with sessions() as db:
            queued = (
                await db.exec(select(OutboxMessage.key).order_by(col(OutboxMessage.id)))
            ).all()
        assert queued == [f"play:s:K{i}" for i in range(5)]
    finally:
        await engine.dispose()
