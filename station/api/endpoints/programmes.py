"""Programmes [chương trình]: create, list, read; approvals [phê duyệt]."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from station._services import StationError, create_programme
from station.db import Programme, ProgrammeApproval, ProgrammeItem, User

from .._approval import programme_version
from .._audit import audit, audit_in
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError
from .._roles import Permission
from ._common import Id, not_found, refused, sessions_of

router = ApiRouter("programmes", "Ordered lists of media items, and their approval")


class ProgrammeOut(BaseModel):
    id: int
    title: str
    version: int
    media_ids: list[int]
    approved: bool = Field(description="the current version is approved")
    created_at: datetime


class ProgrammeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    media_ids: Annotated[list[Id], Field(min_length=1, max_length=200)]


class ProgrammeQuery(ListQuery):
    q: str | None = Field(default=None, max_length=100, description="title contains")


class ApprovalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=1_000_000, description="the version you reviewed")


class ApprovalOut(BaseModel):
    programme_id: int
    version: int
    approved_by: int
    approved_by_name: str
    approved_at: datetime


async def _out(call: Call, programme: Programme) -> ProgrammeOut:
    assert programme.id is not None
    version = programme_version(programme)
    async with sessions_of(call)() as db:
        media = await db.exec(
            select(ProgrammeItem.media_id)
            .where(ProgrammeItem.programme_id == programme.id)
            .order_by(col(ProgrammeItem.position))
        )
        approved = (
            await db.exec(
                select(ProgrammeApproval.id).where(
                    ProgrammeApproval.programme_id == programme.id,
                    ProgrammeApproval.version == version,
                )
            )
        ).first()
        return ProgrammeOut(
            id=programme.id,
            title=programme.title,
            version=version,
            media_ids=[m for m in media.all() if m is not None],
            approved=approved is not None,
            created_at=programme.created_at,
        )


async def _load(call: Call) -> Programme:
    async with sessions_of(call)() as db:
        programme = await db.get(Programme, call.path_int("programme_id"))
    if programme is None:
        raise not_found("programme")
    return programme


@router.get(
    "/programmes",
    summary="List programmes",
    permission=Permission.READ,
    query=ProgrammeQuery,
    response=Page[ProgrammeOut],
)
async def list_programmes(call: Call, query: ProgrammeQuery) -> Page[ProgrammeOut]:
    stmt = select(Programme).order_by(col(Programme.id).desc())
    if query.q:
        stmt = stmt.where(col(Programme.title).ilike(f"%{query.q}%"))
    async with sessions_of(call)() as db:
        page = await paginate(db, stmt, query, lambda p: p)
    items = [await _out(call, p) for p in page.items]
    return Page[ProgrammeOut](items=items, total=page.total, limit=page.limit, offset=page.offset)


@router.get(
    "/programmes/{programme_id:int}",
    summary="Read a programme",
    permission=Permission.READ,
    response=ProgrammeOut,
)
async def get_programme(call: Call) -> Reply:
    out = await _out(call, await _load(call))
    return Reply(out, etag=etag_of(out))


@router.post(
    "/programmes",
    summary="Create a programme from media items",
    permission=Permission.PROGRAMMES_WRITE,
    body=ProgrammeCreate,
    response=ProgrammeOut,
    status=201,
)
async def create_programme_endpoint(call: Call, body: ProgrammeCreate) -> ProgrammeOut:
    try:
        programme = await create_programme(sessions_of(call), body.title, body.media_ids)
    except StationError as exc:
        raise refused(exc) from None
    await audit(call, "programme.create", f"programme:{programme.id}", {"title": body.title})
    return await _out(call, programme)


@router.get(
    "/programmes/{programme_id:int}/approvals",
    summary="Approvals of a programme, every version",
    permission=Permission.READ,
    response=Page[ApprovalOut],
)
async def list_approvals(call: Call) -> Page[ApprovalOut]:
    programme = await _load(call)
    async with sessions_of(call)() as db:
        rows = (
            await db.exec(
                select(ProgrammeApproval, User.username)
                .join(User, col(User.id) == col(ProgrammeApproval.approved_by))
                .where(ProgrammeApproval.programme_id == programme.id)
                .order_by(col(ProgrammeApproval.version))
            )
        ).all()
    items = [
        ApprovalOut(
            programme_id=a.programme_id,
            version=a.version,
            approved_by=a.approved_by,
            approved_by_name=name,
            approved_at=a.approved_at,
        )
        for a, name in rows
    ]
    return Page[ApprovalOut](items=items, total=len(items), limit=len(items), offset=0)


@router.post(
    "/programmes/{programme_id:int}/approvals",
    summary="Approve a programme version for air",
    permission=Permission.APPROVE,
    body=ApprovalCreate,
    response=ApprovalOut,
    status=201,
    errors=(409,),
)
async def approve(call: Call, body: ApprovalCreate) -> ApprovalOut:
    """Only the programme's current version can be approved (409 otherwise: it was edited
    since you reviewed it)."""
    programme = await _load(call)
    assert programme.id is not None
    current = programme_version(programme)
    if body.version != current:
        raise ApiError(409, f"the current version is {current}, not {body.version}")
    approval = ProgrammeApproval(
        programme_id=programme.id, version=current, approved_by=call.user.user_id
    )
    async with sessions_of(call)() as db:
        db.add(approval)
        audit_in(db, call, "programme.approve", f"programme:{programme.id}", {"version": current})
        try:
            await db.commit()
        except IntegrityError:
            raise ApiError(409, f"version {current} is already approved") from None
        await db.refresh(approval)
    return ApprovalOut(
        programme_id=approval.programme_id,
        version=approval.version,
        approved_by=approval.approved_by,
        approved_by_name=call.user.username,
        approved_at=approval.approved_at,
    )


@router.delete(
    "/programmes/{programme_id:int}/approvals/{version:int}",
    summary="Withdraw an approval",
    permission=Permission.APPROVE,
)
async def unapprove(call: Call) -> None:
    programme = await _load(call)
    version = call.path_int("version")
    async with sessions_of(call)() as db:
        approval = (
            await db.exec(
                select(ProgrammeApproval).where(
                    ProgrammeApproval.programme_id == programme.id,
                    ProgrammeApproval.version == version,
                )
            )
        ).first()
        if approval is None:
            raise not_found("approval")
        await db.delete(approval)
        audit_in(db, call, "programme.unapprove", f"programme:{programme.id}", {"version": version})
        await db.commit()
