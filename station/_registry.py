"""The cluster registry: villages, zones, clusters and their lifecycle, for technicians.

Every operation is one transaction and validates its input first (``StationError`` with a clear
message). Cluster passwords are generated here, returned once in a ``ProvisioningBundle`` and
stored only as a Mosquitto ``$7$`` hash.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices import generate_password, hash_password
from devices.protocol import is_valid_id
from station.db import (
    Cluster,
    ClusterKind,
    ClusterStatus,
    ClusterZone,
    InstalledAs,
    Schedule,
    ScheduleStatus,
    Village,
    Zone,
)

from ._services import Sessions, StationError

log = logging.getLogger(__name__)

LEGACY = (ClusterKind.FM, ClusterKind.WIRED)
REPORTING = (ClusterKind.ICT, ClusterKind.BRIDGE)
NOT_WORKING = (ClusterStatus.FAULTY, ClusterStatus.RETIRED)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_id(value: str, what: str) -> str:
    if not is_valid_id(value):
        raise ValueError(f"invalid {what} id {value!r}: letters, digits, '_', '.', '-' only")
    return value


class ClusterSpec(BaseModel):
    """What a technician gives to register a cluster (validated before anything is written)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: str
    name: str = ""
    kind: ClusterKind = ClusterKind.ICT
    village_id: str | None = None
    zones: list[str] = Field(default_factory=list)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    bridge_id: str | None = None
    zone_code: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Da-d*#]+$")
    model: str | None = Field(default=None, max_length=64)
    serial: str | None = Field(default=None, max_length=64)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{14,16}$")
    iccid: str | None = Field(default=None, pattern=r"^[0-9]{18,22}F?$")
    firmware: str | None = Field(default=None, max_length=64)
    installed_on: date | None = None
    installed_as: InstalledAs | None = None
    note: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_id(value, "cluster")

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: list[str]) -> list[str]:
        return [_check_id(z, "zone") for z in dict.fromkeys(value)]


def parse_spec(data: dict[str, Any]) -> ClusterSpec:
    """Validate raw fields into a ClusterSpec; StationError lists every problem."""
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        raise StationError(problems) from None


@dataclass(frozen=True)
class ProvisioningBundle:
    """Everything a cluster needs to join; ``password`` is shown once and never stored."""

    cluster_id: str
    broker_url: str
    username: str | None
    password: str | None
    http_base_url: str
    station_id: str
    ca_pem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "station_id": self.station_id,
            "broker_url": self.broker_url,
            "username": self.username,
            "password": self.password,
            "http_base_url": self.http_base_url,
            "ca_pem": self.ca_pem,
        }


@dataclass(frozen=True)
class Endpoints:
    """Where clusters reach the station (from the configuration)."""

    station_id: str
    broker_url: str
    http_base_url: str
    ca_pem: str | None = None


# --------------------------------------------------------------------------- villages, zones


async def add_village(
    sessions: Sessions,
    village_id: str,
    name: str,
    households: int | None = None,
    lat: float | None = None,
    lon: float | None = None,
    note: str = "",
) -> Village:
    if not is_valid_id(village_id):
        raise StationError(f"invalid village id {village_id!r}")
    if not name.strip():
        raise StationError("a village needs a name")
    if households is not None and households < 0:
        raise StationError("households must not be negative")
    async with sessions() as db:
        if await db.get(Village, village_id) is not None:
            raise StationError(f"village {village_id} already exists")
        village = Village(
            id=village_id, name=name.strip(), households=households, lat=lat, lon=lon, note=note
        )
        db.add(village)
        await db.commit()
        await db.refresh(village)
        return village


async def add_zone(sessions: Sessions, zone_id: str, name: str) -> Zone:
    if not is_valid_id(zone_id):
        raise StationError(f"invalid zone id {zone_id!r}")
    async with sessions() as db:
        if await db.get(Zone, zone_id) is not None:
            raise StationError(f"zone {zone_id} already exists")
        zone = Zone(id=zone_id, name=name.strip() or zone_id)
        db.add(zone)
        await db.commit()
        await db.refresh(zone)
        return zone


async def assign_zone(sessions: Sessions, zone_id: str, cluster_ids: Sequence[str]) -> list[str]:
    """Put clusters into a zone; returns the ids newly added."""
    async with sessions() as db:
        if await db.get(Zone, zone_id) is None:
            raise StationError(f"unknown zone {zone_id}")
        await _require_clusters(db, cluster_ids)
        existing = set(
            (
                await db.exec(select(ClusterZone.cluster_id).where(ClusterZone.zone_id == zone_id))
            ).all()
        )
        added = [c for c in dict.fromkeys(cluster_ids) if c not in existing]
        db.add_all(ClusterZone(zone_id=zone_id, cluster_id=c) for c in added)
        await db.commit()
        return added


async def zones_of(db: AsyncSession, cluster_id: str) -> list[str]:
    rows = await db.exec(
        select(ClusterZone.zone_id)
        .where(ClusterZone.cluster_id == cluster_id)
        .order_by(col(ClusterZone.zone_id))
    )
    return list(rows.all())


