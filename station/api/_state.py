"""Typed application state of the API layer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ._auth import LoginThrottle

THROTTLE = web.AppKey("login_throttle", LoginThrottle)
OPENAPI = web.AppKey("openapi_document", dict[str, Any])
