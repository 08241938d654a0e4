"""Async engine and sessions; Alembic upgrades.

URLs are the plain ones from the configuration (``sqlite:///...``, ``postgresql://...``); the
drivers (aiosqlite / psycopg) are chosen here.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from station.config import async_driver_url, sync_driver_url

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "create_engine_for",
    "session_factory",
    "upgrade",
    "upgrade_async",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# PostgreSQL's counterparts: a write waiting on a row lock fails after the same 5 s (as one on
# SQLite's file lock does) instead of waiting for ever, and a connection left idle inside a
# transaction (a task that stopped between its write and its commit) is closed by the server
# after 30 s, releasing its locks, rather than stalling every later writer of those rows.
POSTGRES_OPTIONS = "-c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000"


def _prepare_sqlite_file(url: str) -> None:
    """Create the folder of a file-backed SQLite database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_engine_for(url: str, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for ``url``; on SQLite: WAL, foreign keys on, 5 s busy timeout; on
    PostgreSQL: 5 s lock timeout, 30 s idle-in-transaction timeout (``POSTGRES_OPTIONS``).

    ``kwargs`` go to ``create_async_engine`` (e.g. ``echo=True``, pool settings).

    SQLite sessions keep the driver's transactions on purpose (BEGIN just before the first
    write; the reads before it hold no WAL snapshot): a deferred BEGIN before the reads makes
    a read-then-write transaction fail at once when another writer commits in between, and
    BEGIN IMMEDIATE makes every session, reads too, queue for the one write lock
    (docs/architecture.md, tests/test_db_writers.py).
    """
    async_url = async_driver_url(url)
    _prepare_sqlite_file(async_url)
    target = make_url(async_url)
    if target.get_backend_name() == "postgresql":  # after the URL's own options (search_path)
        given = target.query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        target = target.update_query_dict({"options": f"{given} {POSTGRES_OPTIONS}".strip()})
    engine = create_async_engine(target, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (``expire_on_commit=False``)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for the packaged migrations, without any ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    # Passed as an attribute, not a main option: ConfigParser would choke on "%" in passwords.
    config.attributes["url"] = sync_driver_url(url)
    return config


def _sqlite_driver_begins_nothing(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's default ("legacy") mode sends BEGIN only before INSERT/UPDATE/DELETE, so
    # CREATE/DROP/ALTER would each commit on their own; _begin_immediate sends BEGIN instead.
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_migration_engine(sync_url: str) -> sa.Engine:
    """A SQLite engine whose transactions include DDL, so a migration that fails halfway
    (alembic commits once per migration) leaves nothing behind and can simply be run again.

    Foreign keys stay off, as SQLite's default: batch migrations copy and drop tables, which
    would cascade with them on.
    """
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    sa.event.listen(engine, "connect", _sqlite_driver_begins_nothing)
    sa.event.listen(engine, "begin", _begin_immediate)
    return engine


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at ``url`` to ``revision``. Blocking: run it in a thread."""
    sync_url = sync_driver_url(url)
    _prepare_sqlite_file(sync_url)
    log.info("migrating database to %s", revision)
    config = alembic_config(url)
    if make_url(sync_url).get_backend_name() != "sqlite":
        command.upgrade(config, revision)  # env.py connects: PostgreSQL's DDL is transactional
        return
    engine = _sqlite_migration_engine(sync_url)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection  # env.py migrates on it
            command.upgrade(config, revision)
    finally:
        engine.dispose()


async def upgrade_async(url: str, revision: str = "heads") -> None:
    await asyncio.to_thread(upgrade, url, revision)