async def _require_clusters(db: AsyncSession, cluster_ids: Sequence[str]) -> None:
    found = set((await db.exec(select(Cluster.id).where(col(Cluster.id).in_(cluster_ids)))).all())
    missing = [c for c in cluster_ids if c not in found]
    if missing:
        raise StationError(f"unknown cluster(s): {', '.join(missing)}")


async def _require_zones(db: AsyncSession, zone_ids: Sequence[str]) -> None:
    found = set((await db.exec(select(Zone.id).where(col(Zone.id).in_(zone_ids)))).all())
    missing = [z for z in zone_ids if z not in found]
    if missing:
        raise StationError(
            f"unknown zone(s): {', '.join(missing)} (add them with `loaxa zone add`)"
        )


# --------------------------------------------------------------------------- clusters


async def _check_links(db: AsyncSession, spec: ClusterSpec) -> None:
    if spec.village_id is not None and await db.get(Village, spec.village_id) is None:
        raise StationError(f"unknown village {spec.village_id} (add it with `loaxa village add`)")
    await _require_zones(db, spec.zones)
    if spec.kind in LEGACY:
        if not spec.bridge_id:
            raise StationError(f"a {spec.kind} cluster needs a bridge (--bridge)")
        bridge = await db.get(Cluster, spec.bridge_id)
        if bridge is None or bridge.kind != ClusterKind.BRIDGE:
            raise StationError(f"bridge {spec.bridge_id} is not a registered bridge cluster")
        if bridge.status == ClusterStatus.RETIRED:
            raise StationError(f"bridge {spec.bridge_id} is retired")
    elif spec.bridge_id or spec.zone_code:
        raise StationError("only fm/wired clusters have a bridge and a zone code")


def _row_from(spec: ClusterSpec) -> Cluster:
    return Cluster(
        id=spec.id,
        name=spec.name or spec.id,
        kind=spec.kind,
        village_id=spec.village_id,
        lat=spec.lat,
        lon=spec.lon,
        bridge_id=spec.bridge_id,
        zone_code=spec.zone_code,
        model=spec.model,
        serial=spec.serial,
        imei=spec.imei,
        iccid=spec.iccid,
        firmware=spec.firmware,
        installed_on=spec.installed_on,
        installed_as=spec.installed_as,
        note=spec.note,
    )


def _issue(cluster: Cluster, endpoints: Endpoints) -> ProvisioningBundle:
    """Give a reporting cluster fresh credentials (legacy ones get none: they never connect)."""
    password = None
    if cluster.kind in REPORTING:
        password = generate_password()
        cluster.credential_hash = hash_password(password)
        if cluster.status == ClusterStatus.REGISTERED:
            cluster.status = ClusterStatus.PROVISIONED
    return ProvisioningBundle(
        cluster_id=cluster.id,
        broker_url=endpoints.broker_url,
        username=cluster.id if password else None,
        password=password,
        http_base_url=endpoints.http_base_url,
        station_id=endpoints.station_id,
        ca_pem=endpoints.ca_pem,
    )


async def register_cluster(
    sessions: Sessions, spec: ClusterSpec, endpoints: Endpoints
) -> ProvisioningBundle:
    """Register a new cluster and return its provisioning bundle (the password, once)."""
    async with sessions() as db:
        if await db.get(Cluster, spec.id) is not None:
            raise StationError(f"cluster {spec.id} is already registered")
        await _check_links(db, spec)
        cluster = _row_from(spec)
        bundle = _issue(cluster, endpoints)
        db.add(cluster)
        await db.flush()
        db.add_all(ClusterZone(zone_id=z, cluster_id=spec.id) for z in spec.zones)
        await db.commit()
    log.info("registered cluster %s (%s)", spec.id, spec.kind)
    return bundle


async def provision_cluster(
    sessions: Sessions, cluster_id: str, endpoints: Endpoints
) -> ProvisioningBundle:
    """Issue new credentials to a registered (e.g. imported) cluster; the old ones stop working."""
    async with sessions() as db:
        cluster = await _get_active(db, cluster_id)
        if cluster.kind in LEGACY:
            raise StationError(f"{cluster_id} is a {cluster.kind} cluster: it never connects")
        bundle = _issue(cluster, endpoints)
        db.add(cluster)
        await db.commit()
    return bundle


async def _get_active(db: AsyncSession, cluster_id: str) -> Cluster:
    cluster = await db.get(Cluster, cluster_id)
    if cluster is None:
        raise StationError(f"unknown cluster {cluster_id}")
    if cluster.status == ClusterStatus.RETIRED:
        raise StationError(f"cluster {cluster_id} is retired")
    return cluster


async def _legacy_on(db: AsyncSession, bridge_id: str) -> list[Cluster]:
    rows = await db.exec(
        select(Cluster).where(
            Cluster.bridge_id == bridge_id, col(Cluster.status) != ClusterStatus.RETIRED
        )
    )
    return list(rows.all())


