"""Tables of the media library: topic catalogue, item topics, renditions, bytes served.

Same conventions as ``models``. Schema owned by migration ``media_1`` (which also seeds the
topic catalogue from the 2024 Phụ lục 01 list).
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import Field

from .models import ID_MAX, TableBase

__all__ = ["MediaDownload", "MediaRendition", "MediaTopic", "Topic"]


class Topic(TableBase, table=True):
    """A topic of the catalogue [nhiệm vụ thông tin, tuyên truyền], e.g. ``I.9``.

    Editable: the list changes every year. Retired topics are kept with ``active = False`` so
    older items and reports still name them.
    """

    __tablename__ = "topics"

    code: str = Field(primary_key=True, max_length=16)
    title_vi: str
    title_en: str = ""
    group: str = Field(default="", max_length=16)  # "I" period tasks, "II" thematic tasks
    active: bool = True
    # -- topic editing (migration upstream_2) --
    valid_from: date | None = None  # the year / dates the task applies to (None: open)
    valid_to: date | None = None


class MediaTopic(TableBase, table=True):
    """An item is tagged with a topic (reports count airtime per topic)."""

    __tablename__ = "media_topics"

    media_id: int = Field(primary_key=True, foreign_key="media_items.id", ondelete="CASCADE")
    topic_code: str = Field(
        primary_key=True, foreign_key="topics.code", ondelete="RESTRICT", max_length=16, index=True
    )


class MediaRendition(TableBase, table=True):
    """One delivery file of an item, stored content-addressed as ``<sha256>.<codec>``."""

    __tablename__ = "media_renditions"
    __table_args__ = (sa.UniqueConstraint("media_id", "codec"),)

    id: int | None = Field(default=None, primary_key=True)
    media_id: int = Field(foreign_key="media_items.id", ondelete="CASCADE")
    codec: str = Field(max_length=16)
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int = Field(sa_type=sa.BigInteger)
    bitrate_kbps: int


class MediaDownload(TableBase, table=True):
    """Media bytes the station served to one cluster on one day (station time zone).

    No foreign key: accounting must not fail (or vanish) when a cluster is deleted later.
    """

    __tablename__ = "media_downloads"

    cluster_id: str = Field(primary_key=True, max_length=ID_MAX)
    day: date = Field(primary_key=True)
    bytes: int = Field(default=0, sa_type=sa.BigInteger)
    requests: int = 0
