"""HTTP: audio for clusters and health; the JSON API lives in ``station.api``.

Errors are RFC 9457 problem+json. Media files are content-addressed, so they are served with
long immutable cache lifetimes; aiohttp's FileResponse handles Range and ETag (resumable
downloads over flaky 4G).
"""

from __future__ import annotations

import logging

from aiohttp import web

from station.api import setup_api
from station.web import setup_console

from . import _keys as keys
from ._delivery import setup_delivery
from ._metrics import metrics_view
from .live import setup_live_routes
from .upstream import WEBHOOK_PATH
from .upstream import webhook as upstream_webhook

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    link = request.app[keys.LINK]
    return web.json_response(
        {"status": "ok" if link.is_connected else "degraded", "mqtt_connected": link.is_connected}
    )


def setup_routes(app: web.Application) -> None:
    setup_api(app)  # problem+json middleware, /api/v1/..., /api/openapi.json
    setup_delivery(app)  # /media/<sha256>.<ext>, signed per cluster (station/_delivery.py)
    setup_live_routes(app)  # /live/<mount> (signed per cluster), /live/<mount>/mic (WebSocket)
    app.router.add_get("/healthz", health)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_post(WEBHOOK_PATH, upstream_webhook)
    setup_console(app)  # /console/... and / (station/web)
