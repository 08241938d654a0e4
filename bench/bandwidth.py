"""Bandwidth benchmark: bytes a cluster downloads per broadcast-hour, Opus beside MP3.

    python bench/bandwidth.py [--day mon] [--scale 1.0] [--speed 200]

A typical day of programmes from the example commune (../shared/example-commune/week.csv):
every media slot of the day gets its own speech-like recording (pydub) of the slot's length,
uploaded through the real pipeline (both renditions). A real station (embedded broker, SQLite)
then broadcasts the day's media slots, in order, to two simulated clusters: one announcing Opus
and one with only MP3 (the peer, in the same run). Relay and live slots are streams, not file
downloads: they count as broadcast time but download nothing here. Finally the whole day is
aired again: clusters hold every item by checksum, so that rerun must download zero bytes.

Bytes are the station's own per-cluster accounting (``media_downloads``), cross-checked against
what the simulated clusters received. ``--scale`` shortens every slot for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import logging
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench/scheduler.py would shadow the scheduler package: keep this folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from sqlmodel import col, select  # noqa: E402

from simulator import SimulatedFleet  # noqa: E402
from station import _keys as keys  # noqa: E402
from station._media_library import add_media, usage  # noqa: E402
from station._services import create_programme, register_clusters, schedule_once  # noqa: E402
from station.app import RunningStation, start_station  # noqa: E402
from station.db import Cluster, PlayRecord, PlayRecordStatus  # noqa: E402
from station.demo import demo_settings  # noqa: E402

# The example commune's week (a copy of ../shared/example-commune/week.csv kept in the repo).
WEEK = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "week.csv"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLUSTERS = {"OPUS": ["opus", "mp3"], "MP3": ["mp3"]}  # id -> codecs it announces


@dataclass(frozen=True)
class Slot:
    start: str
    minutes: float
    kind: str  # media, relay, live
    title: str
    topic: str


def _days(spec: str) -> set[str]:
    if "-" in spec:
        first, last = spec.split("-")
        return set(DAYS[DAYS.index(first) : DAYS.index(last) + 1])
    return {spec}


def _minutes(start: str, end: str) -> float:
    (h1, m1), (h2, m2) = (map(int, t.split(":")) for t in (start, end))
    return float((h2 * 60 + m2) - (h1 * 60 + m1))


def day_slots(path: Path, day: str) -> list[Slot]:
    """Slots of ``day`` that reach every cluster (targets ``all``), in time order."""
    with path.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if day in _days(r["weekday"])]
    return sorted(
        (
            Slot(r["start"], _minutes(r["start"], r["end"]), r["kind"], r["title"], r["topic"])
            for r in rows
            if r["targets"] == "all"
        ),
        key=lambda s: s.start,
    )


def _load_speech() -> Any:
    spec = importlib.util.spec_from_file_location("bench_speech", _HERE / "_speech.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _wait(station: RunningStation, what: str, check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with station.app[keys.SESSIONS]() as db:
            if await check(db):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


async def _served(station: RunningStation) -> dict[str, int]:
    sessions = station.app[keys.SESSIONS]
    await station.app[keys.DELIVERY].meter.flush(sessions)
    totals: dict[str, int] = {}
    for row in await usage(sessions):
        totals[row.cluster_id] = totals.get(row.cluster_id, 0) + row.bytes
    return totals


async def air(station: RunningStation, programme_ids: list[int], speed: float) -> None:
    """Broadcast each programme to every cluster, one after the other, and wait for proof."""
    app = station.app
    sessions = app[keys.SESSIONS]
    lead = app[keys.SETTINGS].scheduler.dispatch_lead_s
    for programme_id in programme_ids:
        async with sessions() as db:
            finished_before = len((await db.exec(select(PlayRecord.id).where(
                PlayRecord.status == PlayRecordStatus.FINISHED)
            )).all())  # fmt: skip
        start = datetime.now(UTC) + timedelta(seconds=lead + 0.5)
        await schedule_once(sessions, programme_id, start, {"all": True})
        await app[keys.DISPATCHER].reconcile()
        want = finished_before + len(CLUSTERS)

        async def done(db: Any, want: int = want) -> bool:
            rows = await db.exec(
                select(PlayRecord.id).where(PlayRecord.status == PlayRecordStatus.FINISHED)
            )
            return len(rows.all()) >= want

        await _wait(station, f"programme {programme_id}", done, 120 + 3600 / speed)


async def run(args: argparse.Namespace) -> int:
    slots = day_slots(args.week, args.day)
    media = [s for s in slots if s.kind == "media"]
    streamed = [s for s in slots if s.kind != "media"]
    media_min = sum(s.minutes for s in media) * args.scale
    streamed_min = sum(s.minutes for s in streamed) * args.scale
    print(f"loaxa bandwidth benchmark: {args.day}, {len(media)} media slots ({media_min:g} min), "
          f"{len(streamed)} relay/live slots ({streamed_min:g} min, streamed: no file download); "
          f"Python {platform.python_version()}")  # fmt: skip
    speech = _load_speech()
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-bw-") as tmp:
        work = Path(tmp)
        settings = demo_settings(work)
        station = await start_station(settings)
        try:
            app = station.app
            sessions = app[keys.SESSIONS]
            await register_clusters(sessions, [(c, c) for c in CLUSTERS])
            app[keys.GATEWAY].remember(list(CLUSTERS))
            programmes: list[int] = []
            sizes: dict[str, int] = {"opus": 0, "mp3": 0}
            started = time.perf_counter()
            for n, slot in enumerate(media):
                source = work / f"slot{n}.wav"
                await asyncio.to_thread(
                    speech.write_speech, source, slot.minutes * 60 * args.scale, n
                )
                item, _ = await add_media(
                    sessions, app[keys.MEDIA_STORE], app[keys.MEDIA_WORKER], settings, source,
                    slot.title, topics=[slot.topic.split()[0]] if slot.topic else [],
                )  # fmt: skip
                assert item.id is not None
                async with sessions() as db:
                    from station.db import MediaRendition

                    for r in (await db.exec(select(MediaRendition).where(
                        MediaRendition.media_id == item.id
                    ))).all():  # fmt: skip
                        sizes[r.codec] += r.size_bytes
                programme = await create_programme(sessions, slot.title, [item.id])
                assert programme.id is not None
                programmes.append(programme.id)
            print(f"ingested {len(media)} items in {time.perf_counter() - started:.1f} s")
            async with SimulatedFleet(
                station.runtime.mqtt_url, settings.station.id, list(CLUSTERS), speed=args.speed
            ) as fleet:

                async def online(db: Any) -> bool:
                    rows = (await db.exec(select(Cluster).where(col(Cluster.online)))).all()
                    return len(rows) == len(CLUSTERS)

                await _wait(station, "clusters online", online, 30)
                async with sessions() as db:  # the MP3-only receiver's announcement
                    for cluster_id, codecs in CLUSTERS.items():
                        cluster = await db.get(Cluster, cluster_id)
                        assert cluster is not None
                        cluster.capabilities = {**cluster.capabilities, "codecs": codecs}
                        db.add(cluster)
                    await db.commit()
                await air(station, programmes, args.speed)
                first_day = await _served(station)
                await air(station, programmes, args.speed)  # the same day again: all cached
                both_days = await _served(station)
                fleet_bytes = fleet.stats().bytes_downloaded
        finally:
            await station.stop()

    broadcast_h = (media_min + streamed_min) / 60
    print()
    print(f"{'':<34} {'Opus (default)':>16} {'MP3 (peer)':>16}")
    rows = [
        ("rendition bytes of the day's items", sizes["opus"], sizes["mp3"]),
        ("bytes downloaded, first airing", first_day.get("OPUS", 0), first_day.get("MP3", 0)),
        ("bytes re-downloaded, second airing",
         both_days.get("OPUS", 0) - first_day.get("OPUS", 0),
         both_days.get("MP3", 0) - first_day.get("MP3", 0)),
    ]  # fmt: skip
    for name, opus, mp3 in rows:
        print(f"{name:<34} {opus:>16,} {mp3:>16,}")
    for name, hours in (
        ("MB per media hour", media_min / 60),
        ("MB per broadcast-hour", broadcast_h),
    ):
        opus_mb = first_day.get("OPUS", 0) / 1e6 / hours
        mp3_mb = first_day.get("MP3", 0) / 1e6 / hours
        print(f"{name:<34} {opus_mb:>16.2f} {mp3_mb:>16.2f}")
    opus_per_hour = first_day.get("OPUS", 0) / 1e6 / (media_min / 60)
    print()
    print(f"goal: <= 11 MB per hour at the default rendition: {opus_per_hour:.2f} MB "
          f"({'met' if opus_per_hour <= 11 else 'NOT met'}); re-downloads of cached items: "
          f"{sum(both_days.values()) - sum(first_day.values())} bytes (goal 0)")  # fmt: skip
    print(f"cross-check: simulated clusters received {fleet_bytes:,} bytes, station served "
          f"{sum(both_days.values()):,}")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", choices=DAYS, default="mon")
    parser.add_argument("--scale", type=float, default=1.0, help="shorten every slot (0.1)")
    parser.add_argument("--speed", type=float, default=200.0, help="simulated playback speed")
    parser.add_argument("--week", type=Path, default=WEEK)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
