"""Every API area's router. Add yours here: ``setup_api`` registers them in this order."""

from __future__ import annotations

from .._framework import ApiRouter
from . import audit, auth, clusters, media, plays, programmes, schedules, users

ROUTERS: list[ApiRouter] = [
    auth.router,
    users.router,
    clusters.router,
    media.router,
    programmes.router,
    schedules.router,
    plays.router,
    audit.router,
]

__all__ = ["ROUTERS"]
