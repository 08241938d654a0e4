"""Station database: SQLModel tables, async engine/sessions, Alembic migrations.

Usage::

    await upgrade_async(settings.database.url)          # at start-up, before serving
    engine = create_engine_for(settings.database.url)
    sessions = session_factory(engine)
    async with sessions() as session:
        cluster = await session.get(Cluster, "C01")
    ...
    await engine.dispose()
"""

from ._types import UTCDateTime, utcnow
from .engine import (
    MIGRATIONS_DIR,
    alembic_config,
    create_engine_for,
    session_factory,
    upgrade,
    upgrade_async,
)
from .models import (
    Cluster,
    ClusterKind,
    ClusterStatus,
    MediaItem,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Programme,
    ProgrammeItem,
    Schedule,
    ScheduleStatus,
    Station,
    TableBase,
    metadata,
)

__all__ = [
    "MIGRATIONS_DIR",
    "Cluster",
    "ClusterKind",
    "ClusterStatus",
    "MediaItem",
    "PlayRecord",
    "PlayRecordStatus",
    "PlaySession",
    "PlaySessionStatus",
    "Programme",
    "ProgrammeItem",
    "Schedule",
    "ScheduleStatus",
    "Station",
    "TableBase",
    "UTCDateTime",
    "alembic_config",
    "create_engine_for",
    "metadata",
    "session_factory",
    "upgrade",
    "upgrade_async",
    "utcnow",
]
