"""Villages [thôn/bản] and zones for technicians: list, add, edit (ETag / If-Match), zone members,
coverage (villages with no working cluster) and the CSV import with its per-row report.

The CLI does the same through ``station/_registry.py`` and ``station/_registry_import.py``
(``loaxa village``, ``loaxa zone``, ``loaxa cluster import``, ``loaxa coverage``).
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import BodyPartReader
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.pool import NullPool
from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devices.protocol import is_valid_id
from station import _keys as keys
from station._registry import add_village, add_zone, assign_zone
from station._registry_import import coverage, import_clusters, import_villages
from station._services import Sessions, StationError
from station.db import ClusterZone, Village, Zone, create_engine_for, session_factory

from .._audit import audit, audit_in
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, Upload, etag_of
from .._paging import paginate
from .._problems import ApiError, code_of, field_error
from .._roles import Permission
from ._common import ClusterId, not_found, refused, sessions_of

router = ApiRouter("villages", "Villages, zones, coverage and the CSV import of the registry")

MAX_CSV = 2 * 1024 * 1024
CSV_TYPES = ("text/csv", "text/plain", "application/csv")


# --------------------------------------------------------------------------- models


class VillageOut(BaseModel):
    id: str
    name: str
    households: int | None
    lat: float | None
    lon: float | None
    note: str


class VillageQuery(ListQuery):
    q: str | None = Field(default=None, max_length=100, description="id or name contains")


class VillageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ClusterId
    name: str = Field(min_length=1, max_length=200)
    households: int | None = Field(default=None, ge=0, le=10_000_000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    note: str = Field(default="", max_length=2000)


class VillagePatch(BaseModel):
    """Fields to change; ``null`` clears households, lat and lon (lat and lon go together) and
    the note."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    households: int | None = Field(default=None, ge=0, le=10_000_000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    note: str | None = Field(default=None, max_length=2000)


class ZoneOut(BaseModel):
    id: str
    name: str
    clusters: list[str] = Field(default_factory=list, description="member cluster ids")


class ZoneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: ClusterId
    name: str = Field(default="", max_length=200)


class ZonePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class ZoneAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster_ids: list[ClusterId] = Field(min_length=1, max_length=500)


class ZoneAssigned(BaseModel):
    added: list[str]


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["clusters", "villages"] = "clusters"
    dry_run: bool = Field(
        default=False, description="check every row as the import would, then write nothing"
    )


class ImportRow(BaseModel):
    line: int
    id: str
    error: str | None = Field(description="why the row is refused (English)")
    code: str | None = Field(
        default=None, description="the refusal's problem code (see Problem.code), for clients"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="the code's parameters")


class ImportOut(BaseModel):
    kind: Literal["clusters", "villages"]
    dry_run: bool
    imported: list[str] = Field(description="rows written (on a dry run: rows that would be)")
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


class CoverageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uncovered: bool = Field(default=False, description="only villages with no working cluster")


class CoverageOut(BaseModel):
    villages: list[VillageCoverageOut]
    covered: int
    uncovered: int


# --------------------------------------------------------------------------- villages


def _village_out(v: Village) -> VillageOut:
    return VillageOut.model_validate(v, from_attributes=True)


def _path_id(call: Call, name: str, what: str) -> str:
    value = call.path_str(name)
    if not is_valid_id(value):
        raise not_found(what)
    return value


@router.get("/villages", summary="List villages", permission=Permission.READ,
            query=VillageQuery, response=Page[VillageOut])  # fmt: skip
async def list_villages(call: Call, query: VillageQuery) -> Page[VillageOut]:
    stmt = select(Village).order_by(col(Village.id))
    if query.q:
        like = f"%{query.q}%"
        stmt = stmt.where(col(Village.id).ilike(like) | col(Village.name).ilike(like))
    async with sessions_of(call)() as db:
        return await paginate(db, stmt, query, _village_out)


@router.post("/villages", summary="Add a village", permission=Permission.CLUSTERS_WRITE,
             body=VillageCreate, response=VillageOut, status=201, errors=(409,))  # fmt: skip
async def create_village(call: Call, body: VillageCreate) -> Reply:
    try:
        village = await add_village(
            sessions_of(call), body.id, body.name, body.households, body.lat, body.lon, body.note
        )
    except StationError as exc:
        raise refused(exc, 409 if "already exists" in str(exc) else 422) from None
    await audit(call, "village.create", f"village:{body.id}", {"name": village.name})
    out = _village_out(village)
    return Reply(out, etag=etag_of(out))


