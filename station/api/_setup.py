"""Wires the API into the app: middleware, routes from the registry, OpenAPI, accounts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from station import _keys as keys

from ._accounts import FIRST_ADMIN, ensure_first_admin
from ._auth import forget_expired_sessions
from ._framework import API_PREFIX, ApiRouter, view_for
from ._openapi import build_openapi
from ._problems import problem_middleware
from ._state import OPENAPI

log = logging.getLogger(__name__)

OPENAPI_PATH = "/api/openapi.json"


def _json_limit(app: web.Application) -> int:
    return app[keys.SETTINGS].auth.max_json_kb * 1024


def setup_api(app: web.Application, routers: Sequence[ApiRouter] | None = None) -> None:
    """Add the problem middleware, every endpoint of ``routers`` and ``/api/openapi.json``."""
    if routers is None:
        from .endpoints import ROUTERS

        routers = ROUTERS
    app.middlewares.append(problem_middleware)
    for router in routers:
        for endpoint in router.endpoints:
            app.router.add_route(
                endpoint.method, API_PREFIX + endpoint.route_path, view_for(endpoint, _json_limit)
            )
    app[OPENAPI] = build_openapi(
        routers,
        title="loaxa station API",
        version="1",
        description="Commune radio station (đài truyền thanh cấp xã): clusters, media, "
        "programmes, schedules, plays, accounts and audit. Errors are RFC 9457 problem+json.",
    )
    app.router.add_get(OPENAPI_PATH, openapi_document)
    app.cleanup_ctx.append(_accounts)


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


async def _accounts(app: web.Application) -> AsyncIterator[None]:
    await forget_expired_sessions(app[keys.SESSIONS])
    password = await ensure_first_admin(app[keys.SESSIONS])
    if password is not None:
        # Shown once, never stored: the hash is. The user must change it at first login.
        log.warning(
            "no user existed: created %r with one-time password %s (change it at first login)",
            FIRST_ADMIN,
            password,
        )
    yield
