"""Synchronised start: N simulated clusters play one programme; start skew p50/p99/max.

    python bench/sync.py [--clusters 500] [--mqtt mqtt://127.0.0.1:1883] [--lead-s 20]

The station (``start_station``, SQLite) schedules one programme for all clusters; the
simulated fleet (``SimulatedFleet``, same process and event loop) receives the schedule list
and the ``play``, fetches the audio over HTTP and starts at ``start_at``; the station records
each cluster's skew from its ``playback_started`` (corrected by its reported clock offset).
Goal: p99 <= 20 ms.

Peers in the same run: the ideal (zero skew), and raw asyncio timer accuracy: N tasks on one
loop sleeping until one absolute instant, lateness of each wake-up. The simulated clusters
share one loop, so that is the floor this measurement can reach; a real fleet has one clock
(NTP-disciplined) per device instead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlmodel import select  # noqa: E402

from simulator import SimulatedFleet, cluster_ids  # noqa: E402
from station import _keys as keys  # noqa: E402
from station._services import (  # noqa: E402
    add_media,
    create_programme,
    register_clusters,
    schedule_once,
)
from station.app import start_station  # noqa: E402
from station.db import PlayRecord, PlayRecordStatus  # noqa: E402
from station.demo import demo_settings  # noqa: E402
from station.media import synthesize_programme  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    absolute = [abs(v) for v in values]
    print(
        f"{name:<34} n={len(values):<5} p50={percentile(absolute, 0.5):7.1f} ms  "
        f"p99={percentile(absolute, 0.99):7.1f} ms  max={max(absolute):7.1f} ms  "
        f"mean={statistics.fmean(values):+7.1f} ms"
    )


async def timer_peer(count: int) -> list[float]:
    """Lateness of ``count`` tasks woken at one absolute instant on one loop."""
    target = time.time() + 1.0
    lateness: list[float] = []

    async def sleeper() -> None:
        await asyncio.sleep(target - time.time())
        lateness.append((time.time() - target) * 1000)

    await asyncio.gather(*(sleeper() for _ in range(count)))
    return lateness


async def run(count: int, mqtt_url: str, lead_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings = demo_settings(workdir, mqtt_url=mqtt_url, station_id="xa-sync")
        station = await start_station(settings)
        try:
            app = station.app
            sessions = app[keys.SESSIONS]
            ids = cluster_ids(count, "SYN")
            await register_clusters(sessions, [(cid, cid) for cid in ids])
            app[keys.GATEWAY].remember(ids)
            source = workdir / "in.wav"
            await synthesize_programme(source, 2.0)
            item, _ = await add_media(
                sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, source, "t"
            )
            assert item.id is not None
            programme = await create_programme(sessions, "sync", [item.id])
            assert programme.id is not None
            async with SimulatedFleet(station.runtime.mqtt_url, "xa-sync", ids) as fleet:
                print(f"{count} clusters online; broker {station.runtime.mqtt_url}", flush=True)
                start = datetime.now(UTC) + timedelta(seconds=lead_s)
                await schedule_once(sessions, programme.id, start, {"all": True})
                await app[keys.DISPATCHER].reconcile()
                deadline = time.monotonic() + lead_s + 60
                records: list[PlayRecord] = []
                while time.monotonic() < deadline:
                    await asyncio.sleep(1.0)
                    async with sessions() as db:
                        records = list((await db.exec(select(PlayRecord))).all())
                    done = sum(r.status == PlayRecordStatus.FINISHED for r in records)
                    if done == count:
                        break
                stats = fleet.stats()
            skews = [float(r.skew_ms) for r in records if r.skew_ms is not None]
            print(f"finished {stats.plays_finished}/{count}, skew reported by {len(skews)}")
            report("station: start skew (all clusters)", skews)
        finally:
            await station.stop()
    report("peer: raw asyncio timers, one loop", await timer_peer(count))
    report("peer: ideal", [0.0] * count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="or 'embedded'")
    parser.add_argument("--lead-s", type=float, default=20.0, help="start this far ahead")
    args = parser.parse_args()
    asyncio.run(run(args.clusters, args.mqtt, args.lead_s))


if __name__ == "__main__":
    main()
