"""MediaWorker: validate, normalise, encode and store uploads, a bounded number at a time."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._models import EXTENSIONS, Codec, IngestResult, MediaSettings, RenditionFile
from ._render import OnTime, render
from ._store import MediaStore, sha256_file
from ._validate import check_size, decode_check

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float], None]

# Share of the total each phase gets, roughly by measured cost (validation decodes at ~600x,
# the ebur128 passes at ~400x, both encoders together at ~75x, the verify decode at ~280x).
_BANDS: dict[str, tuple[float, float]] = {
    "validate": (0.00, 0.06),
    "measure": (0.06, 0.18),
    "limit": (0.18, 0.30),
    "encode": (0.30, 0.88),
    "verify": (0.88, 0.99),
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
        self.pending = 0  # ingests waiting for a slot or running (the ingest queue depth)

    async def ingest(
        self,
        source: Path,
        store: MediaStore,
        settings: MediaSettings | None = None,
        progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Validate ``source`` and store its normalised renditions; no database work.

        Raises MediaRejected for unusable uploads, MediaError when processing itself fails.
        Nothing is stored unless every step succeeded.
        """
        self.pending += 1
        try:
            async with self._slots:
                return await self._ingest(source, store, settings or MediaSettings(), progress)
        finally:
            self.pending -= 1

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
            outputs: dict[Codec, Path] = {
                codec: work / f"rendition.{EXTENSIONS[codec]}" for codec in settings.renditions
            }
            rendition = await render(self._ffmpeg, source, outputs, settings, progress.phase)
            files = await asyncio.to_thread(_store_all, store, outputs, settings)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # a few small files: fine on the loop
        progress.done()
        primary = files[0]
        log.info(
            "ingested %s as %s (%.1f -> %.1f LUFS, %.1f s, %s)", source.name,
            primary.sha256[:12], rendition.loudness_in, rendition.loudness_out,
            rendition.duration_s, "+".join(f.codec for f in files),
        )  # fmt: skip
        return IngestResult(
            sha256=primary.sha256,
            source_sha256=source_sha256,
            path=primary.path,
            size_bytes=primary.size_bytes,
            duration_ms=round(rendition.duration_s * 1000),
            loudness_in_lufs=rendition.loudness_in,
            loudness_out_lufs=rendition.loudness_out,
            true_peak_out_db=rendition.true_peak_out,
            codec=primary.codec,
            renditions=files,
        )


def _store_all(
    store: MediaStore, outputs: dict[Codec, Path], settings: MediaSettings
) -> tuple[RenditionFile, ...]:
    """Store every rendition; if one fails, the ones this call created are removed again."""
    files: list[RenditionFile] = []
    created: list[Path] = []
    try:
        for codec, path in outputs.items():
            stored = store.put_file(path, EXTENSIONS[codec])
            if stored.created:
                created.append(stored.path)
            files.append(
                RenditionFile(
                    codec, stored.sha256, stored.path, stored.size_bytes, settings.bitrate(codec)
                )
            )
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return tuple(files)
