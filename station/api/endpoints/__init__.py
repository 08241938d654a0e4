"""Every API area's router. Add yours here: ``setup_api`` registers them in this order."""

from __future__ import annotations

from .._framework import ApiRouter
from . import (
    audit,
    auth,
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
    users,
)

ROUTERS: list[ApiRouter] = [
    auth.router,
    users.router,
    clusters.router,
    fleet.router,  # the cluster registry (station/_registry)
    media.router,
    programmes.router,
    schedules.router,
    plays.router,
    audit.router,
    console.router,  # the web console's summaries (station/web)
    live.router,  # live and relay mounts (station/live)
    reports.router,  # activity and inventory reports (station/reports)
    emergency.router,  # emergency broadcasts (station/_emergency)
]

__all__ = ["ROUTERS"]
