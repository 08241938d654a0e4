"""``HttpUpstream``: the adapter over HTTPS with a bearer token (aiohttp client).

TLS is always verified (system CAs, plus ``upstream.ca_file`` when given). Every call has a
timeout. Transient failures (connection errors, timeouts, 5xx, 429) raise
``UpstreamUnavailable``; other 4xx raise ``UpstreamRejected``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from ._protocol import (
    BulletinPage,
    Envelope,
    UpstreamRejected,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

_TRANSIENT = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()  # verifies certificates and host names
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class HttpUpstream:
    """Implements ``UpstreamAdapter`` against the mapping in docs/upstream.md."""

    def __init__(
        self,
        base_url: str,
        station_id: str,
        token: str,
        *,
        timeout_s: float = 15.0,
        ca_file: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.station_id = station_id
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ssl = ssl_context(ca_file)
        self._session: aiohttp.ClientSession | None = None
        if self.base_url.startswith("http://"):
            log.warning("upstream.base_url %s is not HTTPS: traffic is not encrypted", base_url)

    async def __aenter__(self) -> HttpUpstream:
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=8)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HttpUpstream used outside 'async with'")
        return self._session

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json", **extra}

    @property
    def _station_url(self) -> str:
        return f"{self.base_url}/v1/stations/{self.station_id}"

    async def push(self, envelope: Envelope) -> bool:
        headers = self._headers(**{"Idempotency-Key": envelope.key})
        try:
            async with self.session.post(
                f"{self._station_url}/messages", json=envelope.to_json(), headers=headers
            ) as response:
                body = await _json_or_none(response)
                if response.status == 409 and _is_duplicate(body):
                    return False  # it already has this key: acknowledged before
                _raise_for(response.status, body)
                return True
        except _TRANSIENT as exc:
            raise UpstreamUnavailable(_describe(exc)) from None

    async def pull_bulletins(self, cursor: str) -> BulletinPage:
        try:
            async with self.session.get(
                f"{self._station_url}/bulletins", params={"after": cursor}, headers=self._headers()
            ) as response:
                body = await _json_or_none(response)
                _raise_for(response.status, body)
        except _TRANSIENT as exc:
            raise UpstreamUnavailable(_describe(exc)) from None
        if not isinstance(body, dict) or not isinstance(body.get("bulletins"), list):
            raise UpstreamRejected("bulletin page is not {bulletins: [...], cursor: ...}", 200)
        next_cursor = body.get("cursor", cursor)
        items = [b for b in body["bulletins"] if isinstance(b, dict)]
        return BulletinPage(items, str(next_cursor) if next_cursor is not None else cursor)

    async def download(self, url: str, dest: Path, max_bytes: int) -> str:
        headers = self._headers() if url.startswith(self.base_url) else {}
        try:
            async with self.session.get(url, headers=headers) as response:
                _raise_for(response.status, None)
                content_type = response.content_type
                if response.content_length is not None and response.content_length > max_bytes:
                    raise UpstreamRejected(
                        f"audio larger than {max_bytes} bytes ({response.content_length})"
                    )
                size = 0
                with dest.open("wb") as handle:  # small chunks: brief writes, fine on the loop
                    async for chunk in response.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > max_bytes:
                            raise UpstreamRejected(f"audio larger than {max_bytes} bytes")
                        handle.write(chunk)
                return content_type
        except _TRANSIENT as exc:
            raise UpstreamUnavailable(_describe(exc)) from None


def _is_duplicate(body: Any) -> bool:
    return isinstance(body, dict) and body.get("status") == "duplicate"


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _raise_for(status: int, body: Any) -> None:
    if status < 300:
        return
    detail = f"HTTP {status}"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail = f"{detail}: {body['detail'][:300]}"
    if status >= 500 or status in (408, 425, 429):
        raise UpstreamUnavailable(detail, status)
    raise UpstreamRejected(detail, status)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
