"""The cluster registry: villages, zones, clusters and their lifecycle, for technicians.

Every operation is one transaction and validates its input first (``StationError`` with a clear
message). Cluster passwords are generated here, returned once in a ``ProvisioningBundle`` and
stored only as a Mosquitto ``$7$`` hash.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
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
from station.db.models_fleet import ClusterStatusChange

from ._services import Sessions, StationError

log = logging.getLogger(__name__)

LEGACY = (ClusterKind.FM, ClusterKind.WIRED)
REPORTING = (ClusterKind.ICT, ClusterKind.BRIDGE)
NOT_WORKING = (ClusterStatus.FAULTY, ClusterStatus.RETIRED)


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- status history

StatusSnapshot = tuple[ClusterStatus, bool] | None  # (status, online); None: not registered yet


def snapshot(cluster: Cluster) -> tuple[ClusterStatus, bool]:
    return ClusterStatus(cluster.status), bool(cluster.online)


def note_status_change(
    db: AsyncSession, cluster: Cluster, before: StatusSnapshot, reason: str, at: datetime
) -> ClusterStatusChange | None:
    """Add a ``cluster_status_changes`` row (in the caller's transaction) if the cluster's
    status or availability differs from ``before``; None (nothing written) if it does not."""
    after = snapshot(cluster)
    if before == after:
        return None
    row = ClusterStatusChange(
        cluster_id=cluster.id,
        at=at,
        from_status=before[0] if before is not None else None,
        to_status=after[0],
        online=after[1],
        reason=reason[:200],
    )
    db.add(row)
    return row


_MSISDN_JUNK = re.compile(r"[\s.()\-]")
# Vietnamese mobile numbers: 0 + a 3/5/7/8/9 network prefix + 8 digits (since the 2018 move
# to 10 digits); +84 / 84 is the country code in place of the leading 0.
_MSISDN = re.compile(r"^0[35789][0-9]{8}$")


def normalise_msisdn(value: str) -> str:
    """A SIM's subscriber number [số thuê bao] in the national form ``0xxxxxxxxx``.

    Accepts ``+84 912 345 678``, ``84912345678``, ``0912.345.678``; ValueError otherwise."""
    digits = _MSISDN_JUNK.sub("", value.strip())
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    if not _MSISDN.match(digits):
        raise ValueError(
            f"not a Vietnamese mobile number: {value[:24]!r} (e.g. 0912345678 or +84912345678)"
        )
    return digits


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
    sim_msisdn: str | None = Field(default=None, max_length=24)
    firmware: str | None = Field(default=None, max_length=64)
    installed_on: date | None = None
    installed_as: InstalledAs | None = None
    note: str = ""

    @field_validator("sim_msisdn")
    @classmethod
    def _msisdn(cls, value: str | None) -> str | None:
        return None if value is None else normalise_msisdn(value)

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
        raise StationError(_problems(exc), code="cluster_invalid") from None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())


class ClusterEdit(BaseModel):
    """The fields a technician may correct on a registered cluster: name, location, hardware.

    Only the fields given change; ``None`` clears an optional field (``lat``/``lon`` together).
    Village and zones change with ``move_cluster``; kind, bridge and status through the
    lifecycle (replace, retire)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    model: str | None = Field(default=None, max_length=64)
    serial: str | None = Field(default=None, max_length=64)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{14,16}$")
    iccid: str | None = Field(default=None, pattern=r"^[0-9]{18,22}F?$")
    sim_msisdn: str | None = Field(default=None, max_length=24)
    firmware: str | None = Field(default=None, max_length=64)
    installed_on: date | None = None
    installed_as: InstalledAs | None = None
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("sim_msisdn")
    @classmethod
    def _msisdn(cls, value: str | None) -> str | None:
        return None if value is None else normalise_msisdn(value)


def parse_edit(data: dict[str, Any]) -> ClusterEdit:
    """Validate the fields to change; StationError lists every problem."""
    try:
        edit = ClusterEdit.model_validate(data)
    except ValidationError as exc:
        raise StationError(_problems(exc), code="cluster_invalid") from None
    given = edit.model_fields_set
    if ("lat" in given) != ("lon" in given) or (edit.lat is None) != (edit.lon is None):
        raise StationError("give lat and lon together", code="lat_lon_together")
    if "name" in given and edit.name is None:
        raise StationError("name: a cluster keeps a name", code="cluster_keeps_name")
    return edit


async def edit_cluster(
    sessions: Sessions,
    cluster_id: str,
    edit: ClusterEdit,
    check: Callable[[Cluster], None] | None = None,
) -> Cluster:
    """Change the given fields in one transaction; ``check`` sees the current row first (the
    API's If-Match) and may raise to refuse."""
    async with sessions() as db:
        cluster = await db.get(Cluster, cluster_id)
        if cluster is None:
            raise StationError(
                f"unknown cluster {cluster_id}", code="cluster_unknown", cluster_ids=[cluster_id]
            )
        if check is not None:
            check(cluster)
        for name in edit.model_fields_set:
            value = getattr(edit, name)
            setattr(cluster, name, "" if name == "note" and value is None else value)
        db.add(cluster)
        await db.commit()
        await db.refresh(cluster)
        return cluster


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
        raise StationError(
            f"invalid village id {village_id!r}", code="village_id_invalid", village_id=village_id
        )
    if not name.strip():
        raise StationError("a village needs a name", code="village_name_needed")
    if households is not None and households < 0:
        raise StationError("households must not be negative", code="households_negative")
    async with sessions() as db:
        if await db.get(Village, village_id) is not None:
            raise StationError(
                f"village {village_id} already exists", code="village_exists", village_id=village_id
            )
        village = Village(
            id=village_id, name=name.strip(), households=households, lat=lat, lon=lon, note=note
        )
        db.add(village)
        await db.commit()
        await db.refresh(village)
        return village


async def add_zone(sessions: Sessions, zone_id: str, name: str) -> Zone:
    if not is_valid_id(zone_id):
        raise StationError(f"invalid zone id {zone_id!r}", code="zone_id_invalid", zone_id=zone_id)
    async with sessions() as db:
        if await db.get(Zone, zone_id) is not None:
            raise StationError(
                f"zone {zone_id} already exists", code="zone_exists", zone_id=zone_id
            )
        zone = Zone(id=zone_id, name=name.strip() or zone_id)
        db.add(zone)
        await db.commit()
        await db.refresh(zone)
        return zone


async def assign_zone(sessions: Sessions, zone_id: str, cluster_ids: Sequence[str]) -> list[str]:
    """Put clusters into a zone; returns the ids newly added."""
    async with sessions() as db:
        if await db.get(Zone, zone_id) is None:
            raise StationError(f"unknown zone {zone_id}", code="zone_unknown", zone_ids=[zone_id])
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
        raise StationError(
            f"unknown cluster(s): {', '.join(missing)}", code="cluster_unknown", cluster_ids=missing
        )


async def _require_zones(db: AsyncSession, zone_ids: Sequence[str]) -> None:
    found = set((await db.exec(select(Zone.id).where(col(Zone.id).in_(zone_ids)))).all())
    missing = [z for z in zone_ids if z not in found]
    if missing:
        raise StationError(
            f"unknown zone(s): {', '.join(missing)} (add them with `loaxa zone add`)",
            code="zone_unknown",
            zone_ids=missing,
        )


# --------------------------------------------------------------------------- clusters


async def _check_links(db: AsyncSession, spec: ClusterSpec) -> None:
    if spec.village_id is not None and await db.get(Village, spec.village_id) is None:
        raise StationError(
            f"unknown village {spec.village_id} (add it with `loaxa village add`)",
            code="village_unknown",
            village_id=spec.village_id,
        )
    await _require_zones(db, spec.zones)
    if spec.kind in LEGACY:
        if not spec.bridge_id:
            raise StationError(
                f"a {spec.kind} cluster needs a bridge (--bridge)",
                code="bridge_needed",
                kind=str(spec.kind),
            )
        bridge = await db.get(Cluster, spec.bridge_id)
        if bridge is None or bridge.kind != ClusterKind.BRIDGE:
            raise StationError(
                f"bridge {spec.bridge_id} is not a registered bridge cluster",
                code="bridge_unknown",
                bridge_id=spec.bridge_id,
            )
        if bridge.status == ClusterStatus.RETIRED:
            raise StationError(
                f"bridge {spec.bridge_id} is retired",
                code="bridge_retired",
                bridge_id=spec.bridge_id,
            )
    elif spec.bridge_id or spec.zone_code:
        raise StationError(
            "only fm/wired clusters have a bridge and a zone code", code="bridge_only_legacy"
        )


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
        sim_msisdn=spec.sim_msisdn,
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
    sessions: Sessions, spec: ClusterSpec, endpoints: Endpoints, *, at: datetime | None = None
) -> ProvisioningBundle:
    """Register a new cluster and return its provisioning bundle (the password, once).

    ``at``: the registration time its status history starts with (default now)."""
    async with sessions() as db:
        if await db.get(Cluster, spec.id) is not None:
            raise StationError(
                f"cluster {spec.id} is already registered",
                code="cluster_exists",
                cluster_id=spec.id,
            )
        await _check_links(db, spec)
        cluster = _row_from(spec)
        bundle = _issue(cluster, endpoints)
        db.add(cluster)
        await db.flush()
        db.add_all(ClusterZone(zone_id=z, cluster_id=spec.id) for z in spec.zones)
        note_status_change(db, cluster, None, "registered", at or _now())
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
            raise StationError(
                f"{cluster_id} is a {cluster.kind} cluster: it never connects",
                code="cluster_never_connects",
                cluster_id=cluster_id,
                kind=str(cluster.kind),
            )
        before = snapshot(cluster)
        bundle = _issue(cluster, endpoints)
        db.add(cluster)
        note_status_change(db, cluster, before, "provisioned", _now())
        await db.commit()
    return bundle


