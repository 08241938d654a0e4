"""Alembic environment for the loaxa station database.

The URL comes from ``config.attributes["url"]`` (``station.db.upgrade``), else ``-x url=...``,
else ``sqlalchemy.url`` from an ini file, else the ``LOAXA_DATABASE__URL`` environment variable.
A caller may also pass an open connection as ``config.attributes["connection"]``.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from sqlmodel.sql.sqltypes import AutoString

from station.config import sync_driver_url
from station.db._types import UTCDateTime
from station.db.models import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("LOAXA_DATABASE__URL")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=sqlite:///path.db")
    return sync_driver_url(url)


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Tables other components keep in the same database are not ours to drop.
    return not (type_ == "table" and name is not None and name.startswith("apscheduler_"))


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy ones: migrations must not import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        length = getattr(obj.impl, "length", None)
        return f"sa.String(length={length})" if length else "sa.String()"
    return False


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
        render_item=_render_item,
    )


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
