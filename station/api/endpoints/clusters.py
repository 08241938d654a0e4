"""Clusters [cụm loa]: list with filters, read, register, edit name/location/hardware."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from station import _keys as keys
from station._registry import ClusterEdit, edit_cluster, parse_edit
from station._services import StationError, register_clusters
from station.db import Cluster, ClusterKind, ClusterStatus, InstalledAs

from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import ClusterId, not_found, refused, sessions_of

router = ApiRouter("clusters", "Loudspeaker clusters of the station")


class ClusterOut(BaseModel):
    id: str
    name: str
    kind: ClusterKind
    status: ClusterStatus
    online: bool
    village_id: str | None
    firmware: str | None
    last_seen_at: datetime | None
    created_at: datetime
    lat: float | None = None
    lon: float | None = None
    bridge_id: str | None = None
    model: str | None = None
    serial: str | None = None
    imei: str | None = None
    iccid: str | None = None
    sim_msisdn: str | None = Field(
        default=None, description="the SIM's phone number [số thuê bao], national form"
    )
    installed_on: date | None = None
    installed_as: InstalledAs | None = None
    note: str = ""


class ClusterPatch(ClusterEdit):
    """Only the fields given change; ``null`` clears an optional one (``lat`` and ``lon``
    together). ``sim_msisdn`` takes 0912345678, +84912345678 or 84912345678 (spaces, dots and
    dashes allowed) and is stored as 0912345678."""


class ClusterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ClusterId
    name: str = Field(default="", max_length=200)


class ClusterQuery(ListQuery):
    status: ClusterStatus | None = None
    kind: ClusterKind | None = None
    online: bool | None = None
    village_id: str | None = Field(default=None, max_length=64)
    q: str | None = Field(default=None, max_length=100, description="id or name contains")


def _out(c: Cluster) -> ClusterOut:
    return ClusterOut.model_validate(c, from_attributes=True)


@router.get(
    "/clusters",
    summary="List clusters",
    permission=Permission.READ,
    query=ClusterQuery,
    response=Page[ClusterOut],
)
async def list_clusters(call: Call, query: ClusterQuery) -> Page[ClusterOut]:
    stmt = select(Cluster).order_by(col(Cluster.id))
    if query.status is not None:
        stmt = stmt.where(Cluster.status == query.status)
    if query.kind is not None:
        stmt = stmt.where(Cluster.kind == query.kind)
    if query.online is not None:
        stmt = stmt.where(Cluster.online == query.online)
    if query.village_id is not None:
        stmt = stmt.where(Cluster.village_id == query.village_id)
    if query.q:
        like = f"%{query.q}%"
        stmt = stmt.where(col(Cluster.id).ilike(like) | col(Cluster.name).ilike(like))
    async with sessions_of(call)() as db:
        return await paginate(db, stmt, query, _out)


@router.get(
    "/clusters/{cluster_id}",
    summary="Read a cluster",
    permission=Permission.READ,
    response=ClusterOut,
)
async def get_cluster(call: Call) -> Reply:
    async with sessions_of(call)() as db:
        cluster = await db.get(Cluster, call.path_str("cluster_id"))
    if cluster is None:
        raise not_found("cluster")
    out = _out(cluster)
    return Reply(out, etag=etag_of(out))


@router.post(
    "/clusters",
    summary="Register a cluster by id",
    permission=Permission.CLUSTERS_WRITE,
    body=ClusterCreate,
    response=ClusterOut,
    status=201,
    errors=(409,),
)
async def register_cluster(call: Call, body: ClusterCreate) -> ClusterOut:
    try:
        added = await register_clusters(sessions_of(call), [(body.id, body.name or body.id)])
    except StationError as exc:
        raise refused(exc) from None
    if not added:
        raise ApiError(
            409,
            f"cluster {body.id} is already registered",
            code="cluster_exists",
            cluster_id=body.id,
        )
    call.app[keys.GATEWAY].remember([body.id])  # accept its messages from now on
    async with sessions_of(call)() as db:
        cluster = await db.get(Cluster, body.id)
    assert cluster is not None
    await audit(call, "cluster.register", f"cluster:{body.id}", {"name": cluster.name})
    return _out(cluster)


@router.patch(
    "/clusters/{cluster_id}",
    summary="Edit a cluster's name, location and hardware record",
    permission=Permission.CLUSTERS_WRITE,
    body=ClusterPatch,
    response=ClusterOut,
    if_match=True,
)
async def edit_a_cluster(call: Call, body: ClusterPatch) -> Reply:
    """Village and zones: ``POST /clusters/{id}/move``. Send ``If-Match`` with the ETag of
    ``GET /clusters/{id}``: 412 with ``current_etag`` when it changed meanwhile."""
    cluster_id = call.path_str("cluster_id")
    changes = body.model_dump(include=body.model_fields_set)
    try:
        edit = parse_edit(changes)
    except StationError as exc:
        raise _edit_refusal(exc) from None

    def check(current: Cluster) -> None:
        call.check_if_match(etag_of(_out(current)))

    try:
        cluster = await edit_cluster(sessions_of(call), cluster_id, edit, check)
    except StationError as exc:
        if str(exc).startswith("unknown cluster"):
            raise not_found("cluster") from None
        raise refused(exc) from None
    await audit(call, "cluster.update", f"cluster:{cluster_id}",
                body.model_dump(mode="json", include=body.model_fields_set))  # fmt: skip
    out = _out(cluster)
    return Reply(out, etag=etag_of(out))


def _edit_refusal(exc: StationError) -> ApiError:
    text = str(exc)
    for name in ("sim_msisdn", "lat", "name"):
        if text.startswith(name) or f" {name} " in f" {text} ":
            return field_error(name, text, code=exc.code, params=exc.params)
    return refused(exc)
