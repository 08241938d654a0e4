"""HTTP: audio for clusters and health; the JSON API lives in ``station.api``.

Errors are RFC 9457 problem+json. Media files are content-addressed, so they are served with
long immutable cache lifetimes; aiohttp's FileResponse handles Range and ETag (resumable
downloads over flaky 4G).
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from aiohttp import web

from station.api import setup_api
from station.config import ConfigError, HttpSection
from station.web import setup_console

from . import _keys as keys
from ._delivery import setup_delivery
from ._metrics import metrics_view
from .live import setup_live_routes
from .upstream import WEBHOOK_PATH
from .upstream import webhook as upstream_webhook

log = logging.getLogger(__name__)

_PEM_MARKS = {"tls_cert": b"-----BEGIN CERTIFICATE-----", "tls_key": b"PRIVATE KEY-----"}


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


def server_ssl_context(http: HttpSection) -> ssl.SSLContext | None:
    """The HTTPS context from ``http.tls_cert``/``tls_key`` (None: plain HTTP).

    Blocking file reads: call it off the loop. Raises ``ConfigError`` naming the key whose file
    is unreadable, not PEM, or does not match the other.
    """
    if http.tls_cert is None or http.tls_key is None:
        return None
    for key, path in (("tls_cert", http.tls_cert), ("tls_key", http.tls_key)):
        _check_pem(key, path)
    if http.tls_ca is not None:
        _check_pem("tls_ca", http.tls_ca, mark=_PEM_MARKS["tls_cert"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # 4G clusters: no legacy protocols
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            problem = f"http.tls_key: {http.tls_key} does not match the http.tls_cert certificate"
        else:
            problem = f"http.tls_cert/http.tls_key: cannot be loaded ({exc.reason or exc})"
        raise ConfigError([problem]) from None
    return context


def _check_pem(key: str, path: Path, mark: bytes | None = None) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"http.{key}: cannot read {path}: {exc.strerror or exc}"]) from None
    if (mark or _PEM_MARKS[key]) not in data:
        kind = "private key" if key == "tls_key" else "certificate"
        raise ConfigError([f"http.{key}: {path} is not a PEM {kind}"])
