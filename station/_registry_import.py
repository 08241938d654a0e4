"""Bulk import of villages and clusters from CSV, and the coverage report.

Import is per row: each row is validated and written in its own transaction, so a bad row is
reported (line number, id, reason) and never half-written, and the good rows are kept. Imported
clusters get no credentials: ``loaxa cluster provision ID`` issues them when the technician is
at the device. Each imported cluster's status history (``cluster_status_changes``) starts with
its registration row, written in the row's transaction at the time of the import: what it did
before is unknown, so the inventory report counts its availability from then.

CSV formats (UTF-8, header row, column order free, unknown columns refused):

- villages: ``id,name,households,lat,lon,note`` (``id`` and ``name`` required)
- clusters: ``id,name,kind,village,zones,lat,lon,bridge,zone_code,model,serial,imei,iccid,
  sim_msisdn,firmware,installed_on,installed_as,status,replaces,note``; ``id`` required;
  ``sim_msisdn`` the SIM's subscriber number (0912345678 or +84912345678); ``kind`` is
  ict|bridge|fm|wired (default ict); ``zones`` separated by ``;``; ``installed_on`` is
  YYYY-MM-DD; ``installed_as`` new_station|replacement|extension; ``status`` working|faulty|
  retired (default working); fm/wired rows need ``bridge``, defined on an earlier row or before.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from station.db import Cluster, ClusterKind, ClusterStatus, ClusterZone, Village

from ._registry import (
    LEGACY,
    NOT_WORKING,
    _check_links,
    _row_from,
    add_village,
    note_status_change,
    parse_spec,
)
from ._services import Sessions, StationError

VILLAGE_COLUMNS = ("id", "name", "households", "lat", "lon", "note")
CLUSTER_COLUMNS = (
    "id", "name", "kind", "village", "zones", "lat", "lon", "bridge", "zone_code", "model",
    "serial", "imei", "iccid", "sim_msisdn", "firmware", "installed_on", "installed_as",
    "status", "replaces", "note",
)  # fmt: skip
_STATUS = {
    "": ClusterStatus.REGISTERED,
    "working": ClusterStatus.REGISTERED,
    "faulty": ClusterStatus.FAULTY,
    "retired": ClusterStatus.RETIRED,
}


@dataclass(frozen=True)
class RowResult:
    """One row of the report: ``error`` the English reason; ``code`` (one of
    ``station.api._problems.CODES``, None when unknown) and ``params`` say it for the console."""

    line: int
    id: str
    error: str | None = None
    code: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def refused(cls, line: int, row_id: str, exc: StationError) -> RowResult:
        return cls(line, row_id, str(exc), exc.code, dict(exc.params))


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)

    @property
    def imported(self) -> list[str]:
        return [r.id for r in self.rows if r.error is None]

    @property
    def errors(self) -> list[RowResult]:
        return [r for r in self.rows if r.error is not None]


def _read(text: str, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if "id" not in header:
        raise StationError("the CSV needs a header row with an 'id' column", code="csv_invalid")
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise StationError(
            f"unknown column(s) {', '.join(unknown)}; known: {', '.join(columns)}",
            code="csv_invalid",
        )
    reader.fieldnames = header
    return [
        (reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
        for row in reader
        if any((v or "").strip() for v in row.values() if isinstance(v, str))
    ]


def _number(row: dict[str, str], column: str, kind: type[int] | type[float]) -> Any:
    value = row.get(column, "")
    try:
        return kind(value) if value else None
    except ValueError as exc:
        raise StationError(
            f"not a number: {exc}", code="import_not_a_number", column=column, value=value
        ) from None


async def import_villages(sessions: Sessions, text: str) -> ImportReport:
    report = ImportReport()
    for line, row in _read(text, VILLAGE_COLUMNS):
        vid = row.get("id", "")
        try:
            households = _number(row, "households", int)
            lat = _number(row, "lat", float)
            lon = _number(row, "lon", float)
            await add_village(
                sessions, vid, row.get("name", ""), households, lat, lon, row.get("note", "")
            )
            report.rows.append(RowResult(line, vid))
        except StationError as exc:
            report.rows.append(RowResult.refused(line, vid, exc))
    return report


def _spec_fields(row: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.get("id", ""),
        "name": row.get("name", ""),
        "kind": row.get("kind") or "ict",
        "village_id": row.get("village") or None,
        "zones": [z.strip() for z in row.get("zones", "").split(";") if z.strip()],
        "bridge_id": row.get("bridge") or None,
        "note": row.get("note", ""),
    }
    hardware = ("model", "serial", "imei", "iccid", "sim_msisdn", "firmware")
    for key in ("lat", "lon", "zone_code", *hardware):
        data[key] = row.get(key) or None
    data["installed_on"] = row.get("installed_on") or None
    data["installed_as"] = row.get("installed_as") or None
    return data


async def import_clusters(
    sessions: Sessions, text: str, *, at: datetime | None = None
) -> ImportReport:
    """Import clusters row by row; ``at``: the registration time recorded in each imported
    cluster's status history (default: the time its row is written)."""
    report = ImportReport()
    for line, row in _read(text, CLUSTER_COLUMNS):
        cid = row.get("id", "")
        try:
            await _import_cluster(sessions, row, at or datetime.now(UTC))
            report.rows.append(RowResult(line, cid))
        except StationError as exc:
            report.rows.append(RowResult.refused(line, cid, exc))
    await _link_history(sessions, report.imported)
    return report


