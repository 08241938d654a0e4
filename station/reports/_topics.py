"""Editing the topic catalogue [danh mục nhiệm vụ thông tin, tuyên truyền] (Phụ lục 01).

The catalogue changes every year: new topics are added, old ones retired. A retired topic is
kept (``active = False``): media, programmes and reports that used it still name it, but new
media and programmes cannot pick it. Every change writes an audit entry in the same
transaction. Used by ``loaxa topics`` and ``/api/v1/topics``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import AuditEntry, Topic

if TYPE_CHECKING:
    from station.api import Actor, Call

__all__ = [
    "KIND_GROUP",
    "TopicError",
    "TopicInput",
    "add_topic",
    "get_topic",
    "kind_of",
    "list_topics",
    "refuse_retired",
    "rename_topic",
    "retire_topic",
]

Sessions = async_sessionmaker[AsyncSession]
TopicKind = Literal["period", "thematic"]
KIND_GROUP: dict[str, str] = {"period": "I", "thematic": "II"}  # Phụ lục 01 sections
CODE_RE = re.compile(r"^[A-Z]{1,4}\.[0-9]{1,3}[a-z]?$")  # I.9, II.10, III.1a
TITLE_MAX = 500


class TopicError(Exception):
    """``status``: 404 unknown topic, 409 duplicate code / already retired, 422 invalid."""

    def __init__(self, status: int, detail: str, field: str = "", code: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.code = code  # the API problem's code (station.api._problems.CODES) when set


@dataclass(frozen=True)
class TopicInput:
    code: str
    title_vi: str
    title_en: str = ""
    kind: TopicKind = "thematic"
    valid_from: date | None = None
    valid_to: date | None = None


def kind_of(topic: Topic) -> str:
    """``period`` (section I), ``thematic`` (section II) or the raw group for others."""
    for kind, group in KIND_GROUP.items():
        if topic.group == group:
            return kind
    return topic.group or "thematic"


def _sort_key(code: str) -> tuple[int, int, str]:
    group, _, number = code.partition(".")
    roman = {"I": 1, "II": 2, "III": 3, "IV": 4}.get(group, 99)
    digits = "".join(ch for ch in number if ch.isdigit())
    return roman, int(digits) if digits else 9999, code


def _title(value: str, field: str, *, required: bool) -> str:
    text = " ".join(value.split())
    if required and not text:
        raise TopicError(422, f"{field}: a topic needs a title", field)
    if len(text) > TITLE_MAX:
        raise TopicError(422, f"{field}: at most {TITLE_MAX} characters", field)
    return text


def _dates(first: date | None, last: date | None) -> None:
    if first is not None and last is not None and last < first:
        raise TopicError(422, "valid_to: ends before valid_from", "valid_to")


def _audit(who: Call | Actor, action: str, code: str, details: dict[str, Any]) -> AuditEntry:
    from station.api._audit import audit_entry

    return audit_entry(who, action, f"topic:{code}", details)


async def list_topics(
    sessions: Sessions, *, include_retired: bool = False, on: date | None = None
) -> list[Topic]:
    """Active topics (all with ``include_retired``), in catalogue order; ``on``: only those
    valid on that day."""
    query = select(Topic)
    if not include_retired:
        query = query.where(col(Topic.active))
    async with sessions() as db:
        rows = list((await db.exec(query)).all())
    if on is not None:
        rows = [
            t
            for t in rows
            if (t.valid_from is None or t.valid_from <= on)
            and (t.valid_to is None or on <= t.valid_to)
        ]
    return sorted(rows, key=lambda t: _sort_key(t.code))


async def get_topic(sessions: Sessions, code: str) -> Topic:
    async with sessions() as db:
        topic = await db.get(Topic, code)
    if topic is None:
        raise TopicError(404, f"unknown topic {code!r}")
    return topic


async def add_topic(sessions: Sessions, who: Call | Actor, new: TopicInput) -> Topic:
    code = new.code.strip()
    if not CODE_RE.match(code):
        raise TopicError(422, f"code: {code!r} is not like I.9 or II.10", "code")
    if new.kind not in KIND_GROUP:
        raise TopicError(422, f"kind: one of {', '.join(KIND_GROUP)}", "kind")
    title_vi = _title(new.title_vi, "title_vi", required=True)
    title_en = _title(new.title_en, "title_en", required=False)
    _dates(new.valid_from, new.valid_to)
    async with sessions() as db:
        existing = await db.get(Topic, code)
        if existing is not None:
            state = "active" if existing.active else "retired"
            raise TopicError(
                409,
                f"topic {code} exists already ({state}): codes are never reused",
                code="topic_exists",
            )
        topic = Topic(
            code=code,
            title_vi=title_vi,
            title_en=title_en,
            group=KIND_GROUP[new.kind],
            active=True,
            valid_from=new.valid_from,
            valid_to=new.valid_to,
        )
        db.add(topic)
        db.add(
            _audit(
                who,
                "topic.add",
                code,
                {
                    "title_vi": title_vi,
                    "title_en": title_en,
                    "kind": new.kind,
                    "valid_from": new.valid_from.isoformat() if new.valid_from else None,
                    "valid_to": new.valid_to.isoformat() if new.valid_to else None,
                },
            )
        )
        await db.commit()
        await db.refresh(topic)
        return topic


async def rename_topic(
    sessions: Sessions,
    who: Call | Actor,
    code: str,
    *,
    title_vi: str | None = None,
    title_en: str | None = None,
) -> Topic:
    """New titles; the code (what media, programmes and reports refer to) never changes."""
    if title_vi is None and title_en is None:
        raise TopicError(422, "title_vi: give a new Vietnamese and/or English title", "title_vi")
    async with sessions() as db:
        topic = await db.get(Topic, code)
        if topic is None:
            raise TopicError(404, f"unknown topic {code!r}")
        before = {"title_vi": topic.title_vi, "title_en": topic.title_en}
        if title_vi is not None:
            topic.title_vi = _title(title_vi, "title_vi", required=True)
        if title_en is not None:
            topic.title_en = _title(title_en, "title_en", required=False)
        after = {"title_vi": topic.title_vi, "title_en": topic.title_en}
        db.add(topic)
        db.add(_audit(who, "topic.rename", code, {"before": before, "after": after}))
        await db.commit()
        await db.refresh(topic)
        return topic


async def retire_topic(
    sessions: Sessions, who: Call | Actor, code: str, *, on: date | None = None
) -> Topic:
    """Retire a topic: kept for history, refused for new media and programmes."""
    async with sessions() as db:
        topic = await db.get(Topic, code)
        if topic is None:
            raise TopicError(404, f"unknown topic {code!r}")
        if not topic.active:
            raise TopicError(409, f"topic {code} is retired already", code="topic_already_retired")

        topic.active = False
        if on is not None:
            if topic.valid_from is not None and on < topic.valid_from:
                raise TopicError(422, "valid_to: before the topic's valid_from", "valid_to")
            topic.valid_to = on
        db.add(topic)
        db.add(
            _audit(
                who,
                "topic.retire",
                code,
                {"valid_to": topic.valid_to.isoformat() if topic.valid_to else None},
            )
        )
        await db.commit()
        await db.refresh(topic)
        return topic


async def refuse_retired(db: AsyncSession, codes: Sequence[str]) -> None:
    """For new programmes: refuse catalogue codes that are retired. Free-text tags that are
    not catalogue codes (e.g. from an imported week plan) are left alone."""
    from station._services import StationError

    wanted = [c.strip() for c in codes if c.strip()]
    if not wanted:
        return
    query = select(Topic.code).where(col(Topic.code).in_(wanted), col(Topic.active).is_(False))
    retired = (await db.exec(query)).all()
    if retired:
        raise StationError(
            f"topic(s) no longer in use: {', '.join(sorted(retired))}",
            code="topic_retired",
            topics=sorted(retired),
        )
