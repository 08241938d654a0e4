"""Helpers of the fleet monitor tests: a clock the test moves, clusters A and B registered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from station._services import Sessions, register_clusters
from tests.db_support import seeded


class Clock:
    """A clock the test moves by hand (``advance``), from ``start``."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@asynccontextmanager
async def clusters_a_and_b(
    database_url: str, at: datetime | None = None
) -> AsyncIterator[Sessions]:
    """A migrated database with clusters A and B registered (``at``: when, default now)."""
    async with seeded(database_url) as sessions:
        await register_clusters(sessions, [("A", "A"), ("B", "B")], at=at)
        yield sessions
