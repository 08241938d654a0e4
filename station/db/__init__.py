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
    InstalledAs,
    MediaItem,
    PlayRecord,
    PlayRecordStatus,
    PlaySession,
    PlaySessionStatus,
    Programme,
    ProgrammeItem,
    ProgrammeItemKind,
    RecurrenceKind,
    Schedule,
    ScheduleStatus,
    Station,
    TableBase,
    metadata,
)
from .models_accounts import ApiToken, AuditEntry, ProgrammeApproval, Role, User, WebSession
from .models_fleet import Alert, AlertKind, ClusterTelemetry, ClusterZone, DataUse, Village, Zone
from .models_media import MediaDownload, MediaRendition, MediaTopic, Topic
from .models_upstream import (
    BulletinClass,
    BulletinStatus,
    OutboxMessage,
    OutboxStatus,
    UpstreamBulletin,
    UpstreamCursor,
    UpstreamExchange,
)

__all__ = [
    "MIGRATIONS_DIR",
    "Alert",
    "AlertKind",
    "ApiToken",
    "AuditEntry",
    "BulletinClass",
    "BulletinStatus",
    "Cluster",
    "ClusterKind",
    "ClusterStatus",
    "ClusterTelemetry",
    "ClusterZone",
    "DataUse",
    "InstalledAs",
    "MediaDownload",
    "MediaItem",
    "MediaRendition",
    "MediaTopic",
    "OutboxMessage",
    "OutboxStatus",
    "PlayRecord",
    "PlayRecordStatus",
    "PlaySession",
    "PlaySessionStatus",
    "Programme",
    "ProgrammeApproval",
    "ProgrammeItem",
    "ProgrammeItemKind",
    "RecurrenceKind",
    "Role",
    "Schedule",
    "ScheduleStatus",
    "Station",
    "TableBase",
    "Topic",
    "UTCDateTime",
    "UpstreamBulletin",
    "UpstreamCursor",
    "UpstreamExchange",
    "User",
    "Village",
    "WebSession",
    "Zone",
    "alembic_config",
    "create_engine_for",
    "metadata",
    "session_factory",
    "upgrade",
    "upgrade_async",
    "utcnow",
]
