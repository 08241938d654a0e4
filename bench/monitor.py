"""Device message processing rate of the station, batched (as the station runs it) against one
transaction per message (the peer baseline), on the same database in the same run:
heartbeats, wills and births (a reconnect storm), and acks + playback events (proof of play
of one fan-out, through ``DeviceHandlers`` and ``PlayoutStore``).

    python bench/monitor.py [--clusters 2000] [--rounds 3] [--database-url postgresql://...]

Without --database-url a SQLite file in a temporary folder is used. A PostgreSQL URL gets a
fresh schema for each mode, dropped afterwards. Prints heartbeats per second per round (round 1
inserts the telemetry rows, later rounds update them), the time of one offline sweep, then
wills, births and proof-of-play messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import sqlalchemy as sa  # noqa: E402

from devices.protocol import Ack, Event, Heartbeat, Status  # noqa: E402
from station._monitor import DeviceHandlers, FleetMonitor, MonitorSettings  # noqa: E402
from station._playout_store import PlayoutStore  # noqa: E402
from station._services import Sessions, register_clusters  # noqa: E402
from station.config import sync_driver_url  # noqa: E402
from station.db import (  # noqa: E402
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    Programme,
    create_engine_for,
    session_factory,
    upgrade_async,
)


def _beats(ids: list[str], round_no: int) -> list[Heartbeat]:
    now = datetime.now(UTC)
    extra = {"faults": [], "signal_dbm": -70, "network": "4g", "interval_s": 30}
    return [
        Heartbeat(
            cluster_id=cid, ts=now, state="idle", uptime_s=10 + round_no, clock_offset_ms=3,
            bytes_downloaded=1000 * (round_no + 1), free_cache_bytes=10**9,
        ).model_copy(update=extra)
        for cid in ids
    ]  # fmt: skip


async def _play_session(sessions: Sessions, ids: list[str]) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    async with sessions() as db:
        programme = Programme(title="bench")
        db.add(programme)
        await db.flush()
        assert programme.id is not None
        db.add(PlaySession(id="s1-1", programme_id=programme.id, start_at=now, expires_at=now))
        await db.flush()
        db.add_all(
            PlayRecord(session_id="s1-1", cluster_id=c, status=PlayRecordStatus.SENT,
                       scheduled_start=now)
            for c in ids
        )  # fmt: skip
        await db.commit()
    return "s1-1", now


async def _run(url: str, count: int, rounds: int, batched: bool) -> list[str]:
    await upgrade_async(url)
    engine = create_engine_for(url)
    lines = []
    try:
        sessions = session_factory(engine)
        ids = [f"C{n:05d}" for n in range(count)]
        await register_clusters(sessions, [(cid, cid) for cid in ids])
        settings = MonitorSettings(batch_s=0.25 if batched else None)
        monitor = FleetMonitor(sessions, settings)
        mode = "batched" if batched else "per-message (baseline)"
        for round_no in range(rounds):
            beats = _beats(ids, round_no)
            started = time.perf_counter()
            for beat in beats:
                await monitor.on_heartbeat(beat)
            await monitor.flush()
            rate = len(beats) / (time.perf_counter() - started)
            lines.append(f"{mode:<24} round {round_no + 1}: {rate:8.0f} heartbeats/s")
        started = time.perf_counter()
        await monitor.sweep()
        lines.append(
            f"{mode:<24} sweep of {count}: {1000 * (time.perf_counter() - started):.0f} ms"
        )
        for state in ("offline", "online"):
            started = time.perf_counter()
            for cid in ids:
                await monitor.on_status(Status(cluster_id=cid, state=state))  # type: ignore[arg-type]
            await monitor.flush()
            rate = count / (time.perf_counter() - started)
            what = "wills" if state == "offline" else "births"
            lines.append(f"{mode:<24} {what}: {rate:8.0f}/s")
        handlers = DeviceHandlers(PlayoutStore(sessions), monitor)
        sid, at = await _play_session(sessions, ids)
        started = time.perf_counter()
        for cid in ids:
            await handlers.on_ack(Ack(cluster_id=cid, cmd_id=f"{sid}.{cid}.play", ok=True, ts=at))
        for cid in ids:
            await handlers.on_event(
                Event(cluster_id=cid, type="playback_started", session_id=sid, ts=at,
                      started_at=at, clock_offset_ms=3)
            )  # fmt: skip
        failed = await handlers.flush()
        rate = 2 * count / (time.perf_counter() - started)
        lines.append(f"{mode:<24} acks+events: {rate:8.0f}/s (failed {failed})")
    finally:
        await engine.dispose()
    return lines


def _pg_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options=-csearch_path%3D{schema}"


def _admin(base: str, sql: str) -> None:
    engine = sa.create_engine(sync_driver_url(base), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    logging.getLogger("station").setLevel(logging.ERROR)  # one alert line per will otherwise
    for batched in (True, False):
        if args.database_url.startswith("postgresql"):
            schema, url = _pg_schema(args.database_url)
            _admin(args.database_url, f'CREATE SCHEMA "{schema}"')
            try:
                lines = await _run(url, args.clusters, args.rounds, batched)
            finally:
                _admin(args.database_url, f'DROP SCHEMA "{schema}" CASCADE')
        else:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                lines = await _run(url, args.clusters, args.rounds, batched)
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