def _retire(cluster: Cluster, now: datetime) -> None:
    cluster.status = ClusterStatus.RETIRED
    cluster.retired_at = now
    cluster.online = False
    cluster.credential_hash = None


async def retire_cluster(sessions: Sessions, cluster_id: str) -> Cluster:
    async with sessions() as db:
        cluster = await _get_active(db, cluster_id)
        attached = await _legacy_on(db, cluster_id)
        if attached:
            names = ", ".join(c.id for c in attached)
            raise StationError(
                f"bridge {cluster_id} still drives {names}: retire or replace those first, "
                "or replace the bridge with `loaxa cluster replace`"
            )
        _retire(cluster, _now())
        db.add(cluster)
        await db.commit()
        await db.refresh(cluster)
    log.info("retired cluster %s", cluster_id)
    return cluster


async def replace_cluster(
    sessions: Sessions, old_id: str, spec: ClusterSpec, endpoints: Endpoints
) -> ProvisioningBundle:
    """Replace a broken cluster (legacy or ICT) by a new ICT cluster or bridge.

    The new cluster takes over the village, zones, location (unless given) and the pending
    schedules that targeted the old one; a replaced bridge hands its legacy clusters over.
    The old cluster is retired; ``replaces``/``replaced_by`` keep the history.
    """
    if spec.kind in LEGACY:
        raise StationError("a replacement must be an ICT cluster (kind ict or bridge)")
    if spec.id == old_id:
        raise StationError("the replacement needs a new cluster id")
    async with sessions() as db:
        old = await _get_active(db, old_id)
        if await db.get(Cluster, spec.id) is not None:
            raise StationError(f"cluster {spec.id} is already registered")
        attached = await _legacy_on(db, old_id)
        if attached and spec.kind != ClusterKind.BRIDGE:
            names = ", ".join(c.id for c in attached)
            raise StationError(f"{old_id} drives {names}: replace it with --kind bridge")
        zones = spec.zones or await zones_of(db, old_id)
        spec = spec.model_copy(
            update={
                "village_id": spec.village_id or old.village_id,
                "zones": zones,
                "lat": spec.lat if spec.lat is not None else old.lat,
                "lon": spec.lon if spec.lon is not None else old.lon,
                "installed_as": InstalledAs.REPLACEMENT,
                "installed_on": spec.installed_on or _now().date(),
            }
        )
        await _check_links(db, spec)
        new = _row_from(spec)
        new.replaces = old_id
        bundle = _issue(new, endpoints)
        db.add(new)
        await db.flush()
        db.add_all(ClusterZone(zone_id=z, cluster_id=new.id) for z in zones)
        for legacy in attached:
            legacy.bridge_id = new.id
            db.add(legacy)
        old.replaced_by = new.id
        _retire(old, _now())
        db.add(old)
        await _retarget_schedules(db, old_id, new.id)
        await db.commit()
    log.info("cluster %s replaced by %s", old_id, spec.id)
    return bundle


async def _retarget_schedules(db: AsyncSession, old_id: str, new_id: str) -> int:
    rows = await db.exec(select(Schedule).where(Schedule.status == ScheduleStatus.PENDING))
    changed = 0
    for schedule in rows:
        targets = dict(schedule.targets)
        ids = list(targets.get("clusters") or [])
        if old_id not in ids:
            continue
        targets["clusters"] = list(dict.fromkeys(new_id if c == old_id else c for c in ids))
        schedule.targets = targets
        flag_modified(schedule, "targets")
        db.add(schedule)
        changed += 1
    return changed


async def move_cluster(
    sessions: Sessions,
    cluster_id: str,
    *,
    village_id: str | None = None,
    zones: Sequence[str] | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> Cluster:
    """Change a cluster's village, zones (replacing the set) and/or location."""
    if (lat is None) != (lon is None):
        raise StationError("give both --lat and --lon")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise StationError("latitude/longitude out of range")
    async with sessions() as db:
        cluster = await _get_active(db, cluster_id)
        if village_id is not None:
            if await db.get(Village, village_id) is None:
                raise StationError(f"unknown village {village_id}")
            cluster.village_id = village_id
        if lat is not None:
            cluster.lat, cluster.lon = lat, lon
        if zones is not None:
            await _require_zones(db, zones)
            await db.exec(delete(ClusterZone).where(col(ClusterZone.cluster_id) == cluster_id))
            db.add_all(ClusterZone(zone_id=z, cluster_id=cluster_id) for z in dict.fromkeys(zones))
        db.add(cluster)
        await db.commit()
        await db.refresh(cluster)
        return cluster


async def credential_hashes(sessions: Sessions) -> dict[str, str]:
    """Cluster id -> password hash of every cluster that may log in to the broker."""
    async with sessions() as db:
        rows = await db.exec(
            select(Cluster.id, Cluster.credential_hash).where(
                col(Cluster.credential_hash).is_not(None),
                col(Cluster.status) != ClusterStatus.RETIRED,
            )
        )
        return {cid: h for cid, h in rows.all() if h}
