"""Helpers of the schedule tests (API and console): airtime quotas, programmes' media, the
console's clusters and zone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api_support import PASSWORD, settings_for

from station import _keys as keys
from station._registry import add_zone, assign_zone
from station._services import Sessions, register_clusters
from station.api import create_user
from station.app import RunningStation
from station.config import QuotaSection, Settings
from station.db import Role
from tests.db_support import library_rows


def quota_settings(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str, **rural: Any
) -> Settings:
    """The API tests' settings with the ``rural`` locality's airtime quota (QuotaSection)."""
    base = settings_for(tmp_path, mqtt_url, database_url, station_id)
    quotas = {"rural": QuotaSection(**rural)}
    return base.model_copy(
        update={"playout": base.playout.model_copy(update={"localities": quotas})}
    )


async def ten_minute_media(sessions: Sessions, count: int) -> list[int]:
    """``count`` library items of 10 minutes each ("Tin 0", "Tin 1", ...); their ids."""
    titles = [f"Tin {i}" for i in range(count)]
    return await library_rows(sessions, titles, 600_000, 1000, source_from=50)


async def console_zone(station: RunningStation) -> None:
    """The broadcaster "hoa"; clusters C01-C03, zone Z1 (Thôn Đông) of C01 and C02."""
    sessions = station.app[keys.SESSIONS]
    await create_user(sessions, "hoa", Role.BROADCASTER, PASSWORD)
    await register_clusters(sessions, [(c, f"Cụm loa {c[1:]}") for c in ("C01", "C02", "C03")])
    await add_zone(sessions, "Z1", "Thôn Đông")
    await assign_zone(sessions, "Z1", ["C01", "C02"])
