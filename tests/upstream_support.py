"""Helpers of the upstream tests: a station linked to the (simulated) provincial server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from simulator.provincial import ProvincialServer
from station._registry import add_village, move_cluster
from station._services import Sessions, register_clusters
from station.config import Settings, UpstreamSection
from station.demo import demo_settings


def upstream_settings(
    tmp_path: Path,
    database_url: str,
    mqtt_url: str,
    station_id: str,
    base_url: str,
    token: str,
    **upstream: Any,
) -> Settings:
    """The demo settings with the upstream link to ``base_url`` on: nothing pulled, pushed or
    reported on a timer (the tests run those themselves) unless ``upstream`` says so."""
    base = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    section = UpstreamSection.model_validate(
        {
            "enabled": True,
            "base_url": base_url,
            "token": token,
            "push_interval_s": 3600,
            "status_interval_s": 3600,
            "pull": False,
            "push": {"activity": [], "inventory": []},  # the cadence: test_upstream_cadence
            **upstream,
        }
    )
    return base.model_copy(update={"upstream": section})


async def villages_with_clusters(
    sessions: Sessions, villages: dict[str, tuple[str, int]], clusters: dict[str, str]
) -> None:
    """Villages (id -> name, households) and the clusters "Cụm loa <n>" C0<n> in them
    (cluster -> village)."""
    for village_id, (name, households) in villages.items():
        await add_village(sessions, village_id, name, households)
    await register_clusters(sessions, [(c, f"Cụm loa {int(c[1:])}") for c in clusters])
    for cluster, village in clusters.items():
        await move_cluster(sessions, cluster, village_id=village)


@asynccontextmanager
async def provincial_server(token: str) -> AsyncIterator[ProvincialServer]:
    """The simulated provincial server, running, accepting ``token``."""
    server = ProvincialServer(token=token)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
