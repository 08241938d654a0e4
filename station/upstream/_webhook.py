"""The webhook the upstream system calls: ``POST /upstream/v1/bulletins``.

Authenticated by HMAC-SHA256 with the shared ``upstream.webhook_secret`` over
``"<timestamp>." + body``; headers ``X-Loaxa-Timestamp`` (Unix seconds) and
``X-Loaxa-Signature: sha256=<hex>``. A timestamp further than ``webhook_tolerance_s`` from the
station's clock is refused (401), and so is a signature already used within that window (409):
a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from aiohttp import web

from station.api import problem

TIMESTAMP_HEADER = "X-Loaxa-Timestamp"
SIGNATURE_HEADER = "X-Loaxa-Signature"
WEBHOOK_PATH = "/upstream/v1/bulletins"
MAX_BODY = 1024 * 1024


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class SignatureError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class WebhookGuard:
    """Checks signatures and remembers recent ones (bounded by the tolerance window)."""

    def __init__(
        self, secret: str, tolerance_s: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self.tolerance_s = tolerance_s
        self.clock = clock
        self._seen: dict[str, float] = {}

    def check(self, timestamp: str | None, signature: str | None, body: bytes) -> None:
        if not timestamp or not signature:
            raise SignatureError(401, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
        try:
            ts = int(timestamp)
        except ValueError:
            raise SignatureError(401, f"{TIMESTAMP_HEADER} must be Unix seconds") from None
        now = self.clock()
        self._seen = {s: exp for s, exp in self._seen.items() if exp > now}
        if abs(now - ts) > self.tolerance_s:
            raise SignatureError(401, "timestamp outside the allowed window (replay or clock)")
        if not hmac.compare_digest(sign(self._secret, ts, body), signature):
            raise SignatureError(401, "bad signature")
        if signature in self._seen:
            raise SignatureError(409, "replayed request")
        self._seen[signature] = ts + self.tolerance_s


def parse_bulletins(body: bytes) -> list[object]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise SignatureError(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("bulletins"), list):
        raise SignatureError(400, 'body must be {"bulletins": [...]}')
    return list(data["bulletins"])


def problem_for(exc: SignatureError) -> web.Response:
    titles = {400: "Bad Request", 401: "Unauthorized", 409: "Conflict", 413: "Payload Too Large"}
    return problem(exc.status, titles.get(exc.status, "Error"), exc.detail)
