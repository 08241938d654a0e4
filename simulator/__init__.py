"""Simulated loudspeaker clusters: many devices in one process, speaking only protocol v1.

Each cluster has its own MQTT connection (paho-mqtt, all on one asyncio loop), a retained
birth/will, heartbeats, idempotent command handling, HTTP media download with checksum checks and
a size-only cache, and playback timed on its own (skewable) clock; every command of
docs/protocol.md (HTTP streams are read and dropped; MQTT live packets are counted). Bridges
(``SimulatedFleet(bridges=...)``) announce their outputs and legacy clusters. Fault hooks on
``SimulatedCluster``: ``drop_link``, ``power_loss``/``power_on``, ``reboot``,
``set_clock_offset``, ``raise_fault``/``clear_fault``, and on its ``cache``: ``bandwidth_bps``,
``corrupt_next``, ``full``; ``SimulatedFleet.faults`` (a ``FaultInjector``) applies any of them
by name and heals them, or draws them at random with a seed (``loaxa sim --faults ... --seed``).

Imports nothing from the station: only ``devices.protocol`` and third-party libraries.
"""

from ._cluster import DEFAULT_CACHE_BYTES, FIRMWARE, MODEL, Codec, SimulatedCluster
from ._faults import FAULT_KINDS, FaultInjector, FaultKind, parse_faults
from ._fleet import BRIDGE_OUTPUTS, SimulatedFleet, cluster_ids, run_simulator
from ._records import ClusterCounters, FleetStats, Outcome, PlayRecord
from ._url import BrokerUrl

__all__ = [
    "BRIDGE_OUTPUTS",
    "DEFAULT_CACHE_BYTES",
    "FAULT_KINDS",
    "FIRMWARE",
    "MODEL",
    "BrokerUrl",
    "ClusterCounters",
    "Codec",
    "FaultInjector",
    "FaultKind",
    "FleetStats",
    "Outcome",
    "PlayRecord",
    "SimulatedCluster",
    "SimulatedFleet",
    "cluster_ids",
    "parse_faults",
    "run_simulator",
]
