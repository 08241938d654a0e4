"""Ogg page framing: split an encoder's byte stream into whole pages, keep the header pages.

An Ogg/Opus stream starts with header pages (OpusHead, OpusTags) whose granule position is 0;
a listener joining later needs them before any audio page. Audio is fanned out page by page,
so skipping a slow listener forward always lands on a page boundary.
"""

from __future__ import annotations

import struct

_CAPTURE = b"OggS"
_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, segs


class OggPages:
    """Feed bytes, get complete pages back (``(page, granule)``)."""

    def __init__(self, max_buffer: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._max = max_buffer

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        self._buffer += data
        pages: list[tuple[bytes, int]] = []
        while True:
            start = self._buffer.find(_CAPTURE)
            if start < 0:
                del self._buffer[: max(0, len(self._buffer) - 3)]
                return pages
            if start:
                del self._buffer[:start]  # resynchronise on the next capture pattern
            if len(self._buffer) < _HEADER.size:
                return pages
            granule, segments = _HEADER.unpack_from(self._buffer)[3], self._buffer[26]
            table_end = _HEADER.size + segments
            if len(self._buffer) < table_end:
                return pages
            size = table_end + sum(self._buffer[_HEADER.size : table_end])
            if len(self._buffer) < size:
                if len(self._buffer) > self._max:
                    self._buffer.clear()
                return pages
            pages.append((bytes(self._buffer[:size]), granule))
            del self._buffer[:size]
