"""Content-addressed file store: ``root/<sha[:2]>/<sha>.<ext>``.

Files appear atomically (temp file in the target directory, fsync, ``os.replace``) so a reader
never sees a partial rendition, and a failed write leaves nothing behind. Names are validated
strictly: a store key is 64 lowercase hex digits and nothing else, so no path can escape.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,8}")
_CHUNK = 1 << 20
_TEMP_PREFIX = ".incoming-"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (blocking: call it in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    sha256: str
    path: Path
    size_bytes: int
    created: bool  # False when identical content was already there (dedup)


class MediaStore:
    """Blocking file operations; callers on the event loop wrap the slow ones in to_thread."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, ext: str = "opus") -> Path:
        """Where content ``sha256`` lives; ValueError for anything but a clean key and ext."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
        if not _EXT.fullmatch(ext):
            raise ValueError(f"bad extension: {ext[:20]!r}")
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def exists(self, sha256: str, ext: str = "opus") -> bool:
        return self.path_for(sha256, ext).is_file()

    def size(self, sha256: str, ext: str = "opus") -> int:
        return self.path_for(sha256, ext).stat().st_size

    def open(self, sha256: str, ext: str = "opus") -> BinaryIO:
        return self.path_for(sha256, ext).open("rb")

    def delete(self, sha256: str) -> int:
        """Remove every rendition of ``sha256`` (any extension); returns how many went."""
        target = self.path_for(sha256)
        removed = 0
        for path in target.parent.glob(f"{sha256}.*"):
            if _EXT.fullmatch(path.suffix[1:]):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        with contextlib.suppress(OSError):
            target.parent.rmdir()  # only succeeds when the shard is empty
        return removed

    def put_file(self, source: Path, ext: str = "opus") -> Stored:
        """Copy ``source`` in under its own sha256; existing identical content is kept as is."""
        sha256 = sha256_file(source)
        final = self.path_for(sha256, ext)
        if final.is_file():
            return Stored(sha256, final, final.stat().st_size, created=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            _atomic_copy(source, final)
        except BaseException:
            with contextlib.suppress(OSError):
                final.parent.rmdir()  # no empty shard left behind (fails if others live there)
            raise
        return Stored(sha256, final, final.stat().st_size, created=True)


def _atomic_copy(source: Path, final: Path) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=final.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes 0600; the web server may run as another user
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse fsync on a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
