"""Simulated loudspeaker clusters: many devices in one process, speaking only protocol v1.

Each cluster has its own MQTT connection (paho-mqtt, all on one asyncio loop), a retained
birth/will, heartbeats, idempotent command handling, HTTP media download with checksum checks and
a size-only cache, and playback timed on its own (skewable) clock. Fault hooks on
``SimulatedCluster``: ``drop_link``, ``power_loss``/``power_on``, ``set_clock_offset``.

Imports nothing from the station: only ``devices.protocol`` and third-party libraries.
"""

from ._cluster import FIRMWARE, MODEL, SimulatedCluster
from ._fleet import SimulatedFleet, cluster_ids, run_simulator
from ._records import ClusterCounters, FleetStats, Outcome, PlayRecord
from ._url import BrokerUrl

__all__ = [
    "FIRMWARE",
    "MODEL",
    "BrokerUrl",
    "ClusterCounters",
    "FleetStats",
    "Outcome",
    "PlayRecord",
    "SimulatedCluster",
    "SimulatedFleet",
    "cluster_ids",
    "run_simulator",
]
