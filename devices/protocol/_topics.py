"""MQTT topic layout of protocol v1.

Every topic starts with ``loaxa/v1/<station_id>/`` so many stations can share one broker and a
future v2 can run beside v1. Cluster topics carry the cluster id as the fourth level, which is
what broker ACLs key on (``pattern readwrite loaxa/v1/<station>/c/%u/#``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PROTOCOL_VERSION = 1
ROOT = "loaxa/v1"

ClusterChannel = Literal["status", "heartbeat", "cmd", "ack", "event"]
CLUSTER_CHANNELS: tuple[ClusterChannel, ...] = ("status", "heartbeat", "cmd", "ack", "event")
# Channels a cluster publishes on; the station publishes only on ``cmd``.
DEVICE_TO_STATION: tuple[ClusterChannel, ...] = ("status", "heartbeat", "ack", "event")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_valid_id(value: str) -> bool:
    """Station and cluster ids are topic levels: no wildcards, slashes or spaces."""
    return bool(_ID_RE.match(value))


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses topics for one station."""

    station_id: str

    def __post_init__(self) -> None:
        if not is_valid_id(self.station_id):
            raise ValueError(f"invalid station id {self.station_id!r}")

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.station_id}"

    def cluster(self, cluster_id: str, channel: ClusterChannel) -> str:
        return f"{self.prefix}/c/{cluster_id}/{channel}"

    def cluster_filter(self, channel: ClusterChannel) -> str:
        """Subscription filter for one channel of every cluster."""
        return f"{self.prefix}/c/+/{channel}"

    @property
    def station_status(self) -> str:
        return f"{self.prefix}/station/status"

    def parse_cluster(self, topic: str) -> tuple[str, ClusterChannel] | None:
        """Return (cluster_id, channel) for a cluster topic of this station, else None."""
        parts = topic.split("/")
        if len(parts) != 6 or "/".join(parts[:3]) != self.prefix or parts[3] != "c":
            return None
        cluster_id, channel = parts[4], parts[5]
        if not is_valid_id(cluster_id) or channel not in CLUSTER_CHANNELS:
            return None
        return cluster_id, channel
