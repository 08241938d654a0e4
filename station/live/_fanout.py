"""Encode once, serve many: one writer, many listeners, each with a bounded buffer.

``publish`` never waits for a listener. A listener whose buffer would pass its byte limit is
skipped forward (its backlog dropped, it resumes at the newest chunk); after ``max_skips``
skips without draining its buffer once in between it is dropped. Memory per listener is
bounded by ``limit`` bytes (chunks are shared between listeners, not copied).

An HTTP listener goes *direct* once its response headers are out: ``publish`` then writes each
chunk straight to its socket transport (no task switch per chunk and listener, which is what
makes 1,000 listeners cheap); the transport's write buffer is the bounded buffer: while it holds
more than ``limit`` bytes new chunks are skipped, and a listener stalled for ``stall_drop_s`` is
dropped. Chunks are whole Ogg pages, so a skip always resumes on a page boundary.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class FanoutCounters:
    listeners_total: int = 0
    skipped: int = 0
    dropped: int = 0
    bytes_sent: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))


class Listener:
    def __init__(self, fanout: Fanout, name: str, limit: int, max_skips: int) -> None:
        self.name = name
        self._fanout = fanout
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._limit = limit
        self._max_skips = max_skips
        self._skips = 0
        self._wake = asyncio.Event()
        self.closed = False
        self.done = asyncio.Event()
        self._transport: asyncio.WriteTransport | None = None
        self._chunked = False
        self._stalled_since: float | None = None

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def buffered_direct(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def go_direct(self, transport: asyncio.WriteTransport, chunked: bool) -> None:
        """From now on chunks go straight to ``transport`` (HTTP chunked framing if asked)."""
        self._transport, self._chunked = transport, chunked
        while self._chunks and not self.closed:
            chunk = self._chunks.popleft()
            self._send(chunk, _frame(chunk) if chunked else chunk)
        self._buffered = 0

    def _send(self, chunk: bytes, wire: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            self.close()
            return
        if transport.get_write_buffer_size() + len(wire) > self._limit:
            self._fanout.counters.skipped += 1
            now = time.monotonic()
            if self._stalled_since is None:
                self._stalled_since = now
            elif now - self._stalled_since > self._fanout.stall_drop_s:
                self._fanout.counters.dropped += 1
                self.close()
            return
        self._stalled_since = None
        transport.write(wire)
        self._fanout.counters.bytes_sent[self.name] += len(chunk)

    def _offer(self, chunk: bytes, framed: bytes | None = None) -> None:
        if self._transport is not None:
            self._send(chunk, (framed or _frame(chunk)) if self._chunked else chunk)
            return
        if self._buffered + len(chunk) > self._limit and self._chunks:
            self._skips += 1
            self._fanout.counters.skipped += 1
            if self._skips > self._max_skips:
                self._fanout.counters.dropped += 1
                self.close()
                return
            self._chunks.clear()
            self._buffered = 0
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self.done.set()
        self._fanout.discard(self)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Everything published since joining (minus skips), until closed."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if not self._chunks:
                    self._skips = 0  # caught up
                yield chunk
            if self.closed:
                return
            self._wake.clear()
            await self._wake.wait()


class Fanout:
    def __init__(self, limit: int, max_skips: int, stall_drop_s: float = 10.0) -> None:
        self.limit = limit
        self.max_skips = max_skips
        self.stall_drop_s = stall_drop_s
        self.header = b""  # sent first to every new listener (Ogg header pages)
        self.counters = FanoutCounters()
        self._listeners: set[Listener] = set()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def join(self, name: str) -> Listener:
        listener = Listener(self, name, self.limit, self.max_skips)
        if self.header:
            listener._offer(self.header)
        self._listeners.add(listener)
        self.counters.listeners_total += 1
        return listener

    def discard(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def publish(self, chunk: bytes) -> None:
        framed = _frame(chunk)  # once for every chunked HTTP/1.1 listener
        for listener in list(self._listeners):
            listener._offer(chunk, framed)

    def close(self) -> None:
        for listener in list(self._listeners):
            listener.close()


def _frame(chunk: bytes) -> bytes:
    """HTTP/1.1 chunked transfer coding of one chunk."""
    return b"%x\r\n%b\r\n" % (len(chunk), chunk)
