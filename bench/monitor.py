"""Heartbeat processing rate of the fleet monitor, batched (as the station runs it) against one
transaction per heartbeat (the peer baseline), on the same database in the same run.

    python bench/monitor.py [--clusters 2000] [--rounds 3] [--database-url postgresql://...]

Without --database-url a SQLite file in a temporary folder is used. A PostgreSQL URL gets a
fresh schema for each mode, dropped afterwards. Prints heartbeats per second per round (round 1
inserts the telemetry rows, later rounds update them) and the time of one offline sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import sqlalchemy as sa  # noqa: E402

from devices.protocol import Heartbeat  # noqa: E402
from station._monitor import FleetMonitor, MonitorSettings  # noqa: E402
from station._services import register_clusters  # noqa: E402
from station.config import sync_driver_url  # noqa: E402
from station.db import create_engine_for, session_factory, upgrade_async  # noqa: E402


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
