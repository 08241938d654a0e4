"""MediaWorker: validate, normalise, encode and store uploads, a bounded number at a time."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._models import IngestResult, MediaSettings
from ._render import OnTime, render
from ._store import MediaStore, sha256_file
from ._validate import check_size, decode_check

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float], None]

# Share of the total each phase gets, roughly by measured cost (validation decodes at ~600x,
# loudness passes at ~70x, the Opus encode at ~30x realtime).
_BANDS: dict[str, tuple[float, float]] = {
    "validate": (0.00, 0.05),
    "measure": (0.05, 0.30),
    "limit": (0.30, 0.45),
    "encode": (0.45, 0.92),
    "verify": (0.92, 0.99),
}


class _Progress:
    """Maps per-pass ffmpeg positions onto one monotonic 0..1 fraction."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._last = 0.0
        self.duration_s = 0.0

    def phase(self, name: str) -> OnTime:
        start, end = _BANDS[name]

        def on_time(seconds: float) -> None:
            if self.duration_s > 0:
                self._emit(start + (end - start) * min(seconds / self.duration_s, 1.0))

        return on_time

    def done(self) -> None:
        self._emit(1.0)

    def _emit(self, fraction: float) -> None:
        if self._callback is not None and fraction > self._last:
            self._last = fraction
            self._callback(fraction)


class MediaWorker:
    """Runs ingests with at most ``workers`` at a time (each runs one ffmpeg at a time)."""

    def __init__(self, ffmpeg: str, workers: int = 2, scratch_dir: Path | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._ffmpeg = ffmpeg
        self._slots = asyncio.Semaphore(workers)
        self._scratch_dir = scratch_dir

    async def ingest(
        self,
        source: Path,
        store: MediaStore,
        settings: MediaSettings | None = None,
        progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Validate ``source`` and store its normalised Opus rendition; no database work.

        Raises MediaRejected for unusable uploads, MediaError when processing itself fails.
        Nothing is stored unless every step succeeded.
        """
        async with self._slots:
            return await self._ingest(source, store, settings or MediaSettings(), progress)

    async def _ingest(
        self,
        source: Path,
        store: MediaStore,
        settings: MediaSettings,
        callback: ProgressCallback | None,
    ) -> IngestResult:
        progress = _Progress(callback)
        check_size(source, settings)
        source_sha256 = await asyncio.to_thread(sha256_file, source)
        progress.duration_s = await decode_check(self._ffmpeg, source, settings)
        progress.phase("validate")(progress.duration_s)
        work = Path(tempfile.mkdtemp(prefix="loaxa-media-", dir=self._scratch_dir))
        try:
            out = work / "rendition.opus"
            rendition = await render(self._ffmpeg, source, out, settings, progress.phase)
            stored = await asyncio.to_thread(store.put_file, rendition.path, "opus")
        finally:
            shutil.rmtree(work, ignore_errors=True)  # a few small files: fine on the loop
        progress.done()
        log.info(
            "ingested %s as %s (%.1f -> %.1f LUFS, %.1f s)", source.name, stored.sha256[:12],
            rendition.loudness_in, rendition.loudness_out, rendition.duration_s,
        )  # fmt: skip
        return IngestResult(
            sha256=stored.sha256,
            source_sha256=source_sha256,
            path=stored.path,
            size_bytes=stored.size_bytes,
            duration_ms=round(rendition.duration_s * 1000),
            loudness_in_lufs=rendition.loudness_in,
            loudness_out_lufs=rendition.loudness_out,
            true_peak_out_db=rendition.true_peak_out,
        )
