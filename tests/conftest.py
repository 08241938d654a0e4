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
from typing import Any

import pytest

from devices import EmbeddedBroker
from station.config import Settings
from tests.api_support import settings_for
from tests.browser_support import BROWSER_FLAGS, CHROMIUM
from tests.db_support import postgres_schema

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


# Modules that read LOAXA_TEST_* themselves rather than through the fixtures below.
READS_SERVICE_URLS = {"test_db.py", "test_faults_broker.py", "test_faults_restart.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long tests (``slow_first``) go first: xdist hands tests out in this order, so a
    two-minute test started last would be a run's tail with the other workers idle.

    ``LOAXA_TEST_SERVICES_ONLY=1`` (CI's second pass, against Mosquitto and PostgreSQL)
    keeps only the tests those URLs can change: the ones using the ``mqtt_url`` or
    ``database_url`` fixture, or reading the URLs themselves; the others ran the same way
    in the first pass."""
    items.sort(key=lambda item: item.get_closest_marker("slow_first") is None)
    if os.environ.get("LOAXA_TEST_SERVICES_ONLY") != "1":
        return
    if not (TEST_MQTT_URL or TEST_DATABASE_URL):
        raise pytest.UsageError("LOAXA_TEST_SERVICES_ONLY=1 without LOAXA_TEST_*_URL")
    kept, deselected = [], []
    for item in items:
        uses = {"mqtt_url", "database_url"} & set(getattr(item, "fixturenames", ()))
        (kept if uses or item.path.name in READS_SERVICE_URLS else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = kept


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema in the test PostgreSQL."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path}/loaxa.db"
        return
    with postgres_schema(TEST_DATABASE_URL) as url:
        yield url


@pytest.fixture
def station_id() -> str:
    """Unique per test, so tests sharing one external broker never see each other's topics."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    """The API tests' station settings (a module may define its own ``settings``)."""
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium driven by Playwright (no browser download); console tests only."""
    from playwright.async_api import async_playwright, expect

    # Assertions wait up to 15 s, as actions do (console_page): on a loaded CI machine a
    # refusal or a list can take longer than Playwright's default 5 s to appear.
    expect.set_options(timeout=15_000)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()
