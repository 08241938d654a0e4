"""``loaxa demo``: the whole data path on one machine, with nothing installed beyond pip.

Embedded broker on a free port, SQLite in a temporary folder, the station, 20 simulated
clusters; a short programme synthesised with ffmpeg is scheduled a few seconds ahead, and the
clusters fetch it over HTTP, start together at the absolute start time and report back.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from simulator import SimulatedFleet
from station.config import Settings
from station.db import Cluster, PlayRecord, PlayRecordStatus
from station.media import synthesize_programme

from . import _keys as keys
from ._services import Sessions, add_media, create_programme, register_clusters, schedule_once
from .app import RunningStation, start_station

log = logging.getLogger(__name__)

Print = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    records: list[PlayRecord]
    cluster_count: int

    @property
    def played(self) -> int:
        return sum(1 for r in self.records if r.status == PlayRecordStatus.FINISHED)

    @property
    def ok(self) -> bool:
        return self.cluster_count > 0 and self.played == self.cluster_count


def demo_settings(
    workdir: Path,
    *,
    mqtt_url: str = "embedded",
    database_url: str = "",
    station_id: str = "xa-demo",
) -> Settings:
    return Settings.model_validate(
        {
            "station": {"id": station_id, "name": "Đài truyền thanh xã (demo)"},
            "database": {"url": database_url or f"sqlite:///{workdir / 'loaxa.db'}"},
            "mqtt": {"url": mqtt_url, "embedded_port": 0},
            "http": {"host": "127.0.0.1", "port": 0},
            "media": {"dir": str(workdir / "media")},
            "scheduler": {"dispatch_lead_s": 3.0},
            "devices": {"allow_anonymous": True},  # demo clusters log in without credentials
            "logging": {"level": "WARNING"},
        }
    )


async def run_demo(
    settings: Settings,
    *,
    clusters: int = 20,
    seconds: float = 8.0,
    speed: float = 1.0,
    keep_running: bool = False,
    out: Print = print,
) -> DemoResult:
    station = await start_station(settings)
    alerts = logging.getLogger("station._alerts")
    level = alerts.level
    try:
        return await _demo(station, settings, clusters, seconds, speed, keep_running, out)
    finally:
        # The simulated clusters leaving at the end are expected, not alerts to show.
        alerts.setLevel(logging.ERROR)
        try:
            await station.stop()
        finally:
            alerts.setLevel(level)


async def _demo(
    station: RunningStation,
    settings: Settings,
    count: int,
    seconds: float,
    speed: float,
    keep_running: bool,
    out: Print,
) -> DemoResult:
    app = station.app
    sessions = app[keys.SESSIONS]
    ids = [f"C{i:02d}" for i in range(1, count + 1)]
    await register_clusters(sessions, [(cid, f"Cụm loa {cid[1:]}") for cid in ids])
    app[keys.GATEWAY].remember(ids)
    out(f"station {settings.station.id} on {station.base_url}, MQTT {station.runtime.mqtt_url}")

    async with SimulatedFleet(
        station.runtime.mqtt_url, settings.station.id, ids, speed=speed
    ) as fleet:
        await _wait_online(sessions, count, out)
        with tempfile.TemporaryDirectory(prefix="loaxa-demo-src-") as tmp:
            source = Path(tmp) / "ban-tin-thu.wav"
            await synthesize_programme(source, seconds)
            item, _ = await add_media(
                sessions,
                app[keys.MEDIA_STORE],
                app[keys.MEDIA_WORKER],
                settings,
                source,
                "Bản tin thử nghiệm (demo)",
            )
        out(
            f"media {item.sha256[:12]}… {item.duration_ms / 1000:.1f} s, {item.size_bytes} bytes "
            f"opus, loudness {item.loudness_in_lufs} -> {item.loudness_out_lufs} LUFS"
        )
        assert item.id is not None
        programme = await create_programme(sessions, "Chương trình thử nghiệm", [item.id])
        assert programme.id is not None
        start_at = datetime.now(UTC) + timedelta(seconds=settings.scheduler.dispatch_lead_s + 2)
        await schedule_once(sessions, programme.id, start_at, {"all": True})
        await app[keys.DISPATCHER].reconcile()
        out(
            f"scheduled for {start_at.astimezone(settings.station.tzinfo):%H:%M:%S} "
            f"({settings.station.timezone}) on {count} clusters"
        )
        deadline = start_at + timedelta(seconds=item.duration_ms / 1000 / speed + 20)
        records = await _follow(sessions, count, deadline, out)
        result = DemoResult(records, count)
        _summary(result, fleet, out)
        if keep_running:
            out(f"station keeps running at {station.base_url} (Ctrl+C to stop)")
            await asyncio.Event().wait()
        return result


async def _wait_online(sessions: Sessions, count: int, out: Print) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with sessions() as db:
            online = len((await db.exec(select(Cluster.id).where(col(Cluster.online)))).all())
        if online >= count:
            out(f"{online} clusters online")
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"only {online} of {count} clusters came online")


async def _follow(
    sessions: Sessions, count: int, deadline: datetime, out: Print
) -> list[PlayRecord]:
    last = ""
    records: list[PlayRecord] = []
    while datetime.now(UTC) < deadline:
        async with sessions() as db:
            records = list((await db.exec(select(PlayRecord))).all())
        by_status: dict[str, int] = {}
        for record in records:
            by_status[record.status] = by_status.get(record.status, 0) + 1
        line = "  ".join(f"{k}={v}" for k, v in sorted(by_status.items())) or "waiting"
        if line != last:
            out(f"  [{datetime.now(UTC):%H:%M:%S}] {line}")
            last = line
        if by_status.get(PlayRecordStatus.FINISHED, 0) >= count:
            break
        await asyncio.sleep(0.25)
    return records


def _summary(result: DemoResult, fleet: SimulatedFleet, out: Print) -> None:
    out("")
    out(f"{'cluster':<8} {'status':<10} {'skew ms':>8} {'bytes':>8}")
    for record in sorted(result.records, key=lambda r: r.cluster_id):
        skew = "" if record.skew_ms is None else str(record.skew_ms)
        out(
            f"{record.cluster_id:<8} {record.status:<10} {skew:>8} "
            f"{record.bytes_downloaded or 0:>8}"
        )
    skews = [r.skew_ms for r in result.records if r.skew_ms is not None]
    out("")
    out(f"clusters: {result.cluster_count}  played: {result.played}")
    if skews:
        out(
            f"start skew ms: min {min(skews)}  median {statistics.median(skews):.0f}  "
            f"max {max(skews)}"
        )
    fetched = [r.bytes_downloaded or 0 for r in result.records]
    if fetched:
        out(
            f"bytes fetched per cluster: min {min(fetched)}  max {max(fetched)}  "
            f"total {sum(fetched)}"
        )
    out(
        "RESULT: "
        + (
            "every cluster played the programme"
            if result.ok
            else f"only {result.played} of {result.cluster_count} played"
        )
    )


def main(keep_running: bool = False, clusters: int = 20) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="loaxa-demo-") as tmp:
        settings = demo_settings(Path(tmp))
        try:
            result = asyncio.run(run_demo(settings, clusters=clusters, keep_running=keep_running))
        except KeyboardInterrupt:
            return 130
        except RuntimeError as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
            return 1
    return 0 if result.ok else 1