async def _import_cluster(sessions: Sessions, row: dict[str, str], now: datetime) -> None:
    status_text = row.get("status", "").lower()
    if status_text not in _STATUS:
        raise StationError(
            f"status must be working, faulty or retired, not {status_text!r}",
            code="cluster_status_invalid",
            value=status_text,
        )
    spec = parse_spec(_spec_fields(row))
    replaces = row.get("replaces") or None
    async with sessions() as db:
        if await db.get(Cluster, spec.id) is not None:
            raise StationError(
                f"cluster {spec.id} is already registered",
                code="cluster_exists",
                cluster_id=spec.id,
            )
        await _check_links(db, spec)
        cluster = _row_from(spec)
        cluster.status = _STATUS[status_text]
        cluster.replaces = replaces
        if cluster.status == ClusterStatus.RETIRED:
            cluster.retired_at = now
        db.add(cluster)
        await db.flush()
        db.add_all(ClusterZone(zone_id=z, cluster_id=spec.id) for z in spec.zones)
        note_status_change(db, cluster, None, "registered by CSV import", now)
        await db.commit()


async def _link_history(sessions: Sessions, imported: list[str]) -> None:
    """Set ``replaced_by`` on clusters that imported rows say they replace."""
    async with sessions() as db:
        for cid in imported:
            new = await db.get(Cluster, cid)
            if new is None or not new.replaces:
                continue
            old = await db.get(Cluster, new.replaces)
            if old is not None and old.replaced_by is None:
                old.replaced_by = cid
                db.add(old)
        await db.commit()


# --------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class VillageCoverage:
    village_id: str
    name: str
    households: int | None
    working: list[str]
    not_working: list[str]

    @property
    def covered(self) -> bool:
        return bool(self.working)


def is_working(cluster: Cluster, bridges: dict[str, Cluster]) -> bool:
    """In service: not faulty or retired; a legacy cluster also needs a working bridge."""
    if cluster.status in NOT_WORKING:
        return False
    if cluster.kind in LEGACY:
        bridge = bridges.get(cluster.bridge_id or "")
        return bridge is not None and bridge.status not in NOT_WORKING
    return True


async def coverage(sessions: Sessions) -> list[VillageCoverage]:
    """Every village with its working and broken clusters (retired ones are left out)."""
    async with sessions() as db:
        villages = (await db.exec(select(Village).order_by(Village.id))).all()
        clusters = (await db.exec(select(Cluster).order_by(Cluster.id))).all()
    bridges = {c.id: c for c in clusters if c.kind == ClusterKind.BRIDGE}
    result = []
    for village in villages:
        mine = [
            c for c in clusters if c.village_id == village.id and c.status != ClusterStatus.RETIRED
        ]
        result.append(
            VillageCoverage(
                village.id,
                village.name,
                village.households,
                [c.id for c in mine if is_working(c, bridges)],
                [c.id for c in mine if not is_working(c, bridges)],
            )
        )
    return result
