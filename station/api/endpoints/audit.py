"""The audit log [nhật ký thao tác]: query and CSV export. There is no write endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from station.db import AuditEntry

from .._audit import audit_csv
from .._framework import ApiRouter, Call, ListQuery, Page
from .._paging import paginate
from .._roles import Permission
from ._common import Id, sessions_of

router = ApiRouter("audit", "Who did what, when, from where (append-only)")
CSV_MAX_ROWS = 100_000


class AuditOut(BaseModel):
    id: int
    at: datetime
    user_id: int | None
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    ip: str
    user_agent: str


class AuditQuery(ListQuery):
    action: str | None = Field(
        default=None, max_length=64, description="exact, or a prefix ending in '.' (login.)"
    )
    actor: str | None = Field(default=None, max_length=64)
    user_id: Id | None = None
    target: str | None = Field(default=None, max_length=200)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


def _filtered(query: AuditQuery) -> SelectOfScalar[AuditEntry]:
    stmt = select(AuditEntry).order_by(col(AuditEntry.id).desc())
    if query.action:
        if query.action.endswith("."):
            stmt = stmt.where(col(AuditEntry.action).startswith(query.action, autoescape=True))
        else:
            stmt = stmt.where(AuditEntry.action == query.action)
    if query.actor:
        stmt = stmt.where(AuditEntry.actor == query.actor)
    if query.user_id is not None:
        stmt = stmt.where(AuditEntry.user_id == query.user_id)
    if query.target:
        stmt = stmt.where(AuditEntry.target == query.target)
    if query.since is not None:
        stmt = stmt.where(col(AuditEntry.at) >= query.since)
    if query.until is not None:
        stmt = stmt.where(col(AuditEntry.at) < query.until)
    return stmt


def _out(e: AuditEntry) -> AuditOut:
    return AuditOut.model_validate(e, from_attributes=True)


@router.get(
    "/audit",
    summary="Query the audit log (newest first)",
    permission=Permission.AUDIT_READ,
    query=AuditQuery,
    response=Page[AuditOut],
)
async def list_audit(call: Call, query: AuditQuery) -> Page[AuditOut]:
    async with sessions_of(call)() as db:
        return await paginate(db, _filtered(query), query, _out)


class AuditExportQuery(AuditQuery):
    limit: int = Field(default=CSV_MAX_ROWS, ge=1, le=CSV_MAX_ROWS)


@router.get(
    "/audit.csv",
    summary="Export the audit log as CSV (same filters)",
    permission=Permission.AUDIT_READ,
    query=AuditExportQuery,
    media_type="text/csv",
)
async def export_audit(call: Call, query: AuditExportQuery) -> web.StreamResponse:
    async with sessions_of(call)() as db:
        rows = (await db.exec(_filtered(query).limit(query.limit).offset(query.offset))).all()
    return web.Response(
        text=audit_csv(rows),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="loaxa-audit.csv"'},
    )
