"""Who may talk to the broker: the station keeps broker credentials in step with the registry.

``BrokerAccess`` holds the cluster-id -> password-hash map the embedded broker's ``TopicPolicy``
reads on every connect, the gateway's set of known clusters, and (when configured) Mosquitto's
password file and ACL, rewritten atomically and reloaded with SIGHUP only when they change.
``refresh()`` runs at start and on every monitor sweep, so registrations made by the CLI in
another process take effect within ``devices.sweep_s`` seconds; the API refreshes at once
after a reissue, a retirement or a replacement.

Revocation also ends sessions already connected with the old credentials: the embedded broker
closes them (``EmbeddedBroker.end_stale_sessions``, after every refresh); Mosquitto 2.0 re-checks
every connected client against the reloaded password file on SIGHUP and disconnects those whose
password no longer matches or whose user is gone (measured with 2.0.11, see docs/deploy.md), so
there the reload is the kick and ``devices.mosquitto_pid_file`` is required for it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import col, select

from devices import (
    ClusterGateway,
    EmbeddedBroker,
    acl_text,
    password_file_text,
    reload_mosquitto,
    write_atomic,
)
from station.db import Cluster, ClusterKind, ClusterStatus

from ._registry import credential_hashes
from ._services import Sessions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MosquittoFiles:
    password_file: Path
    acl_file: Path
    pid_file: Path | None
    station_id: str
    station_user: str
    station_hash: str


class BrokerAccess:
    def __init__(self, sessions: Sessions, mosquitto: MosquittoFiles | None = None) -> None:
        self.sessions = sessions
        self.hashes: dict[str, str] = {}
        self.mosquitto = mosquitto
        self.gateway: ClusterGateway | None = None
        self.broker: EmbeddedBroker | None = None  # the in-process broker, when embedded
        self._written: tuple[str, str] | None = None
        self._lock = asyncio.Lock()  # the sweep and an explicit refresh must not interleave
        self.reloads = 0

    def lookup(self, username: str) -> str | None:
        return self.hashes.get(username)

    async def refresh(self) -> None:
        async with self._lock:
            await self._refresh()

    async def _refresh(self) -> None:
        self.hashes = await credential_hashes(self.sessions)
        if self.gateway is not None:
            async with self.sessions() as db:
                active = await db.exec(
                    select(Cluster.id).where(
                        col(Cluster.status) != ClusterStatus.RETIRED,
                        col(Cluster.kind).in_([ClusterKind.ICT, ClusterKind.BRIDGE]),
                    )
                )
                known = set(active.all())
            # Retired clusters and legacy fm/wired ones (they never talk) are dropped.
            self.gateway.known.intersection_update(known)
            self.gateway.remember(known)
        if self.mosquitto is not None:
            await self._sync_mosquitto(self.mosquitto)
        if self.broker is not None:
            await self.broker.end_stale_sessions()

    async def _sync_mosquitto(self, files: MosquittoFiles) -> None:
        entries = [(files.station_user, files.station_hash), *self.hashes.items()]
        texts = (password_file_text(entries), acl_text(files.station_id, files.station_user))
        if texts == self._written:
            return
        await asyncio.to_thread(write_atomic, files.password_file, texts[0])
        await asyncio.to_thread(write_atomic, files.acl_file, texts[1])
        self._written = texts
        log.info("wrote Mosquitto password file (%d clusters) and ACL", len(self.hashes))
        if files.pid_file is None:
            log.warning(
                "devices.mosquitto_pid_file is not set: Mosquitto keeps the old credentials, "
                "and clients connected with revoked ones, until it is reloaded (SIGHUP)"
            )
        elif await asyncio.to_thread(reload_mosquitto, files.pid_file):
            self.reloads += 1
