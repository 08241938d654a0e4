"""The Source Information System link [Hệ thống thông tin nguồn]: exchange log, outbox, retry.

The same facts as ``loaxa upstream status|log|retry`` (station/upstream/_queries.py,
docs/upstream.md): every exchange both ways with its outcome, the outbox's depth, its failed
rows and the row delivered next, and re-queueing failed rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from station import _keys as keys
from station.db import OutboxMessage, UpstreamCursor, UpstreamExchange
from station.upstream import retry_now
from station.upstream._queries import outbox_summary

from .._audit import audit
from .._framework import ApiRouter, Call, ListQuery, Page
from .._paging import paginate
from .._roles import Permission
from ._common import Id, sessions_of

router = ApiRouter(
    "upstream", "The provincial Source Information System link: exchange log, outbox, retry"
)


class ExchangeOut(BaseModel):
    id: int
    at: datetime
    direction: str = Field(description="up: station -> province; down: province -> station")
    kind: str = Field(
        description="up: the message kind (schedule, proof_of_play, …); "
        "down: pull, webhook, audio, emergency"
    )
    key: str = Field(description="idempotency key (up) or bulletin id / cursor (down)")
    status: str = Field(
        description="ok, retry, failed, duplicate, rejected, expired, ignored, waiting"
    )
    http_status: int | None
    attempt: int
    error: str


class ExchangeQuery(ListQuery):
    status: str | None = Field(default=None, max_length=16, description="only this outcome")
    direction: Literal["up", "down"] | None = None
    kind: str | None = Field(default=None, max_length=32)


class OutboxRow(BaseModel):
    id: int
    kind: str
    key: str
    attempts: int
    next_attempt_at: datetime = Field(description="the next try (pending rows)")
    http_status: int | None
    last_error: str
    created_at: datetime


class OutboxStatusOut(BaseModel):
    enabled: bool = Field(description="upstream.enabled: the outbox is being sent")
    base_url: str
    pending: int
    sent: int
    failed: int
    oldest_pending: datetime | None
    next: OutboxRow | None = Field(description="the pending row delivered next, with its retry")
    failed_rows: list[OutboxRow] = Field(description="the first 50 failed rows")
    last_exchange: ExchangeOut | None
    last_pull_at: datetime | None = Field(description="the last successful bulletin pull")
    bulletin_cursor: str


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Id] = Field(
        default_factory=list, max_length=1000, description="failed rows to re-queue; [] = all"
    )


class RetryOut(BaseModel):
    requeued: int = Field(description="failed rows put back in the queue")
    hastened: int = Field(description="pending rows waiting out a backoff, now due at once")


def _exchange(row: UpstreamExchange) -> ExchangeOut:
    return ExchangeOut.model_validate(row, from_attributes=True)


def _outbox_row(row: OutboxMessage) -> OutboxRow:
    return OutboxRow.model_validate(row, from_attributes=True)


@router.get(
    "/upstream/exchanges",
    summary="The exchange log: every push, pull, webhook and download, newest first",
    permission=Permission.READ,
    query=ExchangeQuery,
    response=Page[ExchangeOut],
)
async def list_exchanges(call: Call, query: ExchangeQuery) -> Page[ExchangeOut]:
    stmt = select(UpstreamExchange).order_by(col(UpstreamExchange.id).desc())
    if query.status:
        stmt = stmt.where(UpstreamExchange.status == query.status)
    if query.direction:
        stmt = stmt.where(UpstreamExchange.direction == query.direction)
    if query.kind:
        stmt = stmt.where(UpstreamExchange.kind == query.kind)
    async with sessions_of(call)() as db:
        return await paginate(db, stmt, query, _exchange)


@router.get(
    "/upstream/outbox",
    summary="The outbox: depth, the row sent next and when, failed rows, last exchange",
    permission=Permission.READ,
    response=OutboxStatusOut,
)
async def outbox_status(call: Call) -> OutboxStatusOut:
    sessions = sessions_of(call)
    summary = await outbox_summary(sessions)
    async with sessions() as db:
        cursor = await db.get(UpstreamCursor, "bulletins")
    cfg = call.app[keys.SETTINGS].upstream
    return OutboxStatusOut(
        enabled=cfg.enabled,
        base_url=cfg.base_url,
        pending=summary.by_status.get("pending", 0),
        sent=summary.by_status.get("sent", 0),
        failed=summary.by_status.get("failed", 0),
        oldest_pending=summary.oldest_pending,
        next=_outbox_row(summary.head) if summary.head is not None else None,
        failed_rows=[_outbox_row(r) for r in summary.failed],
        last_exchange=(
            _exchange(summary.last_exchange) if summary.last_exchange is not None else None
        ),
        last_pull_at=cursor.updated_at if cursor is not None else None,
        bulletin_cursor=summary.bulletin_cursor,
    )


@router.post(
    "/upstream/outbox/retry",
    summary="Retry now: re-queue failed outbox rows, end the backoff of pending ones",
    permission=Permission.SCHEDULES_WRITE,
    body=RetryBody,
    response=RetryOut,
)
async def retry(call: Call, body: RetryBody) -> RetryOut:
    """Failed rows go back to ``pending`` with their attempts reset (``loaxa upstream retry``)
    and pending rows waiting out a backoff become due now (all, or only ``ids``); the sender
    looks at once. Audited ``upstream.retry``."""
    requeued, hastened = await retry_now(sessions_of(call), list(body.ids) or None)
    upstream = call.app.get(keys.UPSTREAM)
    if upstream is not None and upstream.sender is not None:
        upstream.sender.wake()
    details = {"ids": body.ids, "requeued": requeued, "hastened": hastened}
    await audit(call, "upstream.retry", "upstream:outbox", details)
    return RetryOut(requeued=requeued, hastened=hastened)
