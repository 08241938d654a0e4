"""Typed application state of the API layer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

OPENAPI = web.AppKey("openapi_document", dict[str, Any])
