"""The cluster lifecycle for technicians: register (provisioning bundle once), reissue
credentials, replace, retire, move, alerts and the identify tone. Villages, zones, coverage and
the CSV import: villages.py."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from devices import MqttError
from devices.protocol import IdentifyCommand
from station import _keys as keys
from station._provisioning import endpoints_for
from station._registry import (
    ClusterSpec,
    Endpoints,
    ProvisioningBundle,
    move_cluster,
    parse_spec,
    provision_cluster,
    register_cluster,
    replace_cluster,
    retire_cluster,
)
from station._services import StationError
from station.db import Alert, AlertKind, Cluster, ClusterKind, InstalledAs

from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import ClusterId, not_found, refused, sessions_of
from .clusters import ClusterOut

router = ApiRouter("fleet", "The cluster lifecycle: register, replace, retire, move; alerts")

IdStr = ClusterId


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
    sim_msisdn: str | None = Field(
        default=None, max_length=24, description="SIM phone number, e.g. 0912345678 or +84..."
    )
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
    return endpoints_for(call.app[keys.SETTINGS])


def _spec(body: FleetClusterCreate) -> ClusterSpec:
    try:
        return parse_spec(body.model_dump(exclude_none=True))
    except StationError as exc:
        if str(exc).startswith("sim_msisdn"):
            raise field_error("sim_msisdn", str(exc), code=exc.code, params=exc.params) from None
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
    await call.app[keys.ACCESS].refresh()  # the old cluster's login and sessions end now
    await audit(call, "cluster.replace", f"cluster:{old_id}", {"by": spec.id})
    return await _provisioned(call, bundle)


@router.post("/clusters/{cluster_id}/credentials",
             summary="Issue new broker credentials to a cluster; the old password stops at once",
             permission=Permission.CLUSTERS_WRITE, response=Provisioned, status=201,
             errors=(409,))  # fmt: skip
async def reissue_credentials(call: Call) -> Provisioned:
    """A new password (in this answer only, like registration's bundle). The broker refuses
    the old one from this answer on (its credentials are refreshed before answering), and a
    session already connected with it is closed (embedded broker; Mosquitto when
    ``devices.mosquitto_pid_file`` lets the station reload it). Legacy fm/wired clusters never
    connect and retired ones may not: 409."""
    cluster_id = await _existing(call)
    try:
        bundle = await provision_cluster(sessions_of(call), cluster_id, _endpoints(call))
    except StationError as exc:
        raise refused(exc, 409) from None
    await call.app[keys.ACCESS].refresh()
    await audit(call, "cluster.credentials", f"cluster:{cluster_id}")
    return await _provisioned(call, bundle)


@router.post("/clusters/{cluster_id}/retire", summary="Retire a cluster",
             permission=Permission.CLUSTERS_WRITE, response=ClusterOut)  # fmt: skip
async def retire_a_cluster(call: Call) -> ClusterOut:
    cluster_id = await _existing(call)
    try:
        cluster = await retire_cluster(sessions_of(call), cluster_id)
    except StationError as exc:
        raise refused(exc) from None
    await call.app[keys.ACCESS].refresh()  # its login and connected sessions end now
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
                       f"{cluster.status})", code="cluster_cannot_identify",
                       cluster_id=cluster_id)  # fmt: skip
    try:
        await call.app[keys.GATEWAY].send(cluster_id, command, timeout=10)
    except (MqttError, TimeoutError, OSError) as exc:
        raise ApiError(
            503, f"the broker did not take the command: {exc}", code="broker_unavailable"
        ) from None

    await audit(call, "cluster.identify", f"cluster:{cluster_id}", {"command": command.id})
    return IdentifySent(command_id=command.id, cluster_id=cluster_id, expires_at=command.expires_at)


# --------------------------------------------------------------------------- alerts


@router.get("/alerts", summary="Cluster alerts (open by default)", permission=Permission.READ,
            query=AlertQuery, response=Page[AlertOut])  # fmt: skip
async def list_cluster_alerts(call: Call, query: AlertQuery) -> Page[AlertOut]:
    stmt = select(Alert).order_by(col(Alert.raised_at).desc(), col(Alert.id).desc())
    stmt = stmt.where(col(Alert.cluster_id).is_not(None))  # live mounts': GET /live/alerts
    if query.state == "open":
        stmt = stmt.where(col(Alert.cleared_at).is_(None))
    if query.cluster_id is not None:
        stmt = stmt.where(Alert.cluster_id == query.cluster_id)
    async with sessions_of(call)() as db:
        return await paginate(
            db, stmt, query, lambda a: AlertOut.model_validate(a, from_attributes=True)
        )
