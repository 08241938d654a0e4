"""State of media delivery: signed URLs per cluster and the bytes-served meter.

Kept apart from the HTTP handlers (``_delivery``) so ``_keys`` can name these types without an
import cycle. Nothing here blocks: the secret file is read once at start (in a thread) and the
meter touches the database only when it flushes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import MediaDownload

log = logging.getLogger(__name__)

SECRET_FILE = ".url_secret"
_EXPIRY_STEP_S = 3600  # expiries are rounded up to the hour: one URL per item per cluster-hour


class UrlSigner:
    """HMAC-SHA256 over (subject, file name, expiry) with the station's secret.

    ``subject`` is the cluster id a URL is made for: a URL given to one cluster does not work
    for another, and no URL works after its expiry.
    """

    def __init__(self, secret: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the URL secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self.clock = clock

    def __repr__(self) -> str:
        return f"UrlSigner(ttl_s={self.ttl_s})"  # never the secret

    def _mac(self, subject: str, name: str, expires: int) -> str:
        message = f"{subject}\n{name}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, subject: str, name: str) -> str:
        """``c=<subject>&e=<expiry>&s=<signature>`` for ``/media/<name>``."""
        expires = math.ceil((self.clock() + self.ttl_s) / _EXPIRY_STEP_S) * _EXPIRY_STEP_S
        signature = self._mac(subject, name, expires)
        return f"c={quote(subject, safe='')}&e={expires}&s={signature}"

    def check(self, subject: str, name: str, expires: str, signature: str) -> str | None:
        """None when valid, else why not (for the 403 detail)."""
        if not subject or not expires.isdigit() or not signature:
            return "missing or malformed signature"
        if not hmac.compare_digest(self._mac(subject, name, int(expires)), signature):
            return "bad signature"
        if int(expires) < self.clock():
            return "expired link"
        return None


def load_url_secret(configured: str | None, media_dir: Path) -> bytes:
    """The configured secret, else the one kept in ``media_dir``, else a new one kept there.

    The file is written atomically and exclusively (temp file, fsync, hard link), so two
    stations starting at once agree on one secret. Blocking: call it in a thread.
    """
    if configured:
        return configured.encode()
    path = media_dir / SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read_secret(path)
    media_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".secret-", dir=media_dir)  # created 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its own
            os.link(temp, path)
    finally:
        os.unlink(temp)
    log.info("generated a new media URL secret in %s", path)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    value = path.read_text(encoding="ascii").strip()
    if len(value) < 16:
        raise ValueError(f"{path}: the URL secret is too short (delete the file to renew it)")
    return value.encode()


Sessions = async_sessionmaker[AsyncSession]


@dataclass
class DownloadMeter:
    """Bytes served per (cluster, local day), kept in memory and flushed in batches.

    A request costs a dict update; the database sees one upsert per (cluster, day) per flush.
    """

    zone: tzinfo = UTC
    pending: Counter[tuple[str, date]] = field(default_factory=Counter)
    pending_requests: Counter[tuple[str, date]] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)  # since start, for the stats
    flushes: int = 0

    def add(self, cluster_id: str, nbytes: int, when: datetime | None = None) -> None:
        day = (when or datetime.now(UTC)).astimezone(self.zone).date()
        self.pending[(cluster_id, day)] += nbytes
        self.pending_requests[(cluster_id, day)] += 1
        self.served[cluster_id] += nbytes

    async def flush(self, sessions: Sessions) -> int:
        """Write pending counts; returns rows touched. On failure the counts stay pending."""
        if not self.pending_requests:
            return 0
        batch, requests = self.pending, self.pending_requests
        self.pending, self.pending_requests = Counter(), Counter()
        try:
            async with sessions() as db:
                await add_downloads(db, batch, requests)
                await db.commit()
        except BaseException:
            self.pending.update(batch)
            self.pending_requests.update(requests)
            raise
        self.flushes += 1
        return len(requests)


async def add_downloads(
    db: AsyncSession,
    nbytes: Mapping[tuple[str, date], int],
    requests: Mapping[tuple[str, date], int],
) -> None:
    """Add bytes and requests to ``media_downloads`` rows (cluster, day), creating missing
    ones: one upsert statement for the batch, in ``db``'s transaction.

    The addition happens in SQL (``bytes = media_downloads.bytes + excluded.bytes``), like
    ``_monitor.add_data_use``: a read-add-write lost what another writer (a second station
    process, a flush at shutdown crossing the timer's) added in between, and two inserts of a
    new (cluster, day) collided on the primary key.
    """
    if not requests:
        return
    rows = [
        {"cluster_id": c, "day": d, "bytes": nbytes.get((c, d), 0), "requests": n}
        for (c, d), n in sorted(requests.items())
    ]
    table = MediaDownload.__table__  # type: ignore[attr-defined]  # SQLModel sets it
    dialect = db.get_bind().dialect.name
    insert = sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.cluster_id, table.c.day],
        set_={
            "bytes": table.c.bytes + insert.excluded.bytes,
            "requests": table.c.requests + insert.excluded.requests,
        },
    )
    await db.exec(upsert, params=rows)


@dataclass
class Delivery:
    """What the /media handler needs at request time."""

    signer: UrlSigner
    meter: DownloadMeter
    rejected: Counter[str] = field(default_factory=Counter)  # 403s by reason
