"""Shared fixtures: a broker and a database for each test.

By default a fresh embedded broker (amqtt on a free port) and a SQLite file in tmp_path. With
LOAXA_TEST_MQTT_URL / LOAXA_TEST_DATABASE_URL set (CI: Mosquitto and PostgreSQL), the same tests
run against those: each test gets its own PostgreSQL schema and its own station id (so topics
never collide on a shared broker).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from devices import EmbeddedBroker
from station.config import sync_driver_url

TEST_MQTT_URL = os.environ.get("LOAXA_TEST_MQTT_URL", "")
TEST_DATABASE_URL = os.environ.get("LOAXA_TEST_DATABASE_URL", "")


@pytest.fixture
async def mqtt_url() -> AsyncIterator[str]:
    """A broker URL: the external test broker if configured, else a fresh embedded one."""
    if TEST_MQTT_URL:
        yield TEST_MQTT_URL
        return
    broker = EmbeddedBroker("127.0.0.1", 0)
    await broker.start()
    try:
        yield broker.url
    finally:
        await broker.stop()


def _with_search_path(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema in the test PostgreSQL."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path}/loaxa.db"
        return
    schema = f"loaxa_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sync_driver_url(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield _with_search_path(TEST_DATABASE_URL, schema)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def station_id() -> str:
    """Unique per test, so tests sharing one external broker never see each other's topics."""
    return f"t{uuid.uuid4().hex[:10]}"
