"""Bulk import of villages and clusters from CSV, and the coverage report.

Import is per row: each row is validated and written in its own transaction, so a bad row is
reported (line number, id, reason) and never half-written, and the good rows are kept. Imported
clusters get no credentials: ``loaxa cluster provision ID`` issues them when the technician is
at the device.

CSV formats (UTF-8, header row, column order free, unknown columns refused):

- villages: ``id,name,households,lat,lon,note`` (``id`` and ``name`` required)
- clusters: ``id,name,kind,village,zones,lat,lon,bridge,zone_code,model,serial,imei,iccid,
  firmware,installed_on,installed_as,status,replaces,note``; ``id`` required; ``kind`` is
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

from ._registry import LEGACY, NOT_WORKING, _check_links, _row_from, add_village, parse_spec
from ._services import Sessions, StationError

VILLAGE_COLUMNS = ("id", "name", "households", "lat", "lon", "note")
CLUSTER_COLUMNS = (
    "id", "name", "kind", "village", "zones", "lat", "lon", "bridge", "zone_code", "model",
    "serial", "imei", "iccid", "firmware", "installed_on", "installed_as", "status",
    "replaces", "note",
)  # fmt: skip
_STATUS = {
    "": ClusterStatus.REGISTERED,
    "working": ClusterStatus.REGISTERED,
    "faulty": ClusterStatus.FAULTY,
    "retired": ClusterStatus.RETIRED,
}


@dataclass(frozen=True)
class RowResult:
    line: int
    id: str
    error: str | None = None


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
        raise StationError("the CSV needs a header row with an 'id' column")
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise StationError(f"unknown column(s) {', '.join(unknown)}; known: {', '.join(columns)}")
    reader.fieldnames = header
    return [
        (reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
        for row in reader
        if any((v or "").strip() for v in row.values() if isinstance(v, str))
    ]


def _number(value: str, kind: type[int] | type[float]) -> Any:
    return kind(value) if value else None


async def import_villages(sessions: Sessions, text: str) -> ImportReport:
    report = ImportReport()
    for line, row in _read(text, VILLAGE_COLUMNS):
        vid = row.get("id", "")
        try:
            try:
                households = _number(row.get("households", ""), int)
                lat = _number(row.get("lat", ""), float)
                lon = _number(row.get("lon", ""), float)
            except ValueError as exc:
                raise StationError(f"not a number: {exc}") from None
            await add_village(
                sessions, vid, row.get("name", ""), households, lat, lon, row.get("note", "")
            )
            report.rows.append(RowResult(line, vid))
        except StationError as exc:
            report.rows.append(RowResult(line, vid, str(exc)))
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
    for key in ("lat", "lon", "zone_code", "model", "serial", "imei", "iccid", "firmware"):
        data[key] = row.get(key) or None
    data["installed_on"] = row.get("installed_on") or None
    data["installed_as"] = row.get("installed_as") or None
    return data


async def import_clusters(sessions: Sessions, text: str) -> ImportReport:
    report = ImportReport()
    for line, row in _read(text, CLUSTER_COLUMNS):
        cid = row.get("id", "")
        try:
            await _import_cluster(sessions, row)
            report.rows.append(RowResult(line, cid))
        except StationError as exc:
            report.rows.append(RowResult(line, cid, str(exc)))
    await _link_history(sessions, report.imported)
    return report


async def _import_cluster(sessions: Sessions, row: dict[str, str]) -> None:
    status_text = row.get("status", "").lower()
    if status_text not in _STATUS:
        raise StationError(f"status must be working, faulty or retired, not {status_text!r}")
    spec = parse_spec(_spec_fields(row))
    replaces = row.get("replaces") or None
    async with sessions() as db:
        if await db.get(Cluster, spec.id) is not None:
            raise StationError(f"cluster {spec.id} is already registered")
        await _check_links(db, spec)
        cluster = _row_from(spec)
        cluster.status = _STATUS[status_text]
        cluster.replaces = replaces
        if cluster.status == ClusterStatus.RETIRED:
            cluster.retired_at = datetime.now(UTC)
        db.add(cluster)
        await db.flush()
        db.add_all(ClusterZone(zone_id=z, cluster_id=spec.id) for z in spec.zones)
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
