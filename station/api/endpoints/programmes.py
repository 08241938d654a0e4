"""Programmes [chương trình]: create, list, read, edit (If-Match); approvals [phê duyệt].

Items of every kind the domain has (media, jingle, relay, live, silence), a topic of the
catalogue and a language. An edit bumps the version, so an approved programme needs approval
again (``station/_programmes.py: edit_programme``, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from station import _keys as keys
from station._programmes import (
    ItemInput,
    ProgrammeEdit,
    ProgrammeRefused,
    add_programme,
    edit_programme,
    item_input,
)
from station._services import StationError
from station.db import MediaItem, Programme, ProgrammeApproval, ProgrammeItem, User

from .._approval import programme_version
from .._audit import audit, audit_in
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import Id, not_found, refused, sessions_of

router = ApiRouter("programmes", "Ordered lists of media items, and their approval")


ItemKindName = Literal["media", "jingle", "relay", "live", "silence"]
TopicCode = Annotated[str, Field(min_length=1, max_length=16)]
Language = Annotated[str, Field(min_length=2, max_length=16, description="vi, ctu (Cơ Tu), en")]
Title = Annotated[str, Field(min_length=1, max_length=200)]


class ProgrammeItemIn(BaseModel):
    """One item. media/jingle: ``media_id`` (the file's length, no duration); relay: ``url``
    (http, https, rtmp, rtsp) and ``duration_s``; live: ``duration_s`` and optionally the hub
    ``mount`` (default: the station's live source); silence: ``duration_s``."""

    model_config = ConfigDict(extra="forbid")
    kind: ItemKindName = "media"
    media_id: Id | None = None
    url: str | None = Field(default=None, max_length=2000)
    mount: str | None = Field(default=None, max_length=32)
    duration_s: float | None = Field(default=None, gt=0, le=86400, allow_inf_nan=False)
    title: str = Field(default="", max_length=200)


class ProgrammeItemOut(BaseModel):
    kind: ItemKindName
    media_id: int | None
    url: str | None
    mount: str | None
    duration_s: float | None = Field(description="as given; null for media and jingle items")
    length_s: float = Field(description="how long it plays (a media item: its file's length)")
    title: str


class ProgrammeOut(BaseModel):
    id: int
    title: str
    version: int
    media_ids: list[int] = Field(description="the media and jingle items' media, in order")
    items: list[ProgrammeItemOut]
    topics: list[str]
    language: str
    duration_s: float
    approved: bool = Field(description="the current version is approved")
    created_at: datetime


class ProgrammeCreate(BaseModel):
    """``items`` (any kind), or the older ``media_ids`` (media items only); not both."""

    model_config = ConfigDict(extra="forbid")
    title: Title
    items: Annotated[list[ProgrammeItemIn], Field(min_length=1, max_length=200)] | None = None
    media_ids: Annotated[list[Id], Field(min_length=1, max_length=200)] | None = None
    topics: Annotated[list[TopicCode], Field(max_length=20)] = []
    language: Language = "vi"


class ProgrammeReplace(BaseModel):
    """PUT: the whole programme; topics and language not sent become none and ``vi``."""

    model_config = ConfigDict(extra="forbid")
    title: Title
    items: Annotated[list[ProgrammeItemIn], Field(min_length=1, max_length=200)]
    topics: Annotated[list[TopicCode], Field(max_length=20)] = []
    language: Language = "vi"


class ProgrammeChange(BaseModel):
    """PATCH: only the fields sent change; ``items`` is replaced whole."""

    model_config = ConfigDict(extra="forbid")
    title: Title | None = None
    items: Annotated[list[ProgrammeItemIn], Field(min_length=1, max_length=200)] | None = None
    topics: Annotated[list[TopicCode], Field(max_length=20)] | None = None
    language: Language | None = None


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
        rows = await db.exec(
            select(ProgrammeItem, MediaItem.duration_ms)
            .outerjoin(MediaItem, col(MediaItem.id) == col(ProgrammeItem.media_id))
            .where(ProgrammeItem.programme_id == programme.id)
            .order_by(col(ProgrammeItem.position))
        )
        items = [_item_out(row, media_ms) for row, media_ms in rows.all()]
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
        media_ids=[i.media_id for i in items if i.media_id is not None],
        items=items,
        topics=list(programme.topics),
        language=programme.language,
        duration_s=sum(i.length_s for i in items),
        approved=approved is not None,
        created_at=programme.created_at,
    )


def _item_out(row: ProgrammeItem, media_ms: int | None) -> ProgrammeItemOut:
    given = item_input(row)
    ms = row.duration_ms if row.duration_ms is not None else media_ms or 0
    return ProgrammeItemOut(
        kind=row.kind.value,
        media_id=given.media_id,
        url=given.url,
        mount=given.mount,
        duration_s=given.duration_s,
        length_s=ms / 1000,
        title=row.title,
    )


class _Tag(BaseModel):
    id: int
    version: int


def programme_etag(programme: Programme) -> str:
    """Every edit bumps the version, so (id, version) names the content: the write checks
    If-Match against the row it locked, without reading the whole representation again."""
    assert programme.id is not None
    return etag_of(_Tag(id=programme.id, version=programme_version(programme)))


def _inputs(items: list[ProgrammeItemIn]) -> list[ItemInput]:
    return [
        ItemInput(i.kind, i.media_id, i.url, i.duration_s, i.title, i.mount or None) for i in items
    ]


async def _load(call: Call) -> Programme:
    async with sessions_of(call)() as db:
        programme = await db.get(Programme, call.path_int("programme_id"))
    if programme is None:
        raise not_found("programme")
    return programme


def _refusal(exc: StationError) -> ApiError:
    if isinstance(exc, ProgrammeRefused):
        if exc.field == "programme_id":
            return not_found("programme", **exc.params)
        return field_error(exc.field, str(exc), code=exc.code, params=exc.params)
    return refused(exc)


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
    programme = await _load(call)
    return Reply(await _out(call, programme), etag=programme_etag(programme))


@router.post(
    "/programmes",
    summary="Create a programme of media, jingle, relay, live and silence items",
    permission=Permission.PROGRAMMES_WRITE,
    body=ProgrammeCreate,
    response=ProgrammeOut,
    status=201,
)
async def create_programme_endpoint(call: Call, body: ProgrammeCreate) -> Reply:
    """Topics must be codes of the catalogue (``/topics``) still in use; 422 names the field
    (``items.1.url``, ``items.0.media_id``, ``topics``...)."""
    if (body.items is None) == (body.media_ids is None):
        raise field_error(
            "items",
            "give items, or media_ids (media items only), not both",
            code="programme_items_or_media",
        )
    items = (
        _inputs(body.items) if body.items else [ItemInput("media", m) for m in body.media_ids or []]
    )
    try:
        programme = await add_programme(
            sessions_of(call),
            body.title,
            items,
            topics=body.topics,
            language=body.language,
            catalogue_only=True,
        )
    except StationError as exc:
        raise _refusal(exc) from None
    details: dict[str, Any] = {"title": body.title, "items": len(items), "topics": body.topics}
    await audit(call, "programme.create", f"programme:{programme.id}", details)
    return Reply(await _out(call, programme), status=201, etag=programme_etag(programme))


async def _edit(call: Call, change: ProgrammeEdit) -> Reply:
    programme_id = call.path_int("programme_id")
    try:
        edited = await edit_programme(
            sessions_of(call),
            programme_id,
            change,
            call,
            check=lambda row: call.check_if_match(programme_etag(row)),
        )
    except StationError as exc:
        raise _refusal(exc) from None
    programme = edited.programme
    if edited.approval_reset:  # its schedules stop airing now, not at the next reconcile
        await _rebuild(call)
    return Reply(await _out(call, programme), etag=programme_etag(programme))


@router.put(
    "/programmes/{programme_id:int}",
    summary="Replace a programme (a new version: approval needed again)",
    permission=Permission.PROGRAMMES_WRITE,
    body=ProgrammeReplace,
    response=ProgrammeOut,
    if_match=True,
)
async def replace_programme(call: Call, body: ProgrammeReplace) -> Reply:
    """Send If-Match with the ETag you read (412 with ``current_etag`` if it changed since).
    Topics the programme already had stay allowed after they were retired."""
    items = _inputs(body.items)
    return await _edit(call, ProgrammeEdit(body.title, items, body.topics, body.language))


@router.patch(
    "/programmes/{programme_id:int}",
    summary="Change some fields of a programme (a new version: approval needed again)",
    permission=Permission.PROGRAMMES_WRITE,
    body=ProgrammeChange,
    response=ProgrammeOut,
    if_match=True,
)
async def change_programme(call: Call, body: ProgrammeChange) -> Reply:
    """Fields not sent keep their value; ``items`` is replaced whole. If-Match as for PUT."""
    items = None if body.items is None else _inputs(body.items)
    return await _edit(call, ProgrammeEdit(body.title, items, body.topics, body.language))


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
        raise ApiError(
            409,
            f"the current version is {current}, not {body.version}",
            code="programme_version_stale",
            current=current,
            sent=body.version,
        )
    approval = ProgrammeApproval(
        programme_id=programme.id, version=current, approved_by=call.user.user_id
    )
    async with sessions_of(call)() as db:
        db.add(approval)
        audit_in(db, call, "programme.approve", f"programme:{programme.id}", {"version": current})
        try:
            await db.commit()
        except IntegrityError:
            raise ApiError(
                409,
                f"version {current} is already approved",
                code="programme_already_approved",
                version=current,
            ) from None

        await db.refresh(approval)
    await _rebuild(call)
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
    """Its schedules stay but go off the air at once (the calendar shows them waiting for
    approval) until the version is approved again."""
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
    await _rebuild(call)


async def _rebuild(call: Call) -> None:
    """The dispatcher's feed leaves unapproved programmes out: rebuild it now, so sessions
    already sent ahead are withdrawn from the clusters' lists (as on a cancel), or go out."""
    dispatcher = call.app.get(keys.DISPATCHER)
    if dispatcher is not None:
        await dispatcher.reconcile()
