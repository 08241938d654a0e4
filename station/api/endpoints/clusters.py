"""Clusters [cụm loa]: list with filters, read, register."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from station import _keys as keys
from station._services import StationError, register_clusters
from station.db import Cluster, ClusterKind, ClusterStatus

from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError
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
        raise ApiError(409, f"cluster {body.id} is already registered")
    call.app[keys.GATEWAY].remember([body.id])  # accept its messages from now on
    async with sessions_of(call)() as db:
        cluster = await db.get(Cluster, body.id)
    assert cluster is not None
    await audit(call, "cluster.register", f"cluster:{body.id}", {"name": cluster.name})
    return _out(cluster)
