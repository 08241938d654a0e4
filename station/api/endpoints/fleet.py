"""The fleet registry for technicians: villages, zones, register (provisioning bundle once),
replace, retire, move, CSV import, coverage, alerts and the identify tone."""

from __future__ import annotations

import csv
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from aiohttp import BodyPartReader
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from devices import MqttError
from devices.protocol import IdentifyCommand
from station import _keys as keys
from station._registry import (
    ClusterSpec,
    Endpoints,
    ProvisioningBundle,
    add_village,
    add_zone,
    assign_zone,
    move_cluster,
    parse_spec,
    register_cluster,
    replace_cluster,
    retire_cluster,
)
from station._registry_import import coverage, import_clusters, import_villages
from station._services import StationError
from station.db import Alert, AlertKind, Cluster, ClusterKind, InstalledAs, Village, Zone

from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import ClusterId, not_found, refused, sessions_of
from .clusters import ClusterOut

router = ApiRouter("fleet", "The cluster registry: villages, zones, lifecycle, coverage, alerts")

IdStr = ClusterId
_MAX_CSV = 2 * 1024 * 1024


class VillageOut(BaseModel):
    id: str
    name: str
    households: int | None
    lat: float | None
    lon: float | None
    note: str


class VillageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: IdStr
    name: str = Field(min_length=1, max_length=200)
    households: int | None = Field(default=None, ge=0, le=10_000_000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    note: str = Field(default="", max_length=2000)


class ZoneOut(BaseModel):
    id: str
    name: str


class ZoneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: IdStr
    name: str = Field(default="", max_length=200)


class ZoneAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster_ids: list[IdStr] = Field(min_length=1, max_length=500)


class ZoneAssigned(BaseModel):
    added: list[str]


class FleetClusterCreate(BaseModel):
    """A cluster to register (or the replacement's fields)."""

    model_config = ConfigDict(extra="forbid")
    id: IdStr
    name: str = Field(default="", max_length=200)
    kind: ClusterKind = ClusterKind.ICT
    village_id: IdStr | None = None
    zones: list[IdStr] = Field(default_factory=list, max_length=100)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    bridge_id: IdStr | None = None
    zone_code: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Da-d*#]+$")
    model: str | None = Field(default=None, max_length=64)
    serial: str | None = Field(default=None, max_length=64)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{14,16}$")
    iccid: str | None = Field(default=None, pattern=r"^[0-9]{18,22}F?$")
    firmware: str | None = Field(default=None, max_length=64)
    installed_on: date | None = None
    installed_as: InstalledAs | None = None
    note: str = Field(default="", max_length=2000)


class BundleOut(BaseModel):
    """Shown once: the password is never stored in clear and cannot be read again."""

    cluster_id: str
    station_id: str
    broker_url: str
    username: str | None
    password: str | None
    http_base_url: str
    ca_pem: str | None


class Provisioned(BaseModel):
    cluster: ClusterOut
    bundle: BundleOut


class MoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    village_id: IdStr | None = None
    zones: list[IdStr] | None = Field(default=None, max_length=100)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["clusters", "villages"] = "clusters"


class ImportRow(BaseModel):
    line: int
    id: str
    error: str | None


class ImportOut(BaseModel):
    imported: list[str]
    errors: int
    rows: list[ImportRow]


class VillageCoverageOut(BaseModel):
    village_id: str
    name: str
    households: int | None
    lat: float | None
    lon: float | None
    covered: bool
    working: list[str]
    not_working: list[str]


class CoverageOut(BaseModel):
    villages: list[VillageCoverageOut]
    covered: int
    uncovered: int


class AlertOut(BaseModel):
    id: int
    cluster_id: str
    kind: AlertKind
    code: str
    detail: str
    raised_at: datetime
    cleared_at: datetime | None


class AlertQuery(ListQuery):
    state: Literal["open", "all"] = "open"
    cluster_id: IdStr | None = None


class IdentifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: int = Field(default=5, ge=1, le=60)
    tone_hz: int = Field(default=1000, ge=100, le=8000)


class IdentifySent(BaseModel):
    command_id: str
    cluster_id: str
    expires_at: datetime


def _endpoints(call: Call) -> Endpoints:
    from station.cli._fleet import endpoints_for  # where clusters reach us, as the CLI says

    endpoints: Endpoints = endpoints_for(call.app[keys.SETTINGS])
    return endpoints


def _spec(body: FleetClusterCreate) -> ClusterSpec:
    try:
        return parse_spec(body.model_dump(exclude_none=True))
    except StationError as exc:
        raise refused(exc) from None


async def _provisioned(call: Call, bundle: ProvisioningBundle) -> Provisioned:
    call.app[keys.GATEWAY].remember([bundle.cluster_id])  # accept its messages from now on
    async with sessions_of(call)() as db:
        cluster = await db.get(Cluster, bundle.cluster_id)
    assert cluster is not None
    return Provisioned(
        cluster=ClusterOut.model_validate(cluster, from_attributes=True),
        bundle=BundleOut(**bundle.as_dict()),
    )


# --------------------------------------------------------------------------- villages, zones


@router.get("/villages", summary="List villages", permission=Permission.READ,
            query=ListQuery, response=Page[VillageOut])  # fmt: skip
async def list_villages(call: Call, query: ListQuery) -> Page[VillageOut]:
    async with sessions_of(call)() as db:
        return await paginate(
            db,
            select(Village).order_by(col(Village.id)),
            query,
            lambda v: VillageOut.model_validate(v, from_attributes=True),
        )


@router.post("/villages", summary="Add a village", permission=Permission.CLUSTERS_WRITE,
             body=VillageCreate, response=VillageOut, status=201, errors=(409,))  # fmt: skip
async def create_village(call: Call, body: VillageCreate) -> VillageOut:
    try:
        village = await add_village(
            sessions_of(call), body.id, body.name, body.households, body.lat, body.lon, body.note
        )
    except StationError as exc:
        raise refused(exc, 409 if "already exists" in str(exc) else 422) from None
    await audit(call, "village.create", f"village:{body.id}", {"name": village.name})
    return VillageOut.model_validate(village, from_attributes=True)


@router.get("/zones", summary="List zones", permission=Permission.READ,
            query=ListQuery, response=Page[ZoneOut])  # fmt: skip
async def list_zones(call: Call, query: ListQuery) -> Page[ZoneOut]:
    async with sessions_of(call)() as db:
        return await paginate(
            db,
            select(Zone).order_by(col(Zone.id)),
            query,
            lambda z: ZoneOut.model_validate(z, from_attributes=True),
        )


@router.post("/zones", summary="Add a zone", permission=Permission.CLUSTERS_WRITE,
             body=ZoneCreate, response=ZoneOut, status=201, errors=(409,))  # fmt: skip
async def create_zone(call: Call, body: ZoneCreate) -> ZoneOut:
    try:
        zone = await add_zone(sessions_of(call), body.id, body.name)
    except StationError as exc:
        raise refused(exc, 409 if "already exists" in str(exc) else 422) from None
    await audit(call, "zone.create", f"zone:{body.id}", {"name": zone.name})
    return ZoneOut.model_validate(zone, from_attributes=True)


@router.post("/zones/{zone_id}/clusters", summary="Put clusters into a zone",
             permission=Permission.CLUSTERS_WRITE, body=ZoneAssign,
             response=ZoneAssigned)  # fmt: skip
async def assign_zone_clusters(call: Call, body: ZoneAssign) -> ZoneAssigned:
    zone_id = call.path_str("zone_id")
    try:
        added = await assign_zone(sessions_of(call), zone_id, body.cluster_ids)
    except StationError as exc:
        if str(exc).startswith("unknown zone"):
            raise not_found("zone") from None
        raise refused(exc) from None
    await audit(call, "zone.assign", f"zone:{zone_id}", {"added": added})
    return ZoneAssigned(added=added)


# --------------------------------------------------------------------------- lifecycle


@router.post("/fleet/clusters", summary="Register a cluster; returns its provisioning bundle",
             permission=Permission.CLUSTERS_WRITE, body=FleetClusterCreate,
             response=Provisioned, status=201, errors=(409,))  # fmt: skip
async def register_provisioned(call: Call, body: FleetClusterCreate) -> Provisioned:
    """The bundle's password is shown in this answer only."""
    spec = _spec(body)
    try:
        bundle = await register_cluster(sessions_of(call), spec, _endpoints(call))
    except StationError as exc:
        raise refused(exc, 409 if "already registered" in str(exc) else 422) from None
    await audit(call, "cluster.register", f"cluster:{spec.id}", {"kind": str(spec.kind)})
    return await _provisioned(call, bundle)


async def _existing(call: Call) -> str:
    cluster_id = call.path_str("cluster_id")
    async with sessions_of(call)() as db:
        if await db.get(Cluster, cluster_id) is None:
            raise not_found("cluster")
    return cluster_id


@router.post("/clusters/{cluster_id}/replace",
             summary="Replace a cluster by a new ICT cluster; returns the new one's bundle",
             permission=Permission.CLUSTERS_WRITE, body=FleetClusterCreate,
             response=Provisioned, status=201, errors=(409,))  # fmt: skip
async def replace_cluster_by(call: Call, body: FleetClusterCreate) -> Provisioned:
    old_id = await _existing(call)
    spec = _spec(body)
    try:
        bundle = await replace_cluster(sessions_of(call), old_id, spec, _endpoints(call))
    except StationError as exc:
        raise refused(exc, 409 if "already registered" in str(exc) else 422) from None
    await audit(call, "cluster.replace", f"cluster:{old_id}", {"by": spec.id})
    return await _provisioned(call, bundle)


@router.post("/clusters/{cluster_id}/retire", summary="Retire a cluster",
             permission=Permission.CLUSTERS_WRITE, response=ClusterOut)  # fmt: skip
async def retire_a_cluster(call: Call) -> ClusterOut:
    cluster_id = await _existing(call)
    try:
        cluster = await retire_cluster(sessions_of(call), cluster_id)
    except StationError as exc:
        raise refused(exc) from None
    await audit(call, "cluster.retire", f"cluster:{cluster_id}")
    return ClusterOut.model_validate(cluster, from_attributes=True)


@router.post("/clusters/{cluster_id}/move",
             summary="Change a cluster's village, zones and/or location",
             permission=Permission.CLUSTERS_WRITE, body=MoveBody, response=ClusterOut)  # fmt: skip
async def move_a_cluster(call: Call, body: MoveBody) -> ClusterOut:
    cluster_id = await _existing(call)
    try:
        cluster = await move_cluster(
            sessions_of(call),
            cluster_id,
            village_id=body.village_id,
            zones=body.zones,
            lat=body.lat,
            lon=body.lon,
        )
    except StationError as exc:
        raise refused(exc) from None
    await audit(call, "cluster.move", f"cluster:{cluster_id}", body.model_dump(exclude_none=True))
    return ClusterOut.model_validate(cluster, from_attributes=True)


@router.post("/clusters/{cluster_id}/identify",
             summary="Play the identify tone on a cluster (sent through the broker)",
             permission=Permission.CLUSTERS_WRITE, body=IdentifyBody, response=IdentifySent,
             status=202, errors=(409, 503))  # fmt: skip
async def identify_cluster(call: Call, body: IdentifyBody) -> IdentifySent:
    cluster_id = await _existing(call)
    now = datetime.now(UTC)
    command = IdentifyCommand(
        id=f"identify-{secrets.token_hex(8)}",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        seconds=body.seconds,
        tone_hz=body.tone_hz,
    )
    async with sessions_of(call)() as db:
        cluster = await db.get(Cluster, cluster_id)
    assert cluster is not None
    if cluster.kind not in (ClusterKind.ICT, ClusterKind.BRIDGE) or cluster.status == "retired":
        raise ApiError(409, f"cluster {cluster_id} cannot play a tone ({cluster.kind}, "
                       f"{cluster.status})")  # fmt: skip
    try:
        await call.app[keys.GATEWAY].send(cluster_id, command, timeout=10)
    except (MqttError, TimeoutError, OSError) as exc:
        raise ApiError(503, f"the broker did not take the command: {exc}") from None
    await audit(call, "cluster.identify", f"cluster:{cluster_id}", {"command": command.id})
    return IdentifySent(command_id=command.id, cluster_id=cluster_id, expires_at=command.expires_at)


# --------------------------------------------------------------------------- import, reports


async def _csv_text(call: Call) -> str:
    request = call.request
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send multipart/form-data with a 'file' part")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > _MAX_CSV:
                    raise ApiError(413, "CSV over 2 MB", title="Content Too Large")
            return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise field_error("file", "the CSV must be UTF-8") from None
    except (HttpProcessingError, ValueError) as exc:
        raise ApiError(400, f"malformed multipart body: {exc}", title="Bad Request") from None
    raise field_error("file", "a 'file' part is required")


@router.post("/fleet/import", summary="Import villages or clusters from CSV (multipart: file)",
             permission=Permission.CLUSTERS_WRITE, query=ImportQuery, upload=True,
             response=ImportOut, errors=(415,))  # fmt: skip
async def import_fleet_csv(call: Call, query: ImportQuery) -> ImportOut:
    """Each row is its own transaction: bad rows are reported (line, id, reason), good rows kept."""
    text = await _csv_text(call)
    if "\x00" in text:
        raise field_error("file", "NUL characters are refused")
    run = import_clusters if query.kind == "clusters" else import_villages
    try:
        report = await run(sessions_of(call), text)
    except StationError as exc:
        raise refused(exc) from None
    except csv.Error as exc:
        raise ApiError(422, f"unreadable CSV: {exc}") from None
    if query.kind == "clusters" and report.imported:
        call.app[keys.GATEWAY].remember(report.imported)
    await audit(call, f"{query.kind[:-1]}.import", f"import:{query.kind}",
                {"imported": len(report.imported), "errors": len(report.errors)})  # fmt: skip
    return ImportOut(
        imported=report.imported,
        errors=len(report.errors),
        rows=[ImportRow(line=r.line, id=r.id, error=r.error) for r in report.rows],
    )


@router.get("/fleet/coverage", summary="Villages with their working and broken clusters",
            permission=Permission.READ, response=CoverageOut)  # fmt: skip
async def fleet_coverage(call: Call) -> CoverageOut:
    rows = await coverage(sessions_of(call))
    async with sessions_of(call)() as db:
        where = {v.id: v for v in (await db.exec(select(Village))).all()}
    villages = [
        VillageCoverageOut(
            village_id=r.village_id,
            name=r.name,
            households=r.households,
            lat=where[r.village_id].lat if r.village_id in where else None,
            lon=where[r.village_id].lon if r.village_id in where else None,
            covered=r.covered,
            working=r.working,
            not_working=r.not_working,
        )
        for r in rows
    ]
    covered = sum(v.covered for v in villages)
    return CoverageOut(villages=villages, covered=covered, uncovered=len(villages) - covered)


@router.get("/alerts", summary="Cluster alerts (open by default)", permission=Permission.READ,
            query=AlertQuery, response=Page[AlertOut])  # fmt: skip
async def list_cluster_alerts(call: Call, query: AlertQuery) -> Page[AlertOut]:
    stmt = select(Alert).order_by(col(Alert.raised_at).desc(), col(Alert.id).desc())
    if query.state == "open":
        stmt = stmt.where(col(Alert.cleared_at).is_(None))
    if query.cluster_id is not None:
        stmt = stmt.where(Alert.cluster_id == query.cluster_id)
    async with sessions_of(call)() as db:
        return await paginate(
            db, stmt, query, lambda a: AlertOut.model_validate(a, from_attributes=True)
        )
