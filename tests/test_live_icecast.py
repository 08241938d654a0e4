"""Scale-out: a mount pushed to a real Icecast2 as a source; listeners served by Icecast."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.api_support import running
from tests.live_support import (
    ICECAST_PASSWORD,
    TONE,
    eventually,
    hub_of,
    icecast_server,
    listen,
    live_settings,
    max_volume_db,
)


@pytest.mark.skipif(shutil.which("icecast2") is None, reason="needs Debian's icecast2 binary")
async def test_mount_is_pushed_to_an_external_icecast(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str
) -> None:
    async with icecast_server(tmp_path) as port:
        push = f"icecast://source:{ICECAST_PASSWORD}@127.0.0.1:{port}"
        settings = live_settings(
            tmp_path, mqtt_url, database_url, station_id, mqtt=False, icecast_push_url=push
        )
        async with running(settings) as station:
            hub = hub_of(station)
            await hub.start("xa", TONE)
            url = f"http://127.0.0.1:{port}/xa"

            async def served() -> bool:
                status, data = await listen(url, 3, min_bytes=6_000)
                return status == 200 and len(data) >= 6_000

            await eventually(served, timeout=15)
            status, data = await listen(url, 5, min_bytes=6_000)
            assert status == 200 and await max_volume_db(data, tmp_path) > -30
