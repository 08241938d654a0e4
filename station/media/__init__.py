"""Media pipeline: validate uploads, normalise loudness, encode Opus + MP3, store by content hash.

ffmpeg runs only as an asyncio child process; nothing here blocks the event loop or touches the
database (the station records the returned IngestResult).
"""

from ._errors import MediaError, MediaRejected, RejectReason
from ._ffmpeg import ffmpeg_executable
from ._models import (
    CODECS,
    CONTENT_TYPES,
    EXTENSIONS,
    Codec,
    IngestResult,
    MediaSettings,
    RenditionFile,
)
from ._store import MediaStore, Stored
from ._synth import synthesize_programme
from ._worker import MediaWorker, ProgressCallback

__all__ = [
    "CODECS",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "Codec",
    "IngestResult",
    "MediaError",
    "MediaRejected",
    "MediaSettings",
    "MediaStore",
    "MediaWorker",
    "ProgressCallback",
    "RejectReason",
    "RenditionFile",
    "Stored",
    "ffmpeg_executable",
    "synthesize_programme",
]