async def _get_active(db: AsyncSession, cluster_id: str) -> Cluster:
    cluster = await db.get(Cluster, cluster_id)
    if cluster is None:
        raise StationError(
            f"unknown cluster {cluster_id}", code="cluster_unknown", cluster_ids=[cluster_id]
        )
    if cluster.status == ClusterStatus.RETIRED:
        raise StationError(
            f"cluster {cluster_id} is retired", code="cluster_retired", cluster_id=cluster_id
        )
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
                "or replace the bridge with `loaxa cluster replace`",
                code="bridge_still_drives",
                cluster_id=cluster_id,
                clusters=[c.id for c in attached],
            )
        before, now = snapshot(cluster), _now()
        _retire(cluster, now)
        db.add(cluster)
        note_status_change(db, cluster, before, "retired", now)
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
        raise StationError(
            "a replacement must be an ICT cluster (kind ict or bridge)", code="replacement_kind"
        )
    if spec.id == old_id:
        raise StationError("the replacement needs a new cluster id", code="replacement_same_id")
    async with sessions() as db:
        old = await _get_active(db, old_id)
        if await db.get(Cluster, spec.id) is not None:
            raise StationError(
                f"cluster {spec.id} is already registered",
                code="cluster_exists",
                cluster_id=spec.id,
            )
        attached = await _legacy_on(db, old_id)
        if attached and spec.kind != ClusterKind.BRIDGE:
            names = ", ".join(c.id for c in attached)
            raise StationError(
                f"{old_id} drives {names}: replace it with --kind bridge",
                code="replacement_drives",
                cluster_id=old_id,
                clusters=[c.id for c in attached],
            )
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
        before, now = snapshot(old), _now()
        _retire(old, now)
        db.add(old)
        note_status_change(db, new, None, f"registered, replaces {old_id}", now)
        note_status_change(db, old, before, f"replaced by {new.id}", now)
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
        raise StationError("give both --lat and --lon", code="lat_lon_together")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise StationError("latitude/longitude out of range", code="lat_lon_range")
    async with sessions() as db:
        cluster = await _get_active(db, cluster_id)
        if village_id is not None:
            if await db.get(Village, village_id) is None:
                raise StationError(
                    f"unknown village {village_id}", code="village_unknown", village_id=village_id
                )

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
