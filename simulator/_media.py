"""Media download with sha256/size checks, and a per-cluster cache that remembers sizes only.

A simulated cluster does not keep audio: thousands of them share one process, so the cache maps
sha256 -> size (what a real receiver would have on flash) and downloaded bytes are hashed and
dropped as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from devices.protocol import MediaRef, NackCode

_CHUNK = 64 * 1024
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


class DownloadError(Exception):
    """A media item could not be fetched or failed its check; ``code`` goes into the event."""

    def __init__(self, code: NackCode, detail: str, fetched: int = 0) -> None:
        super().__init__(f"{code}: {detail}")
        self.code: NackCode = code
        self.detail = detail
        self.fetched = fetched


def client_ssl_context(ca: str | None = None) -> ssl.SSLContext:
    """Verify servers (certificate and host name) against the system's CAs, plus ``ca``: the
    station's CA as PEM text (a provisioning bundle's ``ca_pem``) or the path of a PEM file."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not ca:
        return context
    pem = _PEM_BEGIN in ca
    try:
        context.load_verify_locations(cadata=ca) if pem else context.load_verify_locations(ca)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        where = "the CA PEM text" if pem else ca
        raise ValueError(f"cannot load the station's CA from {where}: {exc}") from None
    return context


def make_http_session(ssl_context: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """One session for the whole fleet; no connection cap (aiohttp's default is 100).

    ``ssl_context`` (from ``client_ssl_context``, built off the loop: it may read a file)
    decides which HTTPS servers are trusted; None = the system's CAs.
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=60)
    connector = aiohttp.TCPConnector(limit=0, ssl=ssl_context or True)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def _failure(what: str, exc: Exception) -> str:
    """The event detail of a failed request: an untrusted station says so plainly."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"{what}: TLS certificate not trusted ({exc.certificate_error})"[:200]
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"{what}: TLS handshake failed ({exc})"[:200]
    return f"{what}: {exc!r}"[:200]


async def fetch(
    http: aiohttp.ClientSession,
    ref: MediaRef,
    bandwidth_bps: Callable[[], int | None] = lambda: None,
) -> int:
    """Download ``ref`` and check size and sha256; return the bytes received.

    ``bandwidth_bps`` (read as it goes) caps the rate, in bytes per second, to simulate a slow
    link.
    """
    digest = hashlib.sha256()
    received = 0
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        async with http.get(ref.url) as response:
            if response.status != 200:
                raise DownloadError("download_failed", f"HTTP {response.status} for {ref.media_id}")
            async for chunk in response.content.iter_chunked(_CHUNK):
                received += len(chunk)
                if received > ref.size:
                    raise DownloadError(
                        "checksum_mismatch", f"{ref.media_id}: more than {ref.size} bytes", received
                    )
                digest.update(chunk)
                if (bps := bandwidth_bps()) is not None:
                    await asyncio.sleep(max(0.0, received / bps - (loop.time() - began)))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadError("download_failed", _failure(ref.media_id, exc), received) from None
    if received != ref.size:
        raise DownloadError(
            "checksum_mismatch", f"{ref.media_id}: {received} bytes, expected {ref.size}", received
        )
    if digest.hexdigest() != ref.sha256:
        raise DownloadError("checksum_mismatch", f"{ref.media_id}: sha256 differs", received)
    return received


async def consume_stream(
    http: aiohttp.ClientSession, url: str, on_bytes: Callable[[int], None]
) -> None:
    """GET a live stream and drop what arrives, counting it, until the server ends it."""
    try:
        async with http.get(url) as response:
            if response.status != 200:
                raise DownloadError("download_failed", f"stream: HTTP {response.status}")
            async for chunk in response.content.iter_any():
                on_bytes(len(chunk))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadError("download_failed", _failure("stream", exc)) from None


@dataclass
class MediaCache:
    """What one cluster holds, by sha256; concurrent requests for one item share one download.

    ``capacity`` bytes (None: unlimited); nothing is evicted, a download that cannot fit fails
    with ``cache_full``. ``bytes_downloaded`` counts every HTTP byte, streams included.
    Fault knobs: ``bandwidth_bps`` caps download speed, ``corrupt_next`` makes that many next
    downloads fail their checksum, ``full`` leaves no free space.
    """

    capacity: int | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    downloads: int = 0
    bytes_downloaded: int = 0
    held_bytes: int = 0
    bandwidth_bps: int | None = None
    corrupt_next: int = 0
    full: bool = False
    _inflight: dict[str, asyncio.Task[int]] = field(default_factory=dict)
    _reserved: int = 0  # sizes of downloads in progress

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self.sizes

    @property
    def free_bytes(self) -> int | None:
        if self.full:
            return 0
        if self.capacity is None:
            return None
        return max(0, self.capacity - self.held_bytes - self._reserved)

    def fits(self, items: Iterable[MediaRef]) -> bool:
        """Whether the items not held yet fit in the free space."""
        free = self.free_bytes
        if free is None:
            return True
        missing = {i.sha256: i.size for i in items if i.sha256 not in self.sizes}
        return sum(missing.values()) <= free

    def count_streamed(self, size: int) -> None:
        self.bytes_downloaded += size

    async def ensure(self, http: aiohttp.ClientSession, ref: MediaRef) -> int:
        """Make sure ``ref`` is held; return the bytes this call fetched over HTTP (0 if cached).

        Raises ``DownloadError``. Bytes of a failed download are counted too: they crossed the
        network.
        """
        if ref.sha256 in self.sizes:
            return 0
        task = self._inflight.get(ref.sha256)
        if task is not None and not task.done():  # another session is fetching it already
            try:
                await asyncio.shield(task)
            except DownloadError as exc:
                raise DownloadError(exc.code, exc.detail) from None
            return 0
        if not self.fits([ref]):
            raise DownloadError("cache_full", f"{ref.media_id}: {ref.size} bytes do not fit")
        task = asyncio.get_running_loop().create_task(self._download(http, ref))
        task.add_done_callback(functools.partial(self._forget, ref.sha256))
        self._inflight[ref.sha256] = task
        return await asyncio.shield(task)

    async def _download(self, http: aiohttp.ClientSession, ref: MediaRef) -> int:
        self.downloads += 1
        self._reserved += ref.size
        try:
            received = await fetch(http, ref, lambda: self.bandwidth_bps)
            if self.corrupt_next > 0:
                self.corrupt_next -= 1
                raise DownloadError("checksum_mismatch", f"{ref.media_id}: corrupted", received)
        except DownloadError as exc:
            self.bytes_downloaded += exc.fetched
            raise
        finally:
            self._reserved -= ref.size
        self.bytes_downloaded += received
        self.sizes[ref.sha256] = received
        self.held_bytes += received
        return received

    def _forget(self, sha256: str, task: asyncio.Task[int]) -> None:
        if self._inflight.get(sha256) is task:
            del self._inflight[sha256]
        if not task.cancelled():
            task.exception()  # its waiters got it; do not log it again as never retrieved

    def cancel(self) -> None:
        """Abandon downloads in progress (power loss)."""
        for task in self._inflight.values():
            task.cancel()

    async def aclose(self) -> None:
        """Cancel downloads still running (fleet shutdown or power loss)."""
        tasks = list(self._inflight.values())
        self._inflight.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, DownloadError):
                await task
