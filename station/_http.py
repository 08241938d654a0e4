"""HTTP: audio for clusters, health, and a first read-only JSON API.

Errors are RFC 9457 problem+json. Media files are content-addressed, so they are served with
long immutable cache lifetimes; aiohttp's FileResponse handles Range and ETag (resumable
downloads over flaky 4G).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlmodel import col, func, select

from station.db import Cluster, PlayRecord

from . import _keys as keys

log = logging.getLogger(__name__)

_MEDIA_NAME = re.compile(r"^(?P<sha>[0-9a-f]{64})\.(?P<ext>opus|mp3)$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return web.json_response(body, status=status, content_type="application/problem+json")


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/problem+json":
            raise
        return problem(exc.status, exc.reason, exc.text or "")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "the error was logged")


async def media_file(request: web.Request) -> web.StreamResponse:
    match = _MEDIA_NAME.match(request.match_info["name"])
    if match is None:
        return problem(404, "Not Found", "no such media file")
    path = request.app[keys.MEDIA_STORE].path_for(match["sha"], match["ext"])
    if not path.is_file():
        return problem(404, "Not Found", "no such media file")
    response = web.FileResponse(path)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.content_type = "audio/ogg" if match["ext"] == "opus" else "audio/mpeg"
    return response


async def health(request: web.Request) -> web.Response:
    link = request.app[keys.LINK]
    return web.json_response(
        {"status": "ok" if link.is_connected else "degraded", "mqtt_connected": link.is_connected}
    )


async def list_clusters(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONS]() as db:
        clusters = (await db.exec(select(Cluster).order_by(Cluster.id))).all()
    return web.json_response(
        [
            c.model_dump(
                mode="json",
                include={"id", "name", "kind", "status", "online", "last_seen_at", "firmware"},
            )
            for c in clusters
        ]
    )


async def list_plays(request: web.Request) -> web.Response:
    query = select(PlayRecord).order_by(col(PlayRecord.id).desc()).limit(500)
    session_id = request.query.get("session")
    if session_id:
        query = query.where(PlayRecord.session_id == session_id)
    async with request.app[keys.SESSIONS]() as db:
        records = (await db.exec(query)).all()
    return web.json_response([r.model_dump(mode="json") for r in records])


async def stats(request: web.Request) -> web.Response:
    gateway = request.app[keys.GATEWAY]
    link = request.app[keys.LINK]
    async with request.app[keys.SESSIONS]() as db:
        online = (await db.exec(select(func.count()).where(col(Cluster.online)))).one()
    return web.json_response(
        {
            "clusters_online": online,
            "commands_sent": gateway.commands_sent,
            "messages_received": dict(gateway.received),
            "messages_dropped": dict(gateway.dropped + link.dropped),
            "mqtt_reconnects": link.reconnects,
            "sessions_dispatched": request.app[keys.DISPATCHER].dispatched,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.middlewares.append(problem_middleware)
    app.router.add_get("/media/{name}", media_file)
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/v1/clusters", list_clusters)
    app.router.add_get("/api/v1/plays", list_plays)
    app.router.add_get("/api/v1/stats", stats)
