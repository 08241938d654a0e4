"""Who a schedule reaches: targets ({"all"}, clusters, zones, villages) -> cluster ids.

The registry is read once per operation (``Directory.load``) and targets are resolved in
memory, so checking a new schedule against thousands of others costs a few queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from station._services import StationError
from station.config import PlayoutSection
from station.db import Cluster, ClusterStatus, ClusterZone, Village, Zone

TARGET_KEYS = ("all", "clusters", "zones", "villages")


@dataclass(frozen=True, slots=True)
class Directory:
    """Live (not retired) clusters with their village, zones and villages."""

    villages_of: Mapping[str, str | None]  # cluster id -> village id
    zones: Mapping[str, frozenset[str]]  # zone id -> cluster ids
    villages: frozenset[str]

    @classmethod
    async def load(cls, db: AsyncSession) -> Directory:
        clusters = await db.exec(
            select(Cluster.id, Cluster.village_id).where(Cluster.status != ClusterStatus.RETIRED)
        )
        villages_of = dict(clusters.all())
        zones: dict[str, set[str]] = {z: set() for z in (await db.exec(select(Zone.id))).all()}
        for zone_id, cluster_id in (
            await db.exec(select(ClusterZone.zone_id, ClusterZone.cluster_id))
        ).all():
            if cluster_id in villages_of:
                zones[zone_id].add(cluster_id)
        villages = frozenset((await db.exec(select(Village.id))).all())
        return cls(villages_of, {z: frozenset(c) for z, c in zones.items()}, villages)

    def resolve(self, targets: Mapping[str, Any]) -> frozenset[str]:
        """Cluster ids of ``targets``; StationError for an unknown key, id or an empty result."""
        check_targets(targets)
        if targets.get("all"):
            return frozenset(self.villages_of)
        found: set[str] = set()
        found |= self._pick("cluster", targets.get("clusters", []), set(self.villages_of))
        for zone in self._pick("zone", targets.get("zones", []), set(self.zones)):
            found |= self.zones[zone]
        wanted = self._pick("village", targets.get("villages", []), set(self.villages))
        found |= {c for c, v in self.villages_of.items() if v in wanted}
        if not found:
            raise StationError(
                f"targets {dict(targets)} reach no cluster", code="targets_reach_none"
            )
        return frozenset(found)

    @staticmethod
    def _pick(kind: str, ids: list[str], known: set[str]) -> set[str]:
        unknown = sorted(set(ids) - known)
        if unknown:
            raise StationError(
                f"unknown {kind}(s): {', '.join(unknown)}",
                code="target_unknown",
                target=kind,
                ids=unknown,
            )
        return set(ids)

    def locality(self, cluster_id: str, playout: PlayoutSection) -> str:
        """The cluster's own entry, else its village's, else the default locality."""
        if cluster_id in playout.cluster_localities:
            return playout.cluster_localities[cluster_id]
        village = self.villages_of.get(cluster_id)
        if village is not None and village in playout.village_localities:
            return playout.village_localities[village]
        return playout.default_locality


def check_targets(targets: Mapping[str, Any]) -> None:
    """The shape: {"all": true} or any of {"clusters"|"zones"|"villages": [ids]}."""
    unknown = sorted(set(targets) - set(TARGET_KEYS))
    if unknown:
        raise StationError(
            f"unknown target key(s) {', '.join(unknown)}: use {TARGET_KEYS}", code="targets_invalid"
        )
    if targets.get("all") and len(targets) > 1:
        raise StationError(
            'targets: "all" cannot be combined with other targets', code="targets_invalid"
        )
    for key in TARGET_KEYS[1:]:
        ids = targets.get(key, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise StationError(f"targets: {key} must be a list of ids", code="targets_invalid")
    if not targets.get("all") and not any(targets.get(k) for k in TARGET_KEYS[1:]):
        raise StationError(
            "targets: give all, or clusters, zones or villages", code="targets_invalid"
        )