@router.get("/villages/{village_id}", summary="Read a village", permission=Permission.READ,
            response=VillageOut)  # fmt: skip
async def get_village(call: Call) -> Reply:
    village_id = _path_id(call, "village_id", "village")
    async with sessions_of(call)() as db:
        village = await db.get(Village, village_id)
    if village is None:
        raise not_found("village")
    out = _village_out(village)
    return Reply(out, etag=etag_of(out))


@router.patch("/villages/{village_id}", summary="Edit a village (send If-Match)",
              permission=Permission.CLUSTERS_WRITE, body=VillagePatch, response=VillageOut,
              if_match=True)  # fmt: skip
async def edit_village(call: Call, body: VillagePatch) -> Reply:
    village_id = _path_id(call, "village_id", "village")
    changes = body.model_dump(exclude_unset=True)
    if ("lat" in changes) != ("lon" in changes) or (changes.get("lat") is None) != (
        changes.get("lon") is None
    ):
        field = "lon" if "lat" in changes else "lat"
        raise field_error(field, "give lat and lon together", code="lat_lon_together")
    if "name" in changes and (changes["name"] is None or not changes["name"].strip()):
        raise field_error("name", "a village needs a name", code="village_name_needed")
    if "note" in changes and changes["note"] is None:
        changes["note"] = ""
    async with sessions_of(call)() as db:
        village = await db.get(Village, village_id)
        if village is None:
            raise not_found("village")
        call.check_if_match(etag_of(_village_out(village)))
        for key, value in changes.items():
            setattr(village, key, value.strip() if key == "name" else value)
        db.add(village)
        audit_in(db, call, "village.update", f"village:{village_id}", changes)
        await db.commit()
        await db.refresh(village)
    out = _village_out(village)
    return Reply(out, etag=etag_of(out))


# --------------------------------------------------------------------------- zones


async def _members(db: AsyncSession, zone_ids: list[str]) -> dict[str, list[str]]:
    rows = await db.exec(
        select(ClusterZone)
        .where(col(ClusterZone.zone_id).in_(zone_ids))
        .order_by(col(ClusterZone.cluster_id))
    )
    members: dict[str, list[str]] = {z: [] for z in zone_ids}
    for row in rows:
        members[row.zone_id].append(row.cluster_id)
    return members


async def _zone_out(db: AsyncSession, zone: Zone) -> ZoneOut:
    members = await _members(db, [zone.id])
    return ZoneOut(id=zone.id, name=zone.name, clusters=members[zone.id])


@router.get("/zones", summary="List zones with their member clusters",
            permission=Permission.READ, query=ListQuery, response=Page[ZoneOut])  # fmt: skip
async def list_zones(call: Call, query: ListQuery) -> Page[ZoneOut]:
    async with sessions_of(call)() as db:
        total = (await db.exec(select(func.count()).select_from(Zone))).one()
        zones = list(
            (
                await db.exec(
                    select(Zone).order_by(col(Zone.id)).offset(query.offset).limit(query.limit)
                )
            ).all()
        )
        members = await _members(db, [z.id for z in zones])
    items = [ZoneOut(id=z.id, name=z.name, clusters=members[z.id]) for z in zones]
    return Page[ZoneOut](items=items, total=total, limit=query.limit, offset=query.offset)


@router.post("/zones", summary="Add a zone", permission=Permission.CLUSTERS_WRITE,
             body=ZoneCreate, response=ZoneOut, status=201, errors=(409,))  # fmt: skip
async def create_zone(call: Call, body: ZoneCreate) -> ZoneOut:
    try:
        zone = await add_zone(sessions_of(call), body.id, body.name)
    except StationError as exc:
        raise refused(exc, 409 if "already exists" in str(exc) else 422) from None
    await audit(call, "zone.create", f"zone:{body.id}", {"name": zone.name})
    return ZoneOut(id=zone.id, name=zone.name, clusters=[])


@router.get("/zones/{zone_id}", summary="Read a zone and its members",
            permission=Permission.READ, response=ZoneOut)  # fmt: skip
