"""The demo path end to end: schedule -> MQTT play -> HTTP fetch -> synchronised start -> proof.

Runs on the embedded broker and SQLite by default, and on Mosquitto/PostgreSQL in CI.
"""

from __future__ import annotations

from pathlib import Path

from station.db import PlayRecordStatus
from station.demo import demo_settings, run_demo


async def test_programme_plays_on_every_simulated_cluster(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    lines: list[str] = []
    result = await run_demo(settings, clusters=8, seconds=3.0, speed=4.0, out=lines.append)

    assert result.ok, "\n".join(lines)
    assert len(result.records) == 8
    for record in result.records:
        assert record.status == PlayRecordStatus.FINISHED
        assert record.started_at is not None and record.finished_at is not None
        assert record.skew_ms is not None and abs(record.skew_ms) < 250
        assert record.bytes_downloaded and record.bytes_downloaded > 1000
        assert record.played_ms and record.played_ms >= 2900
    assert any("RESULT: every cluster played" in line for line in lines)
