"""What the simulator remembers and counts: per-session play records and counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal[
    "pending",
    "playing",
    "finished",
    "stopped",
    "preempted",
    "late",
    "busy",
    "download_failed",
    "shutdown",
    "lost",
    "withdrawn",
    "failed",
]


@dataclass
class PlayRecord:
    """One play session as the cluster saw it; times are the cluster's own clock."""

    session_id: str
    start_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    bytes_downloaded: int = 0
    played_ms: int = 0
    outcome: Outcome = "pending"


@dataclass
class ClusterCounters:
    commands: int = 0
    malformed: int = 0
    duplicates: int = 0
    expired: int = 0
    plays_started: int = 0
    plays_finished: int = 0
    plays_interrupted: int = 0
    downloads_failed: int = 0


@dataclass(frozen=True, slots=True)
class FleetStats:
    """A snapshot of the fleet, summed over its clusters."""

    clusters: int
    connected: int
    online: int
    playing: int
    plays_started: int
    plays_finished: int
    plays_interrupted: int
    downloads_failed: int
    downloads: int
    bytes_downloaded: int
    commands: int
    malformed: int

    def line(self) -> str:
        """The one-line live status of ``loaxa sim``."""
        return (
            f"online {self.online}/{self.clusters} (connected {self.connected}) | "
            f"playing {self.playing} | plays {self.plays_started} started, "
            f"{self.plays_finished} finished, {self.plays_interrupted} interrupted | "
            f"downloads {self.downloads} ({self.bytes_downloaded / 1e6:.1f} MB, "
            f"{self.downloads_failed} failed) | commands {self.commands} "
            f"({self.malformed} malformed)"
        )