async def get_zone(call: Call) -> Reply:
    zone_id = _path_id(call, "zone_id", "zone")
    async with sessions_of(call)() as db:
        zone = await db.get(Zone, zone_id)
        if zone is None:
            raise not_found("zone")
        out = await _zone_out(db, zone)
    return Reply(out, etag=etag_of(out))


@router.patch("/zones/{zone_id}", summary="Rename a zone (send If-Match)",
              permission=Permission.CLUSTERS_WRITE, body=ZonePatch, response=ZoneOut,
              if_match=True)  # fmt: skip
async def edit_zone(call: Call, body: ZonePatch) -> Reply:
    zone_id = _path_id(call, "zone_id", "zone")
    name = body.name.strip()
    if not name:
        raise field_error("name", "a zone needs a name", code="zone_name_needed")
    async with sessions_of(call)() as db:
        zone = await db.get(Zone, zone_id)
        if zone is None:
            raise not_found("zone")
        call.check_if_match(etag_of(await _zone_out(db, zone)))
        zone.name = name
        db.add(zone)
        audit_in(db, call, "zone.update", f"zone:{zone_id}", {"name": name})
        await db.commit()
        await db.refresh(zone)
        out = await _zone_out(db, zone)
    return Reply(out, etag=etag_of(out))


@router.post("/zones/{zone_id}/clusters", summary="Put clusters into a zone",
             permission=Permission.CLUSTERS_WRITE, body=ZoneAssign,
             response=ZoneAssigned)  # fmt: skip
async def assign_zone_clusters(call: Call, body: ZoneAssign) -> ZoneAssigned:
    """Unknown cluster ids are refused (422 naming them); members already there are kept."""
    zone_id = _path_id(call, "zone_id", "zone")
    try:
        added = await assign_zone(sessions_of(call), zone_id, body.cluster_ids)
    except StationError as exc:
        if str(exc).startswith("unknown zone"):
            raise not_found("zone") from None
        raise field_error("cluster_ids", str(exc), code=exc.code, params=exc.params) from None
    await audit(call, "zone.assign", f"zone:{zone_id}", {"added": added})
    return ZoneAssigned(added=added)


@router.delete("/zones/{zone_id}/clusters/{cluster_id}", summary="Take a cluster out of a zone",
               permission=Permission.CLUSTERS_WRITE)  # fmt: skip
async def remove_zone_cluster(call: Call) -> None:
    zone_id = _path_id(call, "zone_id", "zone")
    cluster_id = _path_id(call, "cluster_id", "zone member")
    async with sessions_of(call)() as db:
        if await db.get(ClusterZone, (zone_id, cluster_id)) is None:
            raise not_found("zone member")
        await db.exec(
            delete(ClusterZone).where(
                col(ClusterZone.zone_id) == zone_id, col(ClusterZone.cluster_id) == cluster_id
            )
        )
        audit_in(db, call, "zone.remove", f"zone:{zone_id}", {"cluster_id": cluster_id})
        await db.commit()


# --------------------------------------------------------------------------- coverage


@router.get("/fleet/coverage", summary="Villages with their working and broken clusters",
            permission=Permission.READ, query=CoverageQuery, response=CoverageOut)  # fmt: skip
async def fleet_coverage(call: Call, query: CoverageQuery) -> CoverageOut:
    """A village is covered when at least one of its clusters works (not faulty or retired; a
    legacy FM/wired set also needs a working bridge), as `loaxa coverage` says."""
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
    shown = [v for v in villages if not v.covered] if query.uncovered else villages
    return CoverageOut(villages=shown, covered=covered, uncovered=len(villages) - covered)


# --------------------------------------------------------------------------- CSV import


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise field_error("file", "the CSV must be UTF-8", code="csv_not_utf8") from None
    if "\x00" in text:
        raise field_error("file", "NUL characters are refused", code="nul_character")
    return text


async def _csv_text(call: Call) -> str:
    """The CSV from a multipart ``file`` part or a ``text/csv`` body, at most 2 MB."""
    request = call.request
    too_large = ApiError(
        413, "CSV over 2 MB", title="Content Too Large", code="upload_too_large", max_mb=2
    )
    if request.content_type in CSV_TYPES:
        if request.content_length is not None and request.content_length > MAX_CSV:
            raise too_large
        data = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            data += chunk
            if len(data) > MAX_CSV:
                raise too_large
        return _decode(bytes(data))
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send text/csv, or multipart/form-data with a 'file' part",
                       title="Unsupported Media Type", code="file_part_required")  # fmt: skip
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > MAX_CSV:
                    raise too_large
            return _decode(bytes(data))
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        raise ApiError(
            400, f"malformed multipart body: {exc}", title="Bad Request", code="multipart_malformed"
        ) from None
    raise field_error("file", "a 'file' part is required", code="file_part_required")


