"""Column types of the models. Migrations do not import them: they use plain sa types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.sql.operators import OperatorType


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime, stored in UTC, always returned aware in UTC; naive values are refused.

    On PostgreSQL the column is ``timestamptz``. SQLite has no time zones: the UTC wall time is
    stored as text (same format for every row, so comparisons and ORDER BY stay correct) and UTC
    is re-attached on load. (SQLAlchemy's own ``DateTime(timezone=True)`` drops the zone there.)
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def coerce_compared_value(self, op: OperatorType | None, value: Any) -> Any:
        if isinstance(value, timedelta):  # ``column + timedelta`` is an interval, not a datetime
            return sa.Interval()
        return self

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give it a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_dict() -> sa.types.TypeEngine[Any]:
    """A JSON object column that notices ``row.col[key] = v`` (top-level keys only).

    Changes deeper inside (``row.col["a"]["b"] = v``) are still invisible: reassign the
    column or call ``sqlalchemy.orm.attributes.flag_modified(row, "col")``.
    """
    return MutableDict.as_mutable(sa.JSON())


def enum_column(enum: type[StrEnum], name: str) -> sa.Enum:
    """A VARCHAR(16) holding ``enum`` values, with a CHECK constraint (no native DB enum type).

    Adding a value later needs a migration that rewrites the CHECK constraint.
    """
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )
