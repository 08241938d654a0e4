"""Media delivery to clusters: signed per-cluster URLs, Range/ETag downloads, bytes accounted.

- ``GET /media/<sha256>.<opus|mp3>?c=<cluster>&e=<expiry>&s=<hmac>``: the file, with Range (206,
  416) and ETag/If-None-Match (304) from aiohttp's ``FileResponse`` (sendfile), and immutable
  cache headers (the name is the content's hash). A missing, wrong or expired signature is a
  403 problem+json.
- Bytes sent (200 and 206 bodies) are counted per cluster per local day in memory and flushed
  to ``media_downloads`` every ``FLUSH_S`` seconds and on shutdown (``delivery_ctx``).
- ``url_for`` signs each cluster's URLs; ``codecs_for`` reads the codecs clusters announced so
  the dispatcher can pick each one's rendition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from sqlmodel import col, select

from scheduler import CodecsFor, ItemRef
from station.api import problem
from station.db import Cluster
from station.media import CONTENT_TYPES

from . import _keys as keys
from ._delivery_state import Delivery, DownloadMeter, Sessions, UrlSigner, load_url_secret

log = logging.getLogger(__name__)

FLUSH_S = 30.0
CACHE_CONTROL = "public, max-age=31536000, immutable"
_MEDIA_NAME = re.compile(r"^(?P<sha>[0-9a-f]{64})\.(?P<ext>opus|mp3)$")


async def media_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    match = _MEDIA_NAME.match(name)
    if match is None:
        return problem(404, "Not Found", "no such media file")
    delivery = request.app[keys.DELIVERY]
    cluster_id = request.query.get("c", "")
    why = delivery.signer.check(
        cluster_id, name, request.query.get("e", ""), request.query.get("s", "")
    )
    if why is not None:
        delivery.rejected[why] += 1
        return problem(403, "Forbidden", f"{why}: media links are signed per cluster")
    path = request.app[keys.MEDIA_STORE].path_for(match["sha"], match["ext"])
    if not path.is_file():
        return problem(404, "Not Found", "no such media file")
    response = _MeteredFile(path, delivery.meter, cluster_id)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.content_type = CONTENT_TYPES[match["ext"]]
    return response


class _MeteredFile(web.FileResponse):
    """A FileResponse that counts the body it sent (200 or 206; not 304/416 or HEAD)."""

    def __init__(self, path: Path, meter: DownloadMeter, cluster_id: str) -> None:
        super().__init__(path)
        self._meter = meter
        self._cluster_id = cluster_id

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)  # returns once sendfile has sent the body
        if request.method == "GET" and self.status in (200, 206):
            self._meter.add(self._cluster_id, self.content_length or 0)
        return writer


def setup_delivery(app: web.Application) -> None:
    app.router.add_get("/media/{name}", media_file)


def signed_path(app: web.Application, subject: str, sha256: str, codec: str) -> str:
    """``/media/<sha256>.<codec>?c=...&e=...&s=...`` for ``subject`` (a cluster id, or e.g.
    ``console`` for a browser preview; bytes are accounted under that name)."""
    name = f"{sha256}.{codec}"
    if _MEDIA_NAME.match(name) is None:
        raise ValueError(f"not a media file name: {name[:80]!r}")
    return f"/media/{name}?{app[keys.DELIVERY].signer.query(subject, name)}"


def url_for_factory(app: web.Application) -> Callable[[str, ItemRef], str]:
    """The dispatcher's ``url_for``: each cluster gets its own signed URL of the rendition."""
    runtime, signer = app[keys.RUNTIME], app[keys.DELIVERY].signer

    def url_for(cluster_id: str, item: ItemRef) -> str:
        name = f"{item.sha256}.{item.codec}"
        return f"{runtime.public_base_url}/media/{quote(name)}?{signer.query(cluster_id, name)}"

    return url_for


def codecs_for_factory(app: web.Application) -> CodecsFor:
    """The dispatcher's ``codecs_for``: codecs from each cluster's last announcement (DB)."""
    sessions = app[keys.SESSIONS]

    async def codecs_for(cluster_ids: Sequence[str]) -> Mapping[str, Sequence[str]]:
        return await announced_codecs(sessions, cluster_ids)

    return codecs_for


async def announced_codecs(sessions: Sessions, cluster_ids: Sequence[str]) -> dict[str, list[str]]:
    """{cluster: codecs} for clusters whose announcement listed codecs; others are left out."""
    async with sessions() as db:
        rows = (
            await db.exec(
                select(Cluster.id, Cluster.capabilities).where(col(Cluster.id).in_(cluster_ids))
            )
        ).all()
    found: dict[str, list[str]] = {}
    for cluster_id, capabilities in rows:
        codecs = (capabilities or {}).get("codecs")
        if isinstance(codecs, list):
            found[cluster_id] = [str(c) for c in codecs]
    return found


async def delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the URL signer (secret loaded or made once) and the meter's flush loop."""
    settings = app[keys.SETTINGS]
    configured = settings.http.url_secret
    secret = await asyncio.to_thread(
        load_url_secret,
        configured.get_secret_value() if configured is not None else None,
        settings.media.dir,
    )
    delivery = Delivery(
        UrlSigner(secret, settings.http.url_ttl_s), DownloadMeter(zone=settings.station.tzinfo)
    )
    app[keys.DELIVERY] = delivery
    sessions = app[keys.SESSIONS]
    task = asyncio.create_task(_flush_loop(delivery.meter, sessions), name="media-meter")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await delivery.meter.flush(sessions)
        except Exception:
            log.exception("could not save the last media download counts")


async def _flush_loop(meter: DownloadMeter, sessions: Sessions) -> None:
    while True:
        await asyncio.sleep(FLUSH_S)
        try:
            await meter.flush(sessions)
        except Exception:  # the counts stay pending; the next flush retries
            log.exception("saving media download counts failed")