def _copy_sqlite(database: str) -> Path:
    """A consistent copy of a live SQLite database (the backup API reads one snapshot), in a new
    folder beside it; returns the copy's path."""
    source = Path(database).expanduser()
    folder = Path(tempfile.mkdtemp(prefix=".dry-run-", dir=source.parent))
    target = folder / "copy.db"
    with (
        closing(sqlite3.connect(source, timeout=30)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
    return target


@asynccontextmanager
async def _scratch(call: Call) -> AsyncIterator[Sessions]:
    """Sessions on a throw-away copy of the data, for a dry run that goes through exactly the
    checks of the real import and leaves nothing behind.

    PostgreSQL: one transaction whose commits are savepoints, rolled back at the end. SQLite:
    a copy of the database file (a long transaction there would hold the only write lock and
    stall the station's other writers), removed at the end.
    """
    app_engine = call.app[keys.ENGINE]
    if app_engine.dialect.name != "sqlite":
        async with app_engine.connect() as conn:
            outer = await conn.begin()
            try:
                yield async_sessionmaker(
                    bind=conn,
                    class_=AsyncSession,
                    expire_on_commit=False,
                    join_transaction_mode="create_savepoint",
                )
            finally:
                await outer.rollback()
        return
    database = make_url(call.app[keys.SETTINGS].database.url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ApiError(
            409, "dry runs need a database file or PostgreSQL", code="import_needs_database"
        )
    copy = await asyncio.to_thread(_copy_sqlite, database)
    try:
        engine = create_engine_for(f"sqlite:///{copy}", poolclass=NullPool)
        sa.event.listen(engine.sync_engine, "connect", _no_fsync)
        try:
            yield session_factory(engine)
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(shutil.rmtree, copy.parent, True)


def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=OFF")  # a scratch copy: speed over durability
    finally:
        cursor.close()


async def _run_import(sessions: Sessions, kind: str, text: str) -> ImportOut:
    run = import_clusters if kind == "clusters" else import_villages
    try:
        report = await run(sessions, text)
    except StationError as exc:
        raise field_error(
            "file", str(exc), code=exc.code or "csv_invalid", params=exc.params
        ) from None
    except csv.Error as exc:
        raise field_error("file", f"unreadable CSV: {exc}", code="csv_invalid") from None

    return ImportOut(
        kind="clusters" if kind == "clusters" else "villages",
        dry_run=False,
        imported=report.imported,
        errors=len(report.errors),
        rows=[
            ImportRow(line=r.line, id=r.id, error=r.error, code=code_of(r.code), params=r.params)
            for r in report.rows
        ],
    )


@router.post("/fleet/import",
             summary="Import villages or clusters from CSV (text/csv, or multipart: file)",
             permission=Permission.CLUSTERS_WRITE, query=ImportQuery,
             upload=Upload(file_type="text/csv", raw_types=CSV_TYPES),
             response=ImportOut, errors=(413, 415))  # fmt: skip
async def import_fleet_csv(call: Call, query: ImportQuery) -> ImportOut:
    """The CSV (UTF-8, at most 2 MB) is the raw body (``Content-Type: text/csv``; also
    ``application/csv`` or ``text/plain``) or the ``file`` part of a multipart/form-data body;
    any other type is 415. Each row is its own transaction: bad rows are reported (line, id,
    reason), good rows are kept. With ``dry_run=true`` nothing is written and the report says
    what would happen. Columns: docs/api.md; imported ICT clusters get credentials later
    (``provision``)."""
    text = await _csv_text(call)
    if query.dry_run:
        async with _scratch(call) as sessions:
            out = await _run_import(sessions, query.kind, text)
        return out.model_copy(update={"dry_run": True})
    out = await _run_import(sessions_of(call), query.kind, text)
    if query.kind == "clusters" and out.imported:
        call.app[keys.GATEWAY].remember(out.imported)
    await audit(call, f"{query.kind[:-1]}.import", f"import:{query.kind}",
                {"imported": len(out.imported), "errors": out.errors})  # fmt: skip
    return out
