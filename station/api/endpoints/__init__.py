"""Every API area's router. Add yours here: ``setup_api`` registers them in this order."""

from __future__ import annotations

from .._framework import ApiRouter
from . import (
    audit,
    auth,
    bulletins,
    clusters,
    console,
    emergency,
    fleet,
    live,
    media,
    plays,
    programmes,
    reports,
    schedules,
    topics,
    upstream,
    users,
    villages,
)

ROUTERS: list[ApiRouter] = [
    auth.router,
    users.router,
    clusters.router,
    fleet.router,  # the cluster registry (station/_registry)
    villages.router,  # villages, zones, coverage, CSV import (station/_registry_import)
    media.router,
    programmes.router,
    schedules.router,
    plays.router,
    audit.router,
    console.router,  # the web console's summaries (station/web)
    live.router,  # live and relay mounts (station/live)
    reports.router,  # activity and inventory reports (station/reports)
    topics.router,  # the topic catalogue, editable (station/reports/_topics)
    bulletins.router,  # priority bulletins from upstream (station/upstream/_placement)
    emergency.router,  # emergency broadcasts (station/_emergency)
    upstream.router,  # the Source Information System link: exchange log, outbox (station/upstream)
]

__all__ = ["ROUTERS"]
