"""A simulated provincial Source Information System [Hệ thống thông tin nguồn cấp tỉnh].

It speaks the JSON mapping of docs/upstream.md over HTTP and nothing else: it imports nothing
from ``station`` or ``devices``. Fault hooks: ``go_down()``/``come_up()`` (the socket closes:
connection refused), ``fail_next(n, status)`` (500/503/...), ``delay_s`` (slow responses),
``duplicate_deliveries`` (bulletins delivered twice, by pull and by webhook). It records every
message it accepted, refuses a repeated idempotency key (409, counted in ``duplicates``), and
can push signed bulletins to a station's webhook.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

__all__ = ["ProvincialServer", "sign_webhook"]


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


@dataclass
class ProvincialServer:
    token: str
    received: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> envelope
    order: list[str] = field(default_factory=list)  # keys in the order they were accepted
    duplicates: int = 0
    requests: int = 0
    unauthorized: int = 0
    bulletins: list[dict[str, Any]] = field(default_factory=list)  # the feed
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (body, type)
    delay_s: float = 0.0
    duplicate_deliveries: bool = False
    ssl_context: ssl.SSLContext | None = None  # serve HTTPS with this server context
    _failures: list[tuple[int, str]] = field(default_factory=list)  # (status, path suffix)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # -- lifecycle and fault hooks ---------------------------------------------------------

    async def start(self) -> None:
        await self.come_up()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/stations/{station}/messages", self._messages)
        app.router.add_get("/v1/stations/{station}/bulletins", self._bulletins)
        app.router.add_get("/files/{name}", self._file)
        return app

    async def come_up(self) -> None:
        """Serve (again): on a free port the first time, then on the same port."""
        if self._runner is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        sock.listen(128)
        sock.setblocking(False)
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=self.ssl_context).start()
        self._runner = runner

    async def go_down(self) -> None:
        """Stop listening and drop open connections: clients see connection errors."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def stop(self) -> None:
        await self.go_down()

    def fail_next(self, count: int, status: int = 503, path_suffix: str = "") -> None:
        """Fail the next ``count`` requests (only those whose path ends with ``path_suffix``)."""
        self._failures.extend([(status, path_suffix)] * count)

    def add_bulletin(self, bulletin: dict[str, Any]) -> None:
        self.bulletins.append(bulletin)

    def add_file(self, name: str, body: bytes, content_type: str) -> str:
        self.files[name] = (body, content_type)
        return f"{self.base_url}/files/{name}"

    async def push_webhook(
        self, url: str, secret: str, bulletins: list[dict[str, Any]], timestamp: int | None = None
    ) -> list[tuple[int, Any]]:
        """POST bulletins to a station's webhook (twice with ``duplicate_deliveries``)."""
        body = json.dumps({"bulletins": bulletins}).encode()
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json",
            "X-Loaxa-Timestamp": str(ts),
            "X-Loaxa-Signature": sign_webhook(secret, ts, body),
        }
        results: list[tuple[int, Any]] = []
        async with ClientSession() as session:
            for _ in range(2 if self.duplicate_deliveries else 1):
                async with session.post(url, data=body, headers=headers) as response:
                    results.append((response.status, await response.json(content_type=None)))
        return results

    # -- handlers --------------------------------------------------------------------------

    async def _gate(self, request: web.Request) -> web.Response | None:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.unauthorized += 1
            return web.json_response({"detail": "bad or missing token"}, status=401)
        for i, (status, suffix) in enumerate(self._failures):
            if request.path.endswith(suffix):
                del self._failures[i]
                return web.json_response({"detail": "simulated failure"}, status=status)
        return None

    async def _messages(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        try:
            envelope = await request.json()
        except ValueError:
            return web.json_response({"detail": "body is not JSON"}, status=400)
        key = request.headers.get("Idempotency-Key", "")
        if not isinstance(envelope, dict) or not key or envelope.get("key") != key:
            return web.json_response({"detail": "Idempotency-Key missing or != key"}, status=400)
        if envelope.get("kind") not in (
            "schedule",
            "proof_of_play",
            "cluster_status",
            "report",
            "bulletin_status",
        ):
            return web.json_response({"detail": "unknown kind"}, status=422)
        if key in self.received:
            self.duplicates += 1
            await self._slow()
            return web.json_response({"status": "duplicate", "key": key}, status=409)
        self.received[key] = envelope
        self.order.append(key)
        await self._slow()  # processed, answered late: the client may give up and retry
        return web.json_response({"status": "accepted", "key": key}, status=201)

    async def _slow(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    async def _bulletins(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        after = request.query.get("after", "")
        start = int(after) if after.isdigit() else 0
        if self.duplicate_deliveries:
            start = 0  # deliver everything again: the station must ignore what it has
        page = self.bulletins[start:]
        await self._slow()
        return web.json_response({"bulletins": page, "cursor": str(len(self.bulletins))})

    async def _file(self, request: web.Request) -> web.Response:
        await self._slow()
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.json_response({"detail": "no such file"}, status=404)
        return web.Response(body=found[0], content_type=found[1])
