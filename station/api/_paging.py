"""Pagination of SQL queries into ``Page`` models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from ._framework import ListQuery, Page

Row = TypeVar("Row")
Out = TypeVar("Out")


async def paginate(
    db: AsyncSession,
    query: SelectOfScalar[Row],
    page: ListQuery,
    convert: Callable[[Row], Out],
) -> Page[Out]:
    """Run ``query`` (already filtered and ordered) for one page, plus the total count."""
    total_query: Any = select(func.count()).select_from(query.order_by(None).subquery())
    total = int((await db.exec(total_query)).one())
    rows = (await db.exec(query.limit(page.limit).offset(page.offset))).all()
    return Page[Out](
        items=[convert(r) for r in rows], total=total, limit=page.limit, offset=page.offset
    )
