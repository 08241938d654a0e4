"""The topic catalogue [danh mục nhiệm vụ thông tin, tuyên truyền] (Phụ lục 01), editable.

Everyone who can read sees it; admins and approvers (permission ``approve``) edit it. A retired
topic is kept for history. Errors: 404 unknown code, 409 duplicate code / already retired,
422 invalid input.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from station.db import Topic
from station.reports._topics import (
    TopicError,
    TopicInput,
    add_topic,
    get_topic,
    kind_of,
    list_topics,
    rename_topic,
    retire_topic,
)

from .._framework import ApiRouter, Call, Reply, etag_of
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import sessions_of

router = ApiRouter("topics", "The topic catalogue (Phụ lục 01) that programmes are tagged with")

_CODE = r"^[A-Z]{1,4}\.[0-9]{1,3}[a-z]?$"


class TopicOut(BaseModel):
    code: str
    title_vi: str
    title_en: str
    kind: str = Field(description="period (section I) or thematic (section II)")
    active: bool = Field(description="false: retired, kept for history")
    valid_from: dt.date | None
    valid_to: dt.date | None


class TopicQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_retired: bool = False
    on: dt.date | None = Field(default=None, description="only topics valid on this day")


class TopicList(BaseModel):
    items: list[TopicOut]


class TopicCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=_CODE, description="e.g. II.10; never reused")
    title_vi: str = Field(min_length=1, max_length=500)
    title_en: str = Field(default="", max_length=500)
    kind: Literal["period", "thematic"] = "thematic"
    year: int | None = Field(default=None, ge=2000, le=2100, description="valid this year")
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    @model_validator(mode="after")
    def _span(self) -> Self:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class TopicRename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title_vi: str | None = Field(default=None, min_length=1, max_length=500)
    title_en: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.title_vi is None and self.title_en is None:
            raise ValueError("give title_vi and/or title_en")
        return self


class TopicRetire(BaseModel):
    model_config = ConfigDict(extra="forbid")
    valid_to: dt.date | None = Field(default=None, description="last valid day (default: open)")


def _out(t: Topic) -> TopicOut:
    return TopicOut(
        code=t.code,
        title_vi=t.title_vi,
        title_en=t.title_en,
        kind=kind_of(t),
        active=t.active,
        valid_from=t.valid_from,
        valid_to=t.valid_to,
    )


_FIELD_CODES = {
    "code": "topic_code_invalid",
    "title_vi": "topic_title_invalid",
    "title_en": "topic_title_invalid",
    "valid_to": "topic_dates_invalid",
}


def _problem(exc: TopicError, topic: str = "") -> ApiError:
    if exc.status == 422:
        return field_error(exc.field or "body", exc.detail, code=_FIELD_CODES.get(exc.field))
    code = exc.code or ("topic_not_found" if exc.status == 404 else None)
    return ApiError(exc.status, exc.detail, code=code, topic=topic or None)


def _reply(t: Topic, status: int = 200) -> Reply:
    out = _out(t)
    return Reply(out, status=status, etag=etag_of(out))


@router.get(
    "/topics",
    summary="The topic catalogue (active topics; retired ones on request)",
    permission=Permission.READ,
    query=TopicQuery,
    response=TopicList,
)
async def list_topic_catalogue(call: Call, query: TopicQuery) -> TopicList:
    rows = await list_topics(sessions_of(call), include_retired=query.include_retired, on=query.on)
    return TopicList(items=[_out(t) for t in rows])


@router.get(
    "/topics/{code}",
    summary="Read a topic (also a retired one)",
    permission=Permission.READ,
    response=TopicOut,
    errors=(404,),
)
async def get_topic_entry(call: Call) -> Reply:
    try:
        return _reply(await get_topic(sessions_of(call), call.path_str("code")))
    except TopicError as exc:
        raise _problem(exc, call.path_str("code")) from None


@router.post(
    "/topics",
    summary="Add a topic (admin, approver)",
    permission=Permission.APPROVE,
    body=TopicCreate,
    response=TopicOut,
    status=201,
    errors=(409,),
)
async def add_topic_entry(call: Call, body: TopicCreate) -> Reply:
    first, last = body.valid_from, body.valid_to
    if body.year is not None:
        first = first or dt.date(body.year, 1, 1)
        last = last or dt.date(body.year, 12, 31)
    try:
        topic = await add_topic(
            sessions_of(call),
            call,
            TopicInput(body.code, body.title_vi, body.title_en, body.kind, first, last),
        )
    except TopicError as exc:
        raise _problem(exc, body.code) from None
    return _reply(topic, 201)


@router.patch(
    "/topics/{code}",
    summary="Rename a topic (admin, approver); the code stays",
    permission=Permission.APPROVE,
    body=TopicRename,
    response=TopicOut,
    errors=(404,),
)
async def rename_topic_entry(call: Call, body: TopicRename) -> Reply:
    try:
        topic = await rename_topic(
            sessions_of(call),
            call,
            call.path_str("code"),
            title_vi=body.title_vi,
            title_en=body.title_en,
        )
    except TopicError as exc:
        raise _problem(exc, call.path_str("code")) from None
    return _reply(topic)


@router.post(
    "/topics/{code}/retire",
    summary="Retire a topic (admin, approver): kept for history, refused for new items",
    permission=Permission.APPROVE,
    body=TopicRetire,
    response=TopicOut,
    errors=(404, 409),
)
async def retire_topic_entry(call: Call, body: TopicRetire) -> Reply:
    try:
        topic = await retire_topic(sessions_of(call), call, call.path_str("code"), on=body.valid_to)
    except TopicError as exc:
        raise _problem(exc, call.path_str("code")) from None
    return _reply(topic)
